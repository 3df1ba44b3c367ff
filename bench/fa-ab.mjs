// A/B of forward-auth set-ups behind nginx, for the profile-and-fix loop (the forward-auth
// scenario's paths, with variants of the nginx configuration and of the foundry-auth build):
//   node bench/fa-ab.mjs [--rounds N] [--seconds S] [--profile DIR] NAME=CONF[:CLI][:cache][:node=PATH] ...
// CONF is an nginx.conf in the shipped file's format ({{LISTEN}}, {{FOUNDRY_AUTH}}, ...), CLI a
// foundry-auth build (default dist/cli.js), `cache` turns its decision cache on, node=PATH runs
// that foundry-auth on another Node binary. nginx proxy_pass runs as the reference in every
// round; rounds interleaved; prints req/s, CPU per request (nginx and foundry-auth together) and
// each path's median ratio to proxy_pass.
import { resolve } from 'node:path';
import { createContext, startArmForRun } from './lib/context.mjs';
import { forwardAuthNginx, proxyServer, startNginx, staticServer } from './lib/nginx.mjs';
import { startSidecar } from './lib/sidecar.mjs';
import { cpuSecondsOf } from './lib/proc.mjs';
import { ensureTools } from './lib/tools.mjs';
import { runWrk } from './lib/wrk.mjs';

const argv = process.argv.slice(2);
const take = (name, fallback) => {
  const at = argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const [, value] = argv.splice(at, 2);
  return Number(value);
};
const profileAt = argv.indexOf('--profile');
// --profile DIR: every foundry-auth runs with --cpu-prof into DIR (bench/profile-top.mjs reads it).
const profileDir = profileAt >= 0 ? resolve(argv.splice(profileAt, 2)[1]) : undefined;
const rounds = take('rounds', 3);
const seconds = take('seconds', 6);
const variants = argv.map((spec) => {
  const name = spec.slice(0, spec.indexOf('='));
  const parts = spec.slice(spec.indexOf('=') + 1).split(':');
  const node = parts.find((part) => part.startsWith('node='))?.slice('node='.length);
  const [conf, cli = 'dist/cli.js', cache] = parts.filter((part) => !part.startsWith('node='));
  return { name, conf: resolve(conf), cli: resolve(cli), cache: cache === 'cache', node: node ?? process.execPath };
});
if (variants.length === 0) {
  process.stderr.write('usage: node bench/fa-ab.mjs [--rounds N] [--seconds S] NAME=CONF[:CLI][:cache][:node=PATH] ...\n');
  process.exit(2);
}

const tools = await ensureTools();
const ctx = await createContext({ pin: 'split', quick: false }, tools);
const arm = await startArmForRun(ctx);
const { layout } = ctx;
const upstream = await startNginx(tools.nginx, 'fa-ab-upstream', staticServer, { cpus: layout.upstream });
const reference = await startNginx(tools.nginx, 'fa-ab-proxy', (port, dir) => proxyServer(port, upstream.port, dir, { tokenBuffers: true }), {
  cpus: layout.proxy,
});
const paths = [{ name: 'proxy_pass', url: reference.url, pids: reference.pids, stop: () => reference.stop() }];
for (const [i, v] of variants.entries()) {
  const authz = await startSidecar({
    idp: ctx.idp,
    arm,
    upstream: undefined,
    cpus: layout.proxy,
    cli: v.cli,
    node: v.node,
    nodeArgs: profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    flags: { mode: 'forward-auth', 'forward-auth-profile': 'nginx', 'trusted-proxies': '127.0.0.1' },
  });
  const nginx = await startNginx(
    tools.nginx,
    `fa-ab-${i}`,
    (port, dir) => forwardAuthNginx(v.conf, { port, dir, authzUrl: authz.url, upstreamPort: upstream.port, cache: v.cache }),
    {
      cpus: layout.proxy,
    },
  );
  paths.push({
    name: v.name,
    url: nginx.url,
    pids: () => [...nginx.pids(), ...authz.pids()],
    authzPids: () => authz.pids(),
    stop: async () => (await nginx.stop(), await authz.stop()),
  });
}
const [token] = await ctx.idp.mint([ctx.principals.forwardAuth]);
const results = Object.fromEntries(paths.map((p) => [p.name, []]));
try {
  for (const p of paths) await runWrk(tools.wrk, { url: `${p.url}/v1/models`, token, threads: 2, connections: 64, cpus: layout.load, seconds: 2 });
  for (let r = 1; r <= rounds; r++) {
    for (const p of paths) {
      const authzBefore = p.authzPids === undefined ? 0 : cpuSecondsOf(p.authzPids());
      const run = await runWrk(tools.wrk, {
        url: `${p.url}/v1/models`,
        token,
        threads: 2,
        connections: 64,
        cpus: layout.load,
        seconds,
        measure: p.pids,
      });
      if (run.errors > 0) throw new Error(`${p.name}: ${JSON.stringify(run.errorDetail)}`);
      // foundry-auth's own share of the CPU per request (the rest is nginx's).
      run.authzMicrosPerRequest = p.authzPids === undefined ? 0 : ((cpuSecondsOf(p.authzPids()) - authzBefore) / run.requests) * 1e6;
      results[p.name].push(run);
      console.log(
        `round ${r} ${p.name.padEnd(14)} ${Math.round(run.rps).toString().padStart(6)} req/s ${run.cpuMicrosPerRequest.toFixed(1).padStart(6)} µs/req` +
          (p.authzPids === undefined ? '' : ` (foundry-auth ${run.authzMicrosPerRequest.toFixed(1)})`),
      );
    }
  }
} finally {
  for (const p of paths) await p.stop().catch(() => {});
  await upstream.stop().catch(() => {});
  await ctx.close();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const p of paths) {
  const ratios = results[p.name].map((run, i) => run.rps / results.proxy_pass[i].rps);
  console.log(
    `median ${p.name.padEnd(14)} ${Math.round(median(results[p.name].map((x) => x.rps)))} req/s, ${median(results[p.name].map((x) => x.cpuMicrosPerRequest)).toFixed(1)} µs/req (foundry-auth ${median(results[p.name].map((x) => x.authzMicrosPerRequest)).toFixed(1)}), ${median(ratios).toFixed(3)} x proxy_pass`,
  );
}
