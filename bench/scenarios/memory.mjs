// Scenario 5: memory. One sidecar; 10,000 principals authorized (one token each), then 90,000
// more distinct tokens of the same principals (100,000 in all), then a second 100,000: the RSS
// after each phase. The caches are bounded (tokens: 10,000 entries; decisions: 100,000
// principals), so the second 100,000 must not grow the process.
import { startArmForRun } from '../lib/context.mjs';
import { allOk, requestEach } from '../lib/load.mjs';
import { progress, rssBytes, sleep } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';
import { metricValue, startSidecar } from '../lib/sidecar.mjs';
import { mb } from '../lib/stats.mjs';

export const SETTINGS = { principals: 10_000, tokensPerPhase: 100_000, concurrency: 32, rssLimitMb: 200, growthLimit: 0.1 };

export async function memory(ctx) {
  const result = new ScenarioResult('memory', '5 memory');
  const s = ctx.quick ? { ...SETTINGS, principals: 1_000, tokensPerPhase: 10_000 } : SETTINGS;
  const arm = await startArmForRun(ctx);
  const upstream = await ctx.staticUpstream();
  const principals = ctx.principals.memory.slice(0, s.principals);
  const perPrincipal = s.tokensPerPhase / principals.length;
  const mintStarted = performance.now();
  progress(`memory: signing ${(2 * s.tokensPerPhase).toLocaleString('en-US')} distinct RS256 tokens for ${principals.length.toLocaleString('en-US')} principals (worker threads)`);
  // Token j of principal p is tokens[p * perPrincipal + j]; phase 1 takes j = 0 of everyone, phase 2 the rest.
  const first = await ctx.idp.mint(principals, perPrincipal);
  const second = await ctx.idp.mint(principals, perPrincipal);
  progress(`  signed in ${((performance.now() - mintStarted) / 1000).toFixed(0)} s`);
  const authorizeAll = first.filter((_, i) => i % perPrincipal === 0);
  const rest = first.filter((_, i) => i % perPrincipal !== 0);

  const sidecar = await startSidecar({ idp: ctx.idp, arm, upstream: upstream.url, cpus: ctx.layout.proxy });
  const rss = {};
  const statuses = [];
  try {
    const pid = sidecar.child.pid;
    rss.start = rssBytes(pid);
    await arm.resetCounters();
    const phase = async (name, tokens) => {
      const begun = performance.now();
      const run = await requestEach(sidecar.url, '/v1/models', tokens, { concurrency: s.concurrency, onProgress: (n) => progress(`  ${name}: ${n.toLocaleString('en-US')} requests`) });
      statuses.push(allOk(run.statuses));
      await sleep(500);
      rss[name] = rssBytes(pid);
      progress(`  ${name}: ${tokens.length.toLocaleString('en-US')} requests in ${((performance.now() - begun) / 1000).toFixed(0)} s, RSS ${mb(rss[name])} MB`);
    };
    await phase('principalsAuthorized', authorizeAll);
    await phase('firstHundredThousand', rest);
    await phase('secondHundredThousand', second);
    rss.calls = await arm.armCalls();
    rss.metrics = await sidecar.metrics();
  } finally {
    await sidecar.stop();
  }
  const heapUsed = metricValue(rss.metrics, 'foundry_auth_nodejs_heap_size_used_bytes');
  const growth = (rss.secondHundredThousand - rss.firstHundredThousand) / rss.firstHundredThousand;
  const bad = statuses.filter(Boolean);
  result.measure('RSS at start (ready, idle)', `${mb(rss.start)} MB`);
  result.measure(`RSS after ${principals.length.toLocaleString('en-US')} principals authorized`, `${mb(rss.principalsAuthorized)} MB (${rss.calls.roleAssignments.toLocaleString('en-US')} role-assignment reads)`);
  result.target(`RSS after ${s.tokensPerPhase.toLocaleString('en-US')} distinct valid tokens`, `${mb(rss.firstHundredThousand)} MB`, `<= ${s.rssLimitMb} MB`, rss.firstHundredThousand <= s.rssLimitMb * 1024 * 1024 && bad.length === 0, bad.length > 0 ? bad.join('; ') : undefined);
  result.target(
    `RSS after a second ${s.tokensPerPhase.toLocaleString('en-US')} tokens (caches bounded)`,
    `${mb(rss.secondHundredThousand)} MB (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%)`,
    `growth <= ${s.growthLimit * 100}%`,
    growth <= s.growthLimit && bad.length === 0,
  );
  if (heapUsed !== undefined) result.measure('V8 heap used at the end', `${mb(heapUsed)} MB`);
  result.data = {
    settings: s,
    rssMb: { start: mb(rss.start), principalsAuthorized: mb(rss.principalsAuthorized), firstHundredThousand: mb(rss.firstHundredThousand), secondHundredThousand: mb(rss.secondHundredThousand) },
    heapUsedMb: heapUsed === undefined ? undefined : mb(heapUsed),
    armCalls: rss.calls,
  };
  return result;
}
