// Scenario 1: throughput and added latency. Four paths to the same nginx static upstream in one
// run: direct, nginx proxy_pass, the bare undici proxy (bench/bare-proxy.mjs) and foundry-auth
// with a valid cached token and a cached RBAC allow. wrk at fixed concurrency for req/s, latency
// and CPU per request; then wrk paced at a fixed moderate rate for the latency each proxy adds.
import { startArmForRun } from '../lib/context.mjs';
import { proxyServer, startNginx, staticServer } from '../lib/nginx.mjs';
import { freePort, progress, startBenchServer } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';
import { startSidecar } from '../lib/sidecar.mjs';
import { round } from '../lib/stats.mjs';
import { runWrk } from '../lib/wrk.mjs';

export const SETTINGS = {
  path: '/v1/models',
  threads: 2,
  connections: 64,
  warmupSeconds: 2,
  seconds: 8,
  rate: 500,
  rateConnections: 10,
  rateSeconds: 10,
  /** Each measurement is taken this many times, the rounds interleaved across the paths; the best counts. */
  rounds: 2,
};

export async function throughput(ctx) {
  const result = new ScenarioResult('throughput', '1 throughput');
  const { tools, layout } = ctx;
  if (tools.nginx === undefined || tools.wrk === undefined) {
    const why = `needs nginx and wrk: ${tools.problems.join('; ') || 'not installed'}`;
    for (const t of [
      'foundry-auth req/s >= 0.8 x bare undici proxy',
      'foundry-auth req/s >= 0.4 x nginx proxy_pass',
      'foundry-auth CPU/req <= 3 x nginx',
      'added p99 at fixed rate <= 1 ms',
    ])
      result.skip(t, '', why);
    return result;
  }
  const s = ctx.quick ? { ...SETTINGS, warmupSeconds: 1, seconds: 3, rateSeconds: 3, rounds: 1 } : SETTINGS;
  const arm = await startArmForRun(ctx);
  const upstream = await startNginx(tools.nginx, 'upstream', staticServer, { cpus: layout.upstream });
  const nginx = await startNginx(tools.nginx, 'nginx-proxy', (port, dir) => proxyServer(port, upstream.port, dir), { cpus: layout.proxy });
  const bare = await startBenchServer('bare-proxy', 'bare-proxy.mjs', ['--listen', `127.0.0.1:${await freePort()}`, '--upstream', upstream.url], {
    cpus: layout.proxy,
  });
  const sidecar = await startSidecar({
    idp: ctx.idp,
    arm,
    upstream: upstream.url,
    cpus: layout.proxy,
    nodeArgs: ctx.profile === 'throughput' ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`] : [],
  });
  // The same sidecar without its audit line, to show what the line costs (the default stays info).
  const quiet = await startSidecar({ idp: ctx.idp, arm, upstream: upstream.url, cpus: layout.proxy, flags: { 'log-level': 'warn' } });
  const [token] = await ctx.idp.mint([ctx.principals.throughput]);

  const paths = [
    { id: 'direct', label: 'direct', url: upstream.url, pids: upstream.pids },
    { id: 'nginx', label: 'nginx proxy_pass', url: nginx.url, pids: nginx.pids },
    { id: 'bare', label: 'bare undici proxy', url: bare.url, pids: bare.pids },
    { id: 'foundryAuth', label: 'foundry-auth', url: sidecar.url, pids: sidecar.pids },
  ];
  const withoutAudit = { id: 'foundryAuthWarn', label: 'foundry-auth --log-level warn', url: quiet.url, pids: quiet.pids };
  const ownPids = () => [...upstream.pids(), ...nginx.pids(), ...bare.pids(), ...sidecar.pids(), ...quiet.pids(), ...arm.pids()];
  const auditBefore = sidecar.auditLines();
  const saturated = {};
  const paced = {};
  try {
    progress(
      `throughput: wrk -t${s.threads} -c${s.connections}, ${s.seconds} s per path after ${s.warmupSeconds} s warm-up, ${s.rounds} interleaved round(s), the best (most req/s) kept (Authorization: Bearer on every request)`,
    );
    for (const p of [...paths, withoutAudit]) {
      await runWrk(tools.wrk, {
        url: `${p.url}${s.path}`,
        token,
        threads: s.threads,
        connections: s.connections,
        cpus: layout.load,
        seconds: s.warmupSeconds,
      });
    }
    for (let round = 0; round < s.rounds; round++) {
      for (const p of [...paths, withoutAudit]) {
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
        if (saturated[p.id] === undefined || run.rps > saturated[p.id].rps) saturated[p.id] = run;
      }
    }
    progress(
      `throughput: fixed rate ${s.rate} req/s (wrk -t1 -c${s.rateConnections}, paced by its delay() hook), ${s.rateSeconds} s per path, ${s.rounds} interleaved round(s), the lowest p99 kept`,
    );
    for (let round = 0; round < s.rounds; round++) {
      for (const p of paths) {
        const run = await runWrk(tools.wrk, {
          url: `${p.url}${s.path}`,
          token,
          threads: 1,
          connections: s.rateConnections,
          rate: s.rate,
          seconds: s.rateSeconds,
          cpus: layout.load,
          measure: p.pids,
          ownPids,
          label: `${p.label} @ ${s.rate}/s`,
        });
        if (paced[p.id] === undefined || run.latencyMs.p99 < paced[p.id].latencyMs.p99) paced[p.id] = run;
      }
    }
  } finally {
    await Promise.allSettled([sidecar.stop(), quiet.stop(), bare.stop(), nginx.stop()]);
    await upstream.stop();
  }
  const audited = sidecar.auditLines() - auditBefore;

  for (const p of [...paths, withoutAudit]) {
    const r = saturated[p.id];
    result.measure(
      `${p.label}: req/s, p50 / p99`,
      `${Math.round(r.rps).toLocaleString('en-US')} req/s, ${r.latencyMs.p50.toFixed(2)} / ${r.latencyMs.p99.toFixed(2)} ms`,
    );
  }
  for (const p of [...paths, withoutAudit]) {
    const r = saturated[p.id];
    const who = p.id === 'direct' ? 'upstream nginx' : p.label;
    result.measure(`${who}: CPU per request`, `${r.cpuMicrosPerRequest.toFixed(1)} µs`);
  }
  const fa = saturated.foundryAuth;
  const errors = paths.filter((p) => saturated[p.id].errors > 0 || paced[p.id].errors > 0);
  for (const p of errors)
    result.note(
      `${p.label} had errors: saturated ${JSON.stringify(saturated[p.id].errorDetail)}, paced ${JSON.stringify(paced[p.id].errorDetail)} (non-2xx responses count as errors)`,
    );
  const valid = !errors.some((p) => p.id === 'foundryAuth');
  const ratioBare = fa.rps / saturated.bare.rps;
  const ratioNginx = fa.rps / saturated.nginx.rps;
  const cpuRatio = fa.cpuMicrosPerRequest / saturated.nginx.cpuMicrosPerRequest;
  result.target('foundry-auth / bare undici proxy, req/s', `${ratioBare.toFixed(2)} x`, '>= 0.80 x', valid && ratioBare >= 0.8);
  result.target('foundry-auth / nginx proxy_pass, req/s', `${ratioNginx.toFixed(2)} x`, '>= 0.40 x', valid && ratioNginx >= 0.4);
  result.target('foundry-auth / nginx, CPU per request', `${cpuRatio.toFixed(2)} x`, '<= 3.00 x', valid && cpuRatio <= 3);
  const direct = paced.direct;
  for (const p of paths.slice(1)) {
    const r = paced[p.id];
    const added50 = r.latencyMs.p50 - direct.latencyMs.p50;
    const added99 = r.latencyMs.p99 - direct.latencyMs.p99;
    const text = `+${added50.toFixed(3)} / +${added99.toFixed(3)} ms (${Math.round(r.rps)} req/s)`;
    if (p.id === 'foundryAuth') result.target(`${p.label}: added latency p50 / p99 at ${s.rate} req/s`, text, 'p99 <= +1 ms', valid && added99 <= 1);
    else result.measure(`${p.label}: added latency p50 / p99 at ${s.rate} req/s`, text);
  }
  result.measure(`direct at ${s.rate} req/s: p50 / p99`, `${direct.latencyMs.p50.toFixed(3)} / ${direct.latencyMs.p99.toFixed(3)} ms`);
  const disturbed = paths.filter((p) => saturated[p.id].foreignCpuShare > 0.1 || paced[p.id].foreignCpuShare > 0.1);
  if (disturbed.length > 0)
    result.note(
      `other processes on this machine used CPU during: ${disturbed.map((p) => `${p.label} (${Math.round(Math.max(saturated[p.id].foreignCpuShare, paced[p.id].foreignCpuShare) * 100)}% of a CPU)`).join(', ')}: treat those numbers with care`,
    );
  result.note(
    `foundry-auth ran at --log-level info and wrote ${audited.toLocaleString('en-US')} audit lines, one per request it received (warm-up included)`,
  );
  result.data = { settings: s, layout, saturated: strip(saturated), paced: strip(paced), auditLines: audited };
  return result;
}

function strip(byPath) {
  return Object.fromEntries(
    Object.entries(byPath).map(([id, r]) => [
      id,
      {
        rps: round(r.rps, 1),
        requests: r.requests,
        errors: r.errorDetail,
        latencyMs: Object.fromEntries(Object.entries(r.latencyMs).map(([k, v]) => [k, round(v, 3)])),
        cpuMicrosPerRequest: round(r.cpuMicrosPerRequest, 2),
        foreignCpuShare: round(r.foreignCpuShare, 2),
      },
    ]),
  );
}
