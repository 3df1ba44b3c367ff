// Scenario 7: forward-auth. nginx in front of `foundry-auth serve --mode forward-auth` (the
// shipped deploy/forward-auth/nginx.conf), with and without its decision cache, next to three
// references to the same static upstream: nginx proxy_pass, the bare undici proxy, and HAProxy
// validating the RS256 token itself (jwt_verify against the IdP's public key, alg/iss/aud/exp
// checked; no RBAC). Same token, same path, same wrk settings as the throughput scenario; the
// nginx proxy_pass reference has the shipped config's header buffers (like for like). Also
// the path without the cache with nginx asking over a Unix socket (--forward-auth-socket), and
// the CPU foundry-auth spends per check when its token and RBAC caches answer. foundry-auth runs
// on the Node of the container image it ships in (the targets) and, when that is another major,
// on this machine's Node too (reported beside them). Beside them, no target: the same nginx in
// front of a bare node:http check service (bench/bare-check.mjs) that answers every check with
// foundry-auth's allow and does nothing else, the floor of any check service on that Node.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { startArmForRun } from '../lib/context.mjs';
import { BENCH_CLIENT_ID } from '../lib/idp.mjs';
import { forwardAuthNginx, proxyServer, startNginx, staticServer } from '../lib/nginx.mjs';
import { benchDir, childPids, cpuSecondsOf, freePort, progress, ROOT, startBenchServer, startProcess, waitFor } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';
import { imageNode } from '../lib/image-node.mjs';
import { startSidecar } from '../lib/sidecar.mjs';
import { round } from '../lib/stats.mjs';
import { runWrk } from '../lib/wrk.mjs';
import { SETTINGS as THROUGHPUT } from './throughput.mjs';

const TARGETS = [
  "nginx + foundry-auth (the image's Node), decision cache / HAProxy jwt_verify, req/s",
  "nginx + foundry-auth (the image's Node), decision cache / nginx proxy_pass, req/s",
  "nginx + foundry-auth (the image's Node), no cache / HAProxy jwt_verify, req/s",
  "nginx + foundry-auth (the image's Node) over a Unix socket, no cache / HAProxy jwt_verify, req/s",
  "foundry-auth CPU per cached check (the image's Node)",
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
  // The targets are measured on the Node the container image ships; this machine's Node, when another major, beside them.
  const image = await imageNode();
  const runtimes = [{ key: '', node: image, label: `Node ${image.major}` }];
  if (image.path !== process.execPath)
    runtimes.push({
      key: '-machine',
      node: { path: process.execPath, version: process.version },
      label: `Node ${process.versions.node.split('.')[0]}`,
    });
  // Everything started here is stopped at the end, also when a later start fails.
  const started = [];
  const start = async (promise) => {
    const proc = await promise;
    started.push(proc);
    return proc;
  };
  const [token] = await ctx.idp.mint([ctx.principals.forwardAuth]);
  let upstream, nginx, bare, haproxy, bareCheck;
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
    for (const runtime of runtimes) runtime.procs = await startForwardAuth(ctx, arm, runtime, upstream, start);
    bareCheck = await startBareCheck(ctx, runtimes[0], upstream, token, s.path, start);
  } catch (err) {
    await stopAll(started);
    throw err;
  }

  const paths = [
    { id: 'nginx', label: 'nginx proxy_pass (no auth)', url: nginx.url, pids: nginx.pids },
    { id: 'bare', label: 'bare undici proxy (no auth)', url: bare.url, pids: bare.pids },
    { id: 'haproxy', label: 'HAProxy jwt_verify (RS256, no RBAC)', url: haproxy.url, pids: haproxy.pids },
  ];
  for (const { key, label, procs } of runtimes) {
    const { authz, uncached, cached, socketAuthz, socketUncached } = procs;
    paths.push(
      {
        id: `uncached${key}`,
        label: `nginx + foundry-auth forward-auth (${label})`,
        url: uncached.url,
        pids: () => [...uncached.pids(), ...authz.pids()],
        // foundry-auth's CPU per check is measured on this path: every check is answered from its token and RBAC caches.
        checkPids: () => authz.pids(),
        checkKey: key,
      },
      {
        id: `cached${key}`,
        label: `nginx + foundry-auth forward-auth, decision cache (${label})`,
        url: cached.url,
        pids: () => [...cached.pids(), ...authz.pids()],
      },
      {
        id: `socket${key}`,
        label: `nginx + foundry-auth forward-auth over a Unix socket (${label})`,
        url: socketUncached.url,
        pids: () => [...socketUncached.pids(), ...socketAuthz.pids()],
      },
    );
  }
  paths.push({
    id: 'bare-check',
    label: `nginx + bare node:http check (no auth, ${runtimes[0].label})`,
    url: bareCheck.front.url,
    pids: () => [...bareCheck.front.pids(), ...bareCheck.server.pids()],
    checkPids: () => bareCheck.server.pids(),
    checkKey: 'bare-check',
  });
  const ownPids = () => [...started.flatMap((proc) => proc.pids()), ...arm.pids()];
  const best = {};
  // Every round's runs, for the per-round ratios in the notes (this VM's speed shifts between rounds).
  const rounds = [];
  // The check service's CPU per check, the least of the rounds: foundry-auth's per runtime (key), and the bare check's.
  const checkCpu = {};
  try {
    // Every path must allow the token before it is measured: a 401 is fast and would flatter it.
    for (const p of paths) await expectAllowed(p, token, s.path);
    progress(
      `forward-auth: wrk -t${s.threads} -c${s.connections}, ${s.seconds} s per path after ${s.warmupSeconds} s warm-up, ${s.rounds} interleaved round(s), the best kept; foundry-auth on ${runtimes.map((r) => r.node.version).join(' and ')}`,
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
        const checkCpuBefore = p.checkPids === undefined ? 0 : cpuSecondsOf(p.checkPids());
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
        if (p.checkPids !== undefined) {
          const perCheck = ((cpuSecondsOf(p.checkPids()) - checkCpuBefore) / run.requests) * 1e6;
          if (checkCpu[p.checkKey] === undefined || perCheck < checkCpu[p.checkKey]) checkCpu[p.checkKey] = perCheck;
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
      `${p.label}: CPU per request${p.id === 'bare-check' ? ' (nginx + the bare check)' : /^(uncached|cached|socket)/.test(p.id) ? ' (nginx + foundry-auth)' : ''}`,
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
  result.target(TARGETS[4], `${checkCpu[''].toFixed(1)} µs`, '<= 50 µs', valid && checkCpu[''] <= 50);
  for (const { key, node } of runtimes.slice(1))
    result.note(
      `the same on this machine's ${node.version} (not what the image runs; no target): decision cache / HAProxy ${ratio(`cached${key}`, 'haproxy').toFixed(2)} x, decision cache / proxy_pass ${ratio(`cached${key}`, 'nginx').toFixed(2)} x, no cache / HAProxy ${ratio(`uncached${key}`, 'haproxy').toFixed(2)} x, over a Unix socket / HAProxy ${ratio(`socket${key}`, 'haproxy').toFixed(2)} x, CPU per cached check ${checkCpu[key].toFixed(1)} µs`,
    );
  const disturbed = paths.filter((p) => best[p.id].foreignCpuShare > 0.1);
  if (disturbed.length > 0)
    result.note(
      `other processes on this machine used CPU during: ${disturbed.map((p) => `${p.label} (${Math.round(best[p.id].foreignCpuShare * 100)}% of a CPU)`).join(', ')}: treat those numbers with care`,
    );
  const perRound = (a, b) => rounds.map((runs) => (runs[a].rps / runs[b].rps).toFixed(2)).join(', ');
  for (const { key, node } of runtimes)
    result.note(
      `${node.version}, the same ratios round by round (each round runs every path once, two minutes apart at most): no cache / HAProxy ${perRound(`uncached${key}`, 'haproxy')}; over a Unix socket / HAProxy ${perRound(`socket${key}`, 'haproxy')}; decision cache / HAProxy ${perRound(`cached${key}`, 'haproxy')}; decision cache / proxy_pass ${perRound(`cached${key}`, 'nginx')}`,
    );
  result.note(
    `the floor on ${runtimes[0].node.version}: nginx in front of a bare node:http check service that answers every check with foundry-auth's allow (the same header fields) and does nothing else: ${Math.round(best['bare-check'].rps).toLocaleString('en-US')} req/s, ${ratio('bare-check', 'haproxy').toFixed(2)} x HAProxy jwt_verify (foundry-auth without the cache: ${ratio('uncached', 'haproxy').toFixed(2)} x); ${checkCpu['bare-check'].toFixed(1)} µs of CPU per check against foundry-auth's ${checkCpu[''].toFixed(1)} µs, so foundry-auth's own work (the decision from its caches, the audit line, the metrics) is ${(checkCpu[''] - checkCpu['bare-check']).toFixed(1)} µs per check (rounds: ${perRound('bare-check', 'haproxy')} x HAProxy)`,
  );
  result.note(
    'foundry-auth ran at --log-level info (one audit line per check) on the same CPU as the nginx in front of it; the nginx paths with foundry-auth log no access line, the nginx proxy_pass reference does',
  );
  result.data = {
    settings: s,
    layout,
    runtimes: runtimes.map(({ key, node }) => ({ node: node.version, checkCpuMicros: round(checkCpu[key], 2) })),
    bareCheckCpuMicros: round(checkCpu['bare-check'], 2),
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

/**
 * One runtime's foundry-auth set-up, all on the proxy's CPU: a forward-auth sidecar with the nginx
 * of the shipped file in front of it without and with the decision cache, and the same without the
 * cache over a Unix socket (--forward-auth-socket) with its own sidecar.
 */
async function startForwardAuth(ctx, arm, runtime, upstream, start) {
  const { tools, layout } = ctx;
  const name = `fa${runtime.key}`;
  const sidecar = (flags) =>
    startSidecar({
      idp: ctx.idp,
      arm,
      upstream: undefined,
      cpus: layout.proxy,
      node: runtime.node.path,
      flags: { mode: 'forward-auth', 'forward-auth-profile': 'nginx', ...flags },
    });
  const front = (id, authzUrl, cache) =>
    startNginx(tools.nginx, `${name}-nginx-${id}`, (port, dir) => shippedNginx(port, dir, authzUrl, upstream.port, cache), { cpus: layout.proxy });
  // foundry-auth shares the proxy's CPU: nginx and foundry-auth together are the system under test.
  const authz = await start(sidecar({ 'trusted-proxies': '127.0.0.1' }));
  const uncached = await start(front('check', authz.url, false));
  const cached = await start(front('cache', authz.url, true));
  const socketDir = join(benchDir(), `${name}-socket`);
  mkdirSync(socketDir, { recursive: true });
  chmodSync(socketDir, 0o755);
  const socket = join(socketDir, 'check.sock');
  const socketAuthz = await start(sidecar({ 'trusted-proxies': 'unix', 'forward-auth-socket': socket }));
  const socketUncached = await start(front('socket', `unix:${socket}`, false));
  return { authz, uncached, cached, socketAuthz, socketUncached };
}

/**
 * The floor of any check service on this runtime: bench/bare-check.mjs answering every check with
 * the header fields of foundry-auth's allow for this token (asked once, here), behind the shipped
 * nginx.conf without the cache, on the proxy's CPU like foundry-auth.
 */
async function startBareCheck(ctx, runtime, upstream, token, target, start) {
  const res = await request(`${runtime.procs.authz.url}/_foundry_auth`, {
    headers: { authorization: `Bearer ${token}`, 'x-original-method': 'GET', 'x-original-uri': target, host: 'inference.local' },
  });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`foundry-auth answered ${res.statusCode} to the check the bare check service copies`);
  // Node adds these three itself, to both servers' answers alike.
  const added = new Set(['date', 'connection', 'keep-alive']);
  const fields = [];
  for (const [name, value] of Object.entries(res.headers)) {
    if (added.has(name)) continue;
    for (const one of Array.isArray(value) ? value : [value]) fields.push(name, one);
  }
  const answerFile = join(benchDir(), 'bare-check-answer.json');
  writeFileSync(answerFile, JSON.stringify(fields));
  const server = await start(
    startBenchServer('fa-bare-check', 'bare-check.mjs', ['--listen', `127.0.0.1:${await freePort()}`, '--answer', answerFile], {
      cpus: ctx.layout.proxy,
      node: runtime.node.path,
    }),
  );
  const front = await start(
    startNginx(ctx.tools.nginx, 'fa-nginx-bare-check', (port, dir) => shippedNginx(port, dir, server.url, upstream.port, false), {
      cpus: ctx.layout.proxy,
    }),
  );
  return { server, front };
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
  // The references without authentication (nginx, the bare proxy, the bare check) let it through.
  if (!['nginx', 'bare', 'bare-check'].includes(path.id) && denied.statusCode !== 401)
    throw new Error(`${path.label} answered ${denied.statusCode} to a token with a bad signature`);
}
