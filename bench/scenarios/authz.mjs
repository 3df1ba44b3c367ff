// Scenario 3: authorization load against the emulator's ARM. ARM calls are read from the
// emulator's own counters (GET /_emulator/counters), i.e. what reached ARM, not what the sidecar
// believes it sent.
import { Pool } from 'undici';
import { startArmForRun } from '../lib/context.mjs';
import { allOk, requestEach } from '../lib/load.mjs';
import { progress, sleep } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';
import { startSidecar } from '../lib/sidecar.mjs';

export const SETTINGS = {
  path: '/v1/models',
  coldConcurrency: 50,
  /** The single principal's lookup is held this long at ARM so all 1,000 requests overlap it. */
  singleArmLatencyMs: 1_000,
  steadyAllowTtlSeconds: 1,
  steadySeconds: 10,
  steadyRate: 1_000,
};

export async function authorization(ctx) {
  const result = new ScenarioResult('authz', '3 authorization (ARM)');
  const s = ctx.quick ? { ...SETTINGS, steadySeconds: 4 } : SETTINGS;
  const arm = await startArmForRun(ctx);
  const upstream = await ctx.staticUpstream();
  const { principals, idp } = ctx;
  const [warm] = await idp.mint([principals.authzWarm]);
  const cold = await idp.mint(principals.authzCold);
  const [single] = await idp.mint([principals.authzSingle]);
  const steady = await idp.mint(principals.authzSteady);

  // 1,000 cold principals, then 1,000 concurrent requests of one more cold principal.
  // This scenario measures the decision cache, not the ARM read budget: --arm-read-rate well above the burst.
  let sidecar = await startSidecar({ idp, arm, upstream: upstream.url, cpus: ctx.layout.proxy, flags: { 'arm-read-rate': '100000' } });
  let coldCalls;
  let singleCalls;
  let coldStatuses;
  let singleStatuses;
  try {
    // The warm-up principal fills what all principals share (deny assignments at the scope, role
    // definitions), so the counts below are the per-principal lookups alone.
    const warmed = await requestEach(sidecar.url, s.path, [warm], { concurrency: 1 });
    if (allOk(warmed.statuses) !== undefined) throw new Error(`warm-up request failed: ${allOk(warmed.statuses)}`);
    await arm.resetCounters();
    progress(`authz: ${cold.length.toLocaleString('en-US')} cold principals, one request each, ${s.coldConcurrency} in flight`);
    coldStatuses = (await requestEach(sidecar.url, s.path, cold, { concurrency: s.coldConcurrency })).statuses;
    coldCalls = await arm.armCalls();

    await arm.resetCounters();
    await arm.addFault({ family: 'arm', latencyMs: s.singleArmLatencyMs, pathContains: 'roleAssignments' });
    progress(`authz: 1,000 concurrent requests of one cold principal (ARM answers role assignments after ${s.singleArmLatencyMs} ms)`);
    singleStatuses = (await requestEach(sidecar.url, s.path, Array(1_000).fill(single), { concurrency: 1_000 })).statuses;
    await arm.clearFaults();
    singleCalls = await arm.armCalls();
  } finally {
    await arm.clearFaults();
    await sidecar.stop();
  }
  result.target(
    `ARM calls for ${cold.length.toLocaleString('en-US')} cold principals`,
    `${coldCalls.total.toLocaleString('en-US')} (${coldCalls.roleAssignments} role-assignment reads)`,
    'exactly 1,000',
    coldCalls.total === cold.length && allOk(coldStatuses) === undefined,
    allOk(coldStatuses) !== undefined ? `responses: ${allOk(coldStatuses)}` : undefined,
  );
  result.target(
    'ARM calls for 1,000 concurrent requests of one cold principal',
    `${singleCalls.total}`,
    'exactly 1',
    singleCalls.total === 1 && allOk(singleStatuses) === undefined,
    allOk(singleStatuses) !== undefined ? `responses: ${allOk(singleStatuses)}` : undefined,
  );

  // Steady state: 100 principals, each requesting every ~100 ms, with a short allow TTL.
  sidecar = await startSidecar({
    idp,
    arm,
    upstream: upstream.url,
    cpus: ctx.layout.proxy,
    flags: { 'rbac-allow-ttl': `${s.steadyAllowTtlSeconds}s`, 'arm-read-rate': '100000' },
  });
  let steadyCalls;
  let steadyStatuses;
  let sent;
  try {
    const first = await requestEach(sidecar.url, s.path, steady, { concurrency: 20 });
    if (allOk(first.statuses) !== undefined) throw new Error(`steady-state warm-up failed: ${allOk(first.statuses)}`);
    await arm.resetCounters();
    progress(
      `authz: steady state, ${steady.length} principals, ${s.steadyRate} req/s for ${s.steadySeconds} s, --rbac-allow-ttl ${s.steadyAllowTtlSeconds}s`,
    );
    ({ statuses: steadyStatuses, sent } = await pacedRoundRobin(sidecar.url, s.path, steady, s.steadyRate, s.steadySeconds));
    steadyCalls = await arm.armCalls();
  } finally {
    await sidecar.stop();
  }
  const ttlPeriods = s.steadySeconds / s.steadyAllowTtlSeconds;
  const perPrincipalPerTtl = steadyCalls.roleAssignments / (steady.length * ttlPeriods);
  const perMinuteAtDefault = perPrincipalPerTtl * steady.length * (60 / 300);
  result.target(
    `role-assignment reads per principal per allow TTL (${steady.length} principals, ${s.steadySeconds} s, TTL ${s.steadyAllowTtlSeconds} s)`,
    `${perPrincipalPerTtl.toFixed(2)} (${steadyCalls.roleAssignments} reads)`,
    '<= 1',
    perPrincipalPerTtl <= 1 && allOk(steadyStatuses) === undefined,
    allOk(steadyStatuses) !== undefined ? `responses: ${allOk(steadyStatuses)}` : undefined,
  );
  result.measure(
    'ARM calls per minute in steady state',
    `${Math.round((steadyCalls.total * 60) / s.steadySeconds).toLocaleString('en-US')} at TTL ${s.steadyAllowTtlSeconds} s; ~${Math.round(perMinuteAtDefault)} at the default 300 s`,
  );
  result.note(
    `steady state sent ${sent.toLocaleString('en-US')} requests; ARM calls in the window: ${steadyCalls.roleAssignments} role-assignment reads, ${steadyCalls.denyAssignments} deny-assignment reads (shared by all principals, once per allow TTL), ${steadyCalls.roleDefinitions} role-definition reads; calls per minute at 300 s scale the measured per-principal rate to the default TTL`,
  );
  result.data = { settings: s, cold: coldCalls, single: singleCalls, steady: { ...steadyCalls, requests: sent, perPrincipalPerTtl } };
  return result;
}

/** `rate` requests per second in total for `seconds`, cycling through the tokens (an open-loop timer). */
async function pacedRoundRobin(url, path, tokens, rate, seconds) {
  const pool = new Pool(url, { connections: 32 });
  const statuses = {};
  const inflight = new Set();
  const tickMs = 10;
  let sent = 0;
  let next = 0;
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    while (sent < due) {
      const token = tokens[next++ % tokens.length];
      sent++;
      const p = pool
        .request({ path, method: 'GET', headers: { authorization: `Bearer ${token}` } })
        .then(async (res) => {
          await res.body.dump();
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        })
        .catch(() => {
          statuses.error = (statuses.error ?? 0) + 1;
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await sleep(tickMs);
  }
  await Promise.all(inflight);
  await pool.close();
  return { statuses, sent };
}
