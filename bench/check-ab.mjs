// A/B of foundry-auth builds answering forward-auth checks, with no proxy in front: wrk sends
// nginx-profile checks (bench/wrk/check.lua) straight to `serve --mode forward-auth`, every check
// answered from the token and RBAC caches; rounds interleaved; prints CPU per check, the number
// the profile-and-fix loop of docs/PERFORMANCE.md works on.
//   node bench/check-ab.mjs [--rounds N] [--seconds S] NAME=CLI[=FLAG:VALUE,...] ...
// CLI is a foundry-auth build (e.g. dist/cli.js, or a copy of an older dist); FLAG:VALUE pairs
// are extra serve flags (e.g. log-level:warn), node:FLAG a node flag for that build alone
// (e.g. node:--max-semi-space-size=32), exec:PATH another Node binary for that build. --perf
// starts each with --perf-basic-prof (for `perf record`), --profile DIR with --cpu-prof into DIR.
import { join, resolve } from 'node:path';
import { createContext, startArmForRun } from './lib/context.mjs';
import { cpuSecondsOf, pinnedCommand, ROOT, runCommand } from './lib/proc.mjs';
import { startSidecar } from './lib/sidecar.mjs';
import { ensureTools } from './lib/tools.mjs';

const argv = process.argv.slice(2);
const option = (name) => {
  const at = argv.indexOf(`--${name}`);
  return at < 0 ? undefined : argv.splice(at, 2)[1];
};
const flag = (name) => {
  const at = argv.indexOf(`--${name}`);
  if (at >= 0) argv.splice(at, 1);
  return at >= 0;
};
const rounds = Number(option('rounds') ?? 6);
const seconds = Number(option('seconds') ?? 4);
const profileDir = option('profile');
const nodeArgs = flag('perf') ? ['--perf-basic-prof'] : profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir)}`] : [];
if (argv.length === 0) {
  process.stderr.write('usage: node bench/check-ab.mjs [--rounds N] [--seconds S] [--perf | --profile DIR] NAME=CLI[=FLAG:VALUE,...] ...\n');
  process.exit(2);
}

const tools = await ensureTools();
const ctx = await createContext({ pin: 'split', quick: false }, tools);
const arm = await startArmForRun(ctx);
const [token] = await ctx.idp.mint([ctx.principals.forwardAuth]);
const variants = [];
try {
  for (const spec of argv) {
    const [name, cli, ...rest] = spec.split('=');
    const flags = { mode: 'forward-auth', 'forward-auth-profile': 'nginx', 'trusted-proxies': '127.0.0.1' };
    const variantNodeArgs = [...nodeArgs];
    let node;
    for (const pair of rest.join('=').split(',').filter(Boolean)) {
      const [key, value] = [pair.slice(0, pair.indexOf(':')), pair.slice(pair.indexOf(':') + 1)];
      if (key === 'node') variantNodeArgs.push(value);
      else if (key === 'exec') node = value;
      else flags[key] = value;
    }
    const sidecar = await startSidecar({ idp: ctx.idp, arm, cpus: ctx.layout.proxy, cli: resolve(cli), flags, nodeArgs: variantNodeArgs, node });
    variants.push({ name, sidecar, runs: [] });
  }
  const run = async (v, secs) => {
    const args = ['-t', '2', '-c', '64', '-d', `${secs}s`, '-s', join(ROOT, 'bench', 'wrk', 'check.lua'), `${v.sidecar.url}/_foundry_auth`];
    const [command, commandArgs] = pinnedCommand(ctx.layout.load, tools.wrk, args);
    const cpuBefore = cpuSecondsOf(v.sidecar.pids());
    const result = await runCommand(command, commandArgs, { env: { BENCH_AUTH: token } });
    const line = result.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
    if (line === undefined) throw new Error(`wrk failed: ${result.stderr || result.stdout}`);
    const data = JSON.parse(line.slice('WRKJSON '.length));
    if (data.errors > 0 || data.non2xx > 0) throw new Error(`${v.name}: ${data.errors} errors, ${data.non2xx} answers other than 2xx`);
    return { rps: data.requests / (data.durationUs / 1e6), micros: ((cpuSecondsOf(v.sidecar.pids()) - cpuBefore) / data.requests) * 1e6 };
  };
  for (const v of variants) await run(v, 2);
  for (let r = 1; r <= rounds; r++) {
    for (const v of variants) {
      const x = await run(v, seconds);
      v.runs.push(x);
      console.log(
        `round ${r} ${v.name.padEnd(12)} ${Math.round(x.rps).toString().padStart(6)} checks/s ${x.micros.toFixed(1).padStart(6)} µs per check`,
      );
    }
  }
} finally {
  for (const v of variants) await v.sidecar.stop().catch(() => {});
  await ctx.close();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const v of variants) {
  const perRound = v.runs.map((x, i) => x.micros / variants[0].runs[i].micros);
  console.log(
    `median ${v.name.padEnd(12)} ${Math.round(median(v.runs.map((x) => x.rps)))} checks/s, ${median(v.runs.map((x) => x.micros)).toFixed(1)} µs per check, ${median(perRound).toFixed(3)} x ${variants[0].name}'s CPU per check (median of the rounds)`,
  );
}
