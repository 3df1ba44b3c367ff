// A/B comparison of sidecar builds or settings at saturation, for the profile-and-fix loop:
//   node bench/ab.mjs [--rounds N] [--seconds S] [--body FILE] NAME=CLI[:flag=value,...] ...
// e.g. node bench/ab.mjs base=/tmp/base/dist/cli.js new=dist/cli.js quiet=dist/cli.js:log-level=warn
// Every variant and the bare proxy run against the same nginx upstream, rounds interleaved; prints
// req/s and CPU per request per round and the median of each. A flag `@log=FILE` sends that
// variant's log to FILE (e.g. /dev/null). `--body FILE` POSTs FILE to /v1/chat/completions instead
// of GET /v1/models (nginx answers it the same way).
import { resolve } from 'node:path';
import { createContext, PRINCIPALS, startArmForRun } from './lib/context.mjs';
import { startNginx, staticServer } from './lib/nginx.mjs';
import { freePort, startBenchServer } from './lib/proc.mjs';
import { startSidecar } from './lib/sidecar.mjs';
import { ensureTools } from './lib/tools.mjs';
import { runWrk } from './lib/wrk.mjs';

const argv = process.argv.slice(2);
const take = (name, fallback) => {
  const at = argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const [, value] = argv.splice(at, 2);
  return Number(value);
};
const rounds = take('rounds', 3);
const seconds = take('seconds', 6);
// --profile DIR: every process under test runs with --cpu-prof into DIR; requests per path are printed to divide by.
const bodyAt = argv.indexOf('--body');
const bodyFile = bodyAt >= 0 ? resolve(argv.splice(bodyAt, 2)[1]) : undefined;
const path = bodyFile !== undefined ? '/v1/chat/completions' : '/v1/models';
const profileAt = argv.indexOf('--profile');
const profileDir = profileAt >= 0 ? resolve(argv.splice(profileAt, 2)[1]) : undefined;
const nodeArgs = profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
const variants = argv.map((spec) => {
  const [name, rest] =
    spec.split('=', 2).length === 2 ? [spec.slice(0, spec.indexOf('=')), spec.slice(spec.indexOf('=') + 1)] : [spec, 'dist/cli.js'];
  const [cli, flagText] = rest.split(':');
  const flags = Object.fromEntries(
    (flagText ?? '')
      .split(',')
      .filter(Boolean)
      .map((kv) => kv.split('=')),
  );
  // `@log=FILE` sends the variant's stdout (its log) to FILE instead of the run's directory.
  const logTo = flags['@log'];
  delete flags['@log'];
  return { name, cli: resolve(cli), flags, logTo };
});
if (variants.length === 0) {
  process.stderr.write('usage: node bench/ab.mjs [--rounds N] [--seconds S] NAME=CLI[:flag=value,...] ...\n');
  process.exit(2);
}

const tools = await ensureTools();
const ctx = await createContext({ pin: 'split', quick: false }, tools);
const arm = await startArmForRun(ctx);
const upstream = await startNginx(tools.nginx, 'upstream', staticServer, { cpus: ctx.layout.upstream });
const bare = await startBenchServer('bare-proxy', 'bare-proxy.mjs', ['--listen', `127.0.0.1:${await freePort()}`, '--upstream', upstream.url], {
  cpus: ctx.layout.proxy,
  nodeArgs,
});
const paths = [{ name: 'bare', url: bare.url, pids: bare.pids }];
for (const v of variants) {
  const s = await startSidecar({
    idp: ctx.idp,
    arm,
    upstream: upstream.url,
    cpus: ctx.layout.proxy,
    cli: v.cli,
    flags: v.flags,
    logTo: v.logTo,
    nodeArgs,
  });
  paths.push({ name: v.name, url: s.url, pids: s.pids, stop: s.stop });
}
const [token] = await ctx.idp.mint([PRINCIPALS.throughput]);
const results = new Map(paths.map((p) => [p.name, []]));
try {
  for (const p of paths) {
    const warm = await runWrk(tools.wrk, { url: `${p.url}${path}`, token, bodyFile, threads: 2, connections: 64, cpus: ctx.layout.load, seconds: 2 });
    p.requests = warm.requests;
  }
  for (let r = 0; r < rounds; r++) {
    for (const p of paths) {
      const run = await runWrk(tools.wrk, {
        url: `${p.url}${path}`,
        token,
        bodyFile,
        threads: 2,
        connections: 64,
        cpus: ctx.layout.load,
        seconds,
        measure: p.pids,
        label: p.name,
      });
      results.get(p.name).push(run);
      p.requests += run.requests;
      process.stdout.write(
        `round ${r + 1} ${p.name.padEnd(12)} ${Math.round(run.rps).toString().padStart(6)} req/s ${run.cpuMicrosPerRequest.toFixed(1).padStart(6)} µs/req${run.errors ? ` ERRORS ${JSON.stringify(run.errorDetail)}` : ''}\n`,
      );
    }
  }
} finally {
  await Promise.allSettled(paths.map((p) => p.stop?.()));
  await Promise.allSettled([bare.stop(), upstream.stop()]);
  await ctx.close();
}
for (const p of paths) process.stdout.write(`pid ${p.pids().join(',')} ${p.name}: ${p.requests} requests in all\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// The machine's speed drifts between rounds: each round's ratio to the bare proxy in the same round is steadier.
const bareRuns = results.get('bare');
for (const [name, runs] of results) {
  const rps = median(runs.map((r) => r.rps));
  const rpsRatio = median(runs.map((r, i) => r.rps / bareRuns[i].rps));
  const cpuRatio = median(runs.map((r, i) => r.cpuMicrosPerRequest / bareRuns[i].cpuMicrosPerRequest));
  process.stdout.write(
    `median ${name.padEnd(12)} ${Math.round(rps).toString().padStart(6)} req/s, ${median(runs.map((r) => r.cpuMicrosPerRequest))
      .toFixed(1)
      .padStart(6)} µs/req; per round vs bare: ${rpsRatio.toFixed(3)} x req/s, ${cpuRatio.toFixed(3)} x CPU/req\n`,
  );
}
