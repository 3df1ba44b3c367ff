// Scenario 7: forward-auth. nginx in front of `foundry-auth serve --mode forward-auth` (the
// shipped deploy/forward-auth/nginx.conf), with and without its decision cache, next to three
// references to the same static upstream: nginx proxy_pass, the bare undici proxy, and HAProxy
// validating the RS256 token itself (jwt_verify against the IdP's public key, alg/iss/aud/exp
// checked; no RBAC). Same token, same path, same wrk settings as the throughput scenario; the
// nginx proxy_pass reference has the shipped config's header buffers (like for like). Also
// the path without the cache with nginx asking over a Unix socket (--forward-auth-socket), and
// the CPU foundry-auth spends per check when its token and RBAC caches answer.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { startArmForRun } from '../lib/context.mjs';
import { BENCH_CLIENT_ID } from '../lib/idp.mjs';
import { forwardAuthNginx, proxyServer, startNginx, staticServer } from '../lib/nginx.mjs';
import { benchDir, childPids, cpuSecondsOf, freePort, progress, ROOT, startBenchServer, startProcess, waitFor } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';
import { startSidecar } from '../lib/sidecar.mjs';
import { round } from '../lib/stats.mjs';
import { runWrk } from '../lib/wrk.mjs';
import { SETTINGS as THROUGHPUT } from './throughput.mjs';

const TARGETS = [
  'nginx + foundry-auth, decision cache / HAProxy jwt_verify, req/s',
  'nginx + foundry-auth, decision cache / nginx proxy_pass, req/s',
  'nginx + foundry-auth, no cache / HAProxy jwt_verify, req/s',
  'nginx + foundry-auth over a Unix socket, no cache / HAProxy jwt_verify, req/s',
  'foundry-auth CPU per cached check',
];

export async function forwardAuth(ctx) {
  const result = new ScenarioResult('forward-auth', '7 forward-auth');
  const { tools, layout } = ctx;
  if (tools.nginx === undefined || tools.wrk === undefined || tools.haproxy === undefined) {
    const why = `needs nginx, wrk and haproxy: ${tools.problems.join('; ') || 'not installed'}`;
    for (const t of TARGETS) result.skip(t, '', why);
    return result;
  }
  const s = ctx.quick ? { ...THROUGHPUT, warmupSeconds: 1, seconds: 3, rounds: 1 } : THROUGHPUT;
  const arm = await startArmForRun(ctx);
  // Everything started here is stopped at the end, also when a later start fails.
  const started = [];
  const start = async (promise) => {
    const proc = await promise;
    started.push(proc);
    return proc;
  };
  let upstream, nginx, bare, haproxy, authz, uncached, cached, socketAuthz, socketUncached;
  try {
    upstream = await start(startNginx(tools.nginx, 'fa-upstream', staticServer, { cpus: layout.upstream }));
    nginx = await start(
      startNginx(tools.nginx, 'fa-nginx-proxy', (port, dir) => proxyServer(port, upstream.port, dir, { tokenBuffers: true }), { cpus: layout.proxy }),
    );
    bare = await start(
      startBenchServer('fa-bare-proxy', 'bare-proxy.mjs', ['--listen', `127.0.0.1:${await freePort()}`, '--upstream', upstream.url], {
        cpus: layout.proxy,
      }),
    );
    haproxy = await start(startHaproxy(tools.haproxy, ctx.idp, upstream.port, layout.proxy));
    // foundry-auth shares the proxy's CPU: nginx and foundry-auth together are the system under test.
    authz = await start(
      startSidecar({
        idp: ctx.idp,
        arm,
        upstream: undefined,
        cpus: layout.proxy,
        flags: { mode: 'forward-auth', 'forward-auth-profile': 'nginx', 'trusted-proxies': '127.0.0.1' },
      }),
    );
    uncached = await start(
      startNginx(tools.nginx, 'fa-nginx-check', (port, dir) => shippedNginx(port, dir, authz.url, upstream.port, false), { cpus: layout.proxy }),
    );
    cached = await start(
      startNginx(tools.nginx, 'fa-nginx-cache', (port, dir) => shippedNginx(port, dir, authz.url, upstream.port, true), { cpus: layout.proxy }),
    );
    // The same without the cache, nginx and foundry-auth on one host talking over a Unix socket (--forward-auth-socket).
    const socketDir = join(benchDir(), 'fa-socket');
    mkdirSync(socketDir, { recursive: true });
    chmodSync(socketDir, 0o755);
    const socket = join(socketDir, 'check.sock');
    socketAuthz = await start(
      startSidecar({
        idp: ctx.idp,
        arm,
        upstream: undefined,
        cpus: layout.proxy,
        flags: { mode: 'forward-auth', 'forward-auth-profile': 'nginx', 'trusted-proxies': 'unix', 'forward-auth-socket': socket },
      }),
    );
    socketUncached = await start(
      startNginx(tools.nginx, 'fa-nginx-socket', (port, dir) => shippedNginx(port, dir, `unix:${socket}`, upstream.port, false), {
        cpus: layout.proxy,
      }),
    );
  } catch (err) {
    await stopAll(started);
    throw err;
  }
  const [token] = await ctx.idp.mint([ctx.principals.forwardAuth]);

  const withAuthz = (proxy) => () => [...proxy.pids(), ...authz.pids()];
  const paths = [
    { id: 'nginx', label: 'nginx proxy_pass (no auth)', url: nginx.url, pids: nginx.pids },
    { id: 'bare', label: 'bare undici proxy (no auth)', url: bare.url, pids: bare.pids },
    { id: 'haproxy', label: 'HAProxy jwt_verify (RS256, no RBAC)', url: haproxy.url, pids: haproxy.pids },
    { id: 'uncached', label: 'nginx + foundry-auth forward-auth', url: uncached.url, pids: withAuthz(uncached) },
    { id: 'cached', label: 'nginx + foundry-auth forward-auth, decision cache', url: cached.url, pids: withAuthz(cached) },
    {
      id: 'socket',
      label: 'nginx + foundry-auth forward-auth over a Unix socket',
      url: socketUncached.url,
      pids: () => [...socketUncached.pids(), ...socketAuthz.pids()],
    },
  ];
  const ownPids = () => [
    ...upstream.pids(),
    ...nginx.pids(),
    ...bare.pids(),
    ...haproxy.pids(),
    ...authz.pids(),
    ...uncached.pids(),
    ...cached.pids(),
    ...socketAuthz.pids(),
    ...socketUncached.pids(),
    ...arm.pids(),
  ];
  const best = {};
  // Every round's runs, for the per-round ratios in the notes (this VM's speed shifts between rounds).
  const rounds = [];
  let checkCpu;
  try {
    // Every path must allow the token before it is measured: a 401 is fast and would flatter it.
    for (const p of paths) await expectAllowed(p, token, s.path);
    progress(
      `forward-auth: wrk -t${s.threads} -c${s.connections}, ${s.seconds} s per path after ${s.warmupSeconds} s warm-up, ${s.rounds} interleaved round(s), the best kept`,
    );
    for (const p of paths)
      await runWrk(tools.wrk, {
        url: `${p.url}${s.path}`,
        token,
        threads: s.threads,
        connections: s.connections,
        cpus: layout.load,
        seconds: s.warmupSeconds,
      });
    for (let r = 0; r < s.rounds; r++) {
      const runs = {};
      rounds.push(runs);
      for (const p of paths) {
        const authzCpuBefore = cpuSecondsOf(authz.pids());
        const run = await runWrk(tools.wrk, {
          url: `${p.url}${s.path}`,
          token,
          threads: s.threads,
          connections: s.connections,
          cpus: layout.load,
          ownPids,
          seconds: s.seconds,
          measure: p.pids,
          label: p.label,
        });
        if (p.id === 'uncached') {
          // Every request is one check, answered from the token and RBAC caches.
          const perCheck = ((cpuSecondsOf(authz.pids()) - authzCpuBefore) / run.requests) * 1e6;
          if (checkCpu === undefined || perCheck < checkCpu) checkCpu = perCheck;
        }
        runs[p.id] = run;
        if (best[p.id] === undefined || run.rps > best[p.id].rps) best[p.id] = run;
      }
    }
  } finally {
    await stopAll(started);
  }

  for (const p of paths) {
    const r = best[p.id];
    result.measure(
      `${p.label}: req/s, p50 / p99`,
      `${Math.round(r.rps).toLocaleString('en-US')} req/s, ${r.latencyMs.p50.toFixed(2)} / ${r.latencyMs.p99.toFixed(2)} ms`,
    );
  }
  for (const p of paths)
    result.measure(
      `${p.label}: CPU per request${p.id === 'uncached' || p.id === 'cached' || p.id === 'socket' ? ' (nginx + foundry-auth)' : ''}`,
      `${best[p.id].cpuMicrosPerRequest.toFixed(1)} µs`,
    );
  const failed = paths.filter((p) => best[p.id].errors > 0);
  for (const p of failed) result.note(`${p.label} had errors: ${JSON.stringify(best[p.id].errorDetail)} (non-2xx responses count as errors)`);
  const valid = failed.length === 0;
  const ratio = (a, b) => best[a].rps / best[b].rps;
  result.target(TARGETS[0], `${ratio('cached', 'haproxy').toFixed(2)} x`, '>= 1.00 x', valid && ratio('cached', 'haproxy') >= 1);
  result.target(TARGETS[1], `${ratio('cached', 'nginx').toFixed(2)} x`, '>= 0.70 x', valid && ratio('cached', 'nginx') >= 0.7);
  result.target(TARGETS[2], `${ratio('uncached', 'haproxy').toFixed(2)} x`, '>= 0.60 x', valid && ratio('uncached', 'haproxy') >= 0.6);
  result.target(TARGETS[3], `${ratio('socket', 'haproxy').toFixed(2)} x`, '>= 0.60 x', valid && ratio('socket', 'haproxy') >= 0.6);
  result.target(TARGETS[4], `${checkCpu.toFixed(1)} µs`, '<= 50 µs', valid && checkCpu <= 50);
  const disturbed = paths.filter((p) => best[p.id].foreignCpuShare > 0.1);
  if (disturbed.length > 0)
    result.note(
      `other processes on this machine used CPU during: ${disturbed.map((p) => `${p.label} (${Math.round(best[p.id].foreignCpuShare * 100)}% of a CPU)`).join(', ')}: treat those numbers with care`,
    );
  const perRound = (a, b) => rounds.map((runs) => (runs[a].rps / runs[b].rps).toFixed(2)).join(', ');
  result.note(
    `the same ratios round by round (each round runs every path once, a minute apart at most): no cache / HAProxy ${perRound('uncached', 'haproxy')}; over a Unix socket / HAProxy ${perRound('socket', 'haproxy')}; decision cache / HAProxy ${perRound('cached', 'haproxy')}; decision cache / proxy_pass ${perRound('cached', 'nginx')}`,
  );
  result.note(
    'foundry-auth ran at --log-level info (one audit line per check) on the same CPU as the nginx in front of it; the nginx paths with foundry-auth log no access line, the nginx proxy_pass reference does',
  );
  result.data = {
    settings: s,
    layout,
    checkCpuMicros: round(checkCpu, 2),
    paths: Object.fromEntries(
      paths.map((p) => [
        p.id,
        {
          rps: round(best[p.id].rps, 1),
          latencyMs: best[p.id].latencyMs,
          cpuMicrosPerRequest: round(best[p.id].cpuMicrosPerRequest, 2),
          errors: best[p.id].errorDetail,
        },
      ]),
    ),
  };
  return result;
}

/** Stops in reverse start order (proxies before what they front). */
async function stopAll(started) {
  for (const proc of started.reverse()) await proc.stop().catch(() => {});
}

/** deploy/forward-auth/nginx.conf as shipped, rendered for this run. */
function shippedNginx(port, dir, authzUrl, upstreamPort, cache) {
  return forwardAuthNginx(join(ROOT, 'deploy', 'forward-auth', 'nginx.conf'), { port, dir, authzUrl, upstreamPort, cache });
}

/**
 * HAProxy (Debian 2.6) validating the bearer token itself: RS256 signature against the IdP's
 * public key, alg, iss, aud and exp checked, then proxying to the upstream with keep-alive. One
 * thread, like the one nginx worker and the one Node process.
 */
async function startHaproxy(haproxyPath, idp, upstreamPort, cpus) {
  const dir = join(benchDir(), 'haproxy');
  mkdirSync(dir, { recursive: true });
  const keyFile = join(dir, 'idp-public.pem');
  writeFileSync(keyFile, idp.publicKeyPem);
  const port = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${port}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny status 401 unless { var(txn.alg) -m str RS256 }
  http-request deny status 401 unless { var(txn.iss) -m str ${idp.issuer} }
  http-request deny status 401 unless { var(txn.aud) -m str ${BENCH_CLIENT_ID} }
  http-request deny status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request deny status 401 unless { var(txn.bearer),jwt_verify("RS256","${keyFile}") -m int 1 }
  default_backend upstream
backend upstream
  http-reuse always
  server static 127.0.0.1:${upstreamPort} maxconn 256
`,
  );
  const child = startProcess(haproxyPath, ['-f', cfg, '-db'], { cpus, logFile: join(dir, 'haproxy.log') });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('haproxy', async () => {
    if (child.exitCode !== null)
      throw new Error(`haproxy exited with ${child.exitCode}: ${readFileSync(join(dir, 'haproxy.log'), 'utf8').slice(-2000)}`);
    const res = await request(`${url}/v1/models`);
    await res.body.dump();
    return res.statusCode === 401 || undefined;
  });
  return { url, child, pids: () => [child.pid, ...childPids(child.pid)], stop: () => child.stop('SIGTERM') };
}

async function expectAllowed(path, token, target) {
  const res = await request(`${path.url}${target}`, { headers: { authorization: `Bearer ${token}` } });
  const body = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${path.label} answered ${res.statusCode} to a valid token: ${body.slice(0, 300)}`);
  const denied = await request(`${path.url}${target}`, { headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } });
  await denied.body.dump();
  if (path.id !== 'nginx' && path.id !== 'bare' && denied.statusCode !== 401)
    throw new Error(`${path.label} answered ${denied.statusCode} to a token with a bad signature`);
}
