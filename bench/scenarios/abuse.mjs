// Scenario 6: abuse. 10,000 tokens that pass every claim check but name random unknown `kid`s,
// sent in 10 s, next to valid traffic at a fixed rate: how often the sidecar fetched the JWKS
// (counted by the identity provider) and the valid traffic's p99 with and without the flood.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startArmForRun } from '../lib/context.mjs';
import { benchDir, progress, sleep } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';
import { startSidecar } from '../lib/sidecar.mjs';
import { runWrk } from '../lib/wrk.mjs';

export const SETTINGS = {
  floodTokens: 10_000,
  floodSeconds: 10,
  validRate: 500,
  /** The sidecar's unknown-kid cooldown (src/authn/signing-keys.ts default). */
  cooldownSeconds: 30,
  /** Unflooded and flooded runs each this many times; the lowest valid-traffic p99 of each counts. */
  rounds: 2,
};

export async function abuse(ctx) {
  const result = new ScenarioResult('abuse', '6 abuse (unknown kid flood)');
  if (ctx.tools.wrk === undefined) {
    result.skip('JWKS fetches during the flood', '<= 1 per cooldown', `needs wrk: ${ctx.tools.problems.join('; ') || 'not installed'}`);
    result.skip("valid traffic's p99 during the flood", '<= 2 x unflooded', 'needs wrk');
    return result;
  }
  const s = SETTINGS;
  const arm = await startArmForRun(ctx);
  const upstream = await ctx.staticUpstream();
  const [token] = await ctx.idp.mint([ctx.principals.abuse]);
  // Every flood request names a kid never seen before (a file per round).
  const floodFiles = Array.from({ length: s.rounds }, (_, round) => {
    const file = join(benchDir(), `flood-tokens-${round}.txt`);
    writeFileSync(file, `${ctx.idp.unknownKidTokens(s.floodTokens, ctx.principals.abuse).join('\n')}\n`);
    return file;
  });

  const sidecar = await startSidecar({ idp: ctx.idp, arm, upstream: upstream.url, cpus: ctx.layout.proxy });
  const startedAt = Date.now();
  const ownPids = () => [...sidecar.pids(), ...upstream.pids(), ...arm.pids()];
  const valid = (label) =>
    runWrk(ctx.tools.wrk, {
      url: `${sidecar.url}/v1/models`,
      token,
      threads: 1,
      connections: 10,
      rate: s.validRate,
      seconds: s.floodSeconds,
      cpus: ctx.layout.load,
      measure: sidecar.pids,
      ownPids,
      label,
    });
  let baseline;
  let flooded;
  let flood;
  let fetchesBefore;
  let fetchesDuring;
  let idle;
  const floods = [];
  const lowest = (runs) => runs.reduce((a, b) => (b.latencyMs.p99 < a.latencyMs.p99 ? b : a));
  try {
    await runWrk(ctx.tools.wrk, { url: `${sidecar.url}/v1/models`, token, threads: 1, connections: 10, seconds: 2, cpus: ctx.layout.load });
    progress(`abuse: valid traffic alone, ${s.validRate} req/s for ${s.floodSeconds} s, ${s.rounds} round(s)`);
    const unflooded = [];
    for (let round = 0; round < s.rounds; round++) unflooded.push(await valid('valid, unflooded'));
    baseline = lowest(unflooded);
    // Start the flood only once the cooldown since the start-up fetch has passed, so the first
    // unknown kid may fetch: the count then shows the limit at work, not the start-up window.
    const jwksAtStart = ctx.idp.jwksFetches();
    const lastFetch = jwksAtStart.at(-1) ?? startedAt;
    const wait = lastFetch + s.cooldownSeconds * 1000 + 1000 - Date.now();
    if (wait > 0) {
      progress(
        `abuse: waiting ${(wait / 1000).toFixed(0)} s so the ${s.cooldownSeconds} s unknown-kid cooldown since the last JWKS fetch has passed`,
      );
      await sleep(wait);
    }
    idle = Date.now() - lastFetch;
    fetchesBefore = ctx.idp.jwksFetches().length;
    progress(
      `abuse: ${s.floodTokens.toLocaleString('en-US')} unknown-kid tokens in ${s.floodSeconds} s, valid traffic at ${s.validRate} req/s alongside, ${s.rounds} round(s) back to back`,
    );
    const during = [];
    for (let round = 0; round < s.rounds; round++) {
      const [floodRun, validRun] = await Promise.all([
        runWrk(ctx.tools.wrk, {
          url: `${sidecar.url}/v1/models`,
          tokensFile: floodFiles[round],
          threads: 1,
          connections: 10,
          rate: s.floodTokens / s.floodSeconds,
          seconds: s.floodSeconds,
          cpus: ctx.layout.load,
          ownPids,
          label: 'flood (expect 401s)',
        }),
        valid('valid, during the flood'),
      ]);
      floods.push(floodRun);
      during.push(validRun);
    }
    fetchesDuring = ctx.idp.jwksFetches().length - fetchesBefore;
    flooded = lowest(during);
    flood = {
      requests: floods.reduce((n, f) => n + f.requests, 0),
      rejected: floods.reduce((n, f) => n + f.errorDetail.status, 0),
      rps: floods.reduce((n, f) => n + f.rps, 0) / floods.length,
    };
  } finally {
    await sidecar.stop();
  }
  const floodSpan = s.rounds * s.floodSeconds;
  const allowed = Math.ceil(floodSpan / s.cooldownSeconds);
  result.target(
    `JWKS fetches during ${flood.requests.toLocaleString('en-US')} unknown-kid requests in ${floodSpan} s (${s.rounds} x ${s.floodSeconds} s)`,
    `${fetchesDuring} (${flood.rejected.toLocaleString('en-US')} answered non-2xx)`,
    `<= ${allowed} (one per ${s.cooldownSeconds} s cooldown)`,
    fetchesDuring <= allowed && flood.rejected === flood.requests,
    flood.rejected !== flood.requests ? `${flood.requests - flood.rejected} flood requests were not rejected` : undefined,
  );
  const ratio = flooded.latencyMs.p99 / baseline.latencyMs.p99;
  const errors = baseline.errors + flooded.errors;
  result.measure(
    `valid traffic at ${s.validRate} req/s, unflooded p50 / p99`,
    `${baseline.latencyMs.p50.toFixed(3)} / ${baseline.latencyMs.p99.toFixed(3)} ms`,
  );
  result.target(
    "valid traffic's p99 during the flood",
    `${flooded.latencyMs.p99.toFixed(3)} ms (${ratio.toFixed(2)} x unflooded; p50 ${flooded.latencyMs.p50.toFixed(3)} ms)`,
    '<= 2 x unflooded',
    ratio <= 2 && errors === 0,
    errors > 0 ? `valid traffic errors: ${JSON.stringify(baseline.errorDetail)} / ${JSON.stringify(flooded.errorDetail)}` : undefined,
  );
  result.note(
    `the flood started ${(idle / 1000).toFixed(0)} s after the previous JWKS fetch; flood rate ${Math.round(flood.rps)} req/s; of ${s.rounds} runs each, the one with the lowest valid-traffic p99 is shown`,
  );
  const disturbed = [baseline, flooded].filter((r) => r.foreignCpuShare > 0.1);
  if (disturbed.length > 0)
    result.note(
      `other processes on this machine used up to ${Math.round(Math.max(...disturbed.map((r) => r.foreignCpuShare)) * 100)}% of a CPU during the runs shown: treat those numbers with care`,
    );
  result.data = {
    settings: s,
    jwksFetchesDuringFlood: fetchesDuring,
    floodRequests: flood.requests,
    floodRejected: flood.rejected,
    validMs: { unflooded: baseline.latencyMs, flooded: flooded.latencyMs },
    validRps: { unflooded: baseline.rps, flooded: flooded.rps },
  };
  return result;
}
