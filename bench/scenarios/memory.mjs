// Scenario 5: memory. One sidecar; 10,000 principals authorized (one token each), then 90,000
// more distinct tokens of the same principals (100,000 in all), then a second 100,000. After each
// phase: the peak RSS so far (VmHWM: what a container limit must allow; the RSS of the moment
// depends on when V8 last collected), then (over the inspector) a full garbage collection and the
// RSS and V8 heap after it. The caches are bounded (tokens: 10,000 entries; decisions: 100,000
// principals), so the second 100,000 must not grow the process.
import { startArmForRun } from '../lib/context.mjs';
import { connectInspector } from '../lib/inspector.mjs';
import { allOk, requestEach } from '../lib/load.mjs';
import { freePort, memoryCgroup, peakRssBytes, progress, rssBytes, sleep } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';
import { startSidecar } from '../lib/sidecar.mjs';
import { mb } from '../lib/stats.mjs';

export const SETTINGS = { principals: 10_000, tokensPerPhase: 100_000, concurrency: 32, rssLimitMb: 200, growthLimit: 0.1, containerLimitMb: 256 };

export async function memory(ctx) {
  const result = new ScenarioResult('memory', '5 memory');
  const s = ctx.quick ? { ...SETTINGS, principals: 1_000, tokensPerPhase: 10_000 } : SETTINGS;
  const arm = await startArmForRun(ctx);
  const upstream = await ctx.staticUpstream();
  const principals = ctx.principals.memory.slice(0, s.principals);
  const perPrincipal = s.tokensPerPhase / principals.length;
  const mintStarted = performance.now();
  progress(
    `memory: signing ${(2 * s.tokensPerPhase).toLocaleString('en-US')} distinct RS256 tokens for ${principals.length.toLocaleString('en-US')} principals (worker threads)`,
  );
  // Token j of principal p is tokens[p * perPrincipal + j]: the first phase takes j = 0 of everyone.
  const first = await ctx.idp.mint(principals, perPrincipal);
  const second = await ctx.idp.mint(principals, perPrincipal);
  progress(`  signed in ${((performance.now() - mintStarted) / 1000).toFixed(0)} s`);
  const authorizeAll = first.filter((_, i) => i % perPrincipal === 0);
  const rest = first.filter((_, i) => i % perPrincipal !== 0);

  const inspectPort = await freePort();
  const sidecar = await startSidecar({
    idp: ctx.idp,
    arm,
    upstream: upstream.url,
    cpus: ctx.layout.proxy,
    nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`],
  });
  const inspector = await connectInspector(inspectPort);
  const phases = {};
  const problems = [];
  let calls;
  try {
    const pid = sidecar.child.pid;
    phases.start = { rss: rssBytes(pid) };
    await arm.resetCounters();
    const phase = async (name, tokens) => {
      const begun = performance.now();
      const run = await requestEach(sidecar.url, '/v1/models', tokens, {
        concurrency: s.concurrency,
        onProgress: (n) => progress(`  ${name}: ${n.toLocaleString('en-US')} requests`),
      });
      const bad = allOk(run.statuses);
      if (bad !== undefined) problems.push(`${name}: ${bad}`);
      await sleep(500);
      const rss = rssBytes(pid);
      const peak = peakRssBytes(pid);
      await inspector.collectGarbage();
      await sleep(500);
      const heap = await inspector.heapUsage();
      phases[name] = { peak, rss, rssAfterGc: rssBytes(pid), heapAfterGc: heap.usedSize };
      progress(
        `  ${name}: ${tokens.length.toLocaleString('en-US')} requests in ${((performance.now() - begun) / 1000).toFixed(0)} s; peak RSS ${mb(peak)} MB, RSS now ${mb(rss)} MB, after a full GC ${mb(phases[name].rssAfterGc)} MB (heap ${mb(heap.usedSize)} MB)`,
      );
    };
    await phase('principalsAuthorized', authorizeAll);
    await phase('firstHundredThousand', rest);
    await phase('secondHundredThousand', second);
    calls = await arm.armCalls();
  } finally {
    inspector.close();
    await sidecar.stop();
  }
  const limited = await inContainerLimit(ctx, s, { arm, upstream, authorizeAll, rest });
  const one = phases.firstHundredThousand;
  const two = phases.secondHundredThousand;
  const peakGrowth = (two.peak - one.peak) / one.peak;
  const retainedGrowth = (two.rssAfterGc - one.rssAfterGc) / one.rssAfterGc;
  const heapGrowth = (two.heapAfterGc - one.heapAfterGc) / one.heapAfterGc;
  const note = problems.length > 0 ? problems.join('; ') : undefined;
  const pct = (v) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%`;
  result.measure('RSS at start (ready, idle)', `${mb(phases.start.rss)} MB`);
  result.measure(
    `peak RSS after ${principals.length.toLocaleString('en-US')} principals authorized`,
    `${mb(phases.principalsAuthorized.peak)} MB; ${mb(phases.principalsAuthorized.rssAfterGc)} MB after a full GC (${calls.roleAssignments.toLocaleString('en-US')} role-assignment reads)`,
  );
  result.target(
    `peak RSS after ${s.tokensPerPhase.toLocaleString('en-US')} distinct valid tokens`,
    `${mb(one.peak)} MB (RSS now ${mb(one.rss)} MB)`,
    `<= ${s.rssLimitMb} MB`,
    one.peak <= s.rssLimitMb * 1024 * 1024 && note === undefined,
    note,
  );
  result.measure('  after a full GC: RSS / V8 heap used', `${mb(one.rssAfterGc)} / ${mb(one.heapAfterGc)} MB`);
  result.target(
    `RSS after a full GC, after a second ${s.tokensPerPhase.toLocaleString('en-US')} tokens (caches bounded)`,
    `${mb(two.rssAfterGc)} MB (${pct(retainedGrowth)}; V8 heap ${mb(two.heapAfterGc)} MB, ${pct(heapGrowth)})`,
    `growth <= ${s.growthLimit * 100}%`,
    retainedGrowth <= s.growthLimit && note === undefined,
  );
  result.measure('  peak RSS then', `${mb(two.peak)} MB (${pct(peakGrowth)}; RSS now ${mb(two.rss)} MB)`);
  const limitLabel = `peak RSS after ${s.tokensPerPhase.toLocaleString('en-US')} tokens in a ${s.containerLimitMb} MiB memory limit (as resources.limits.memory)`;
  if (limited.problem !== undefined) result.measure(limitLabel, `not measured: ${limited.problem}`);
  else
    result.measure(
      limitLabel,
      `${mb(limited.peak)} MB (V8 heap limit ${mb(limited.heapLimit)} MB, sized by Node from the limit)${limited.bad !== undefined ? `; ${limited.bad}` : ''}`,
    );
  if (process.env.BENCH_SIDECAR_NODE_OPTIONS !== undefined)
    result.note(`the sidecar ran with NODE_OPTIONS=${process.env.BENCH_SIDECAR_NODE_OPTIONS}`);
  result.note(
    'peak RSS is VmHWM from /proc (the most the process has held so far; the RSS of the moment swings with V8\'s collections); "after a full GC" asks V8 over the inspector (--inspect on loopback) for a full collection first, to show what the process holds: boundedness is judged on it, since the peak also moves with when V8 chose to collect',
  );
  result.data = {
    settings: s,
    mb: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([kk, vv]) => [kk, mb(vv)]))])),
    armCalls: calls,
    containerLimit:
      limited.problem !== undefined
        ? { problem: limited.problem }
        : { limitMb: s.containerLimitMb, peakMb: mb(limited.peak), heapLimitMb: mb(limited.heapLimit) },
  };
  return result;
}

/**
 * The first 100,000 tokens again, through a fresh sidecar in a memory cgroup of
 * `containerLimitMb`, as a Kubernetes memory limit runs it: Node sizes V8's heap from the
 * cgroup's limit (process.constrainedMemory()), so V8 collects long before it would on a host
 * with 24 GiB. Nothing else differs.
 */
async function inContainerLimit(ctx, s, { arm, upstream, authorizeAll, rest }) {
  const cgroup = memoryCgroup(`foundry-auth-bench-${process.pid}`, s.containerLimitMb * 1024 * 1024);
  if (cgroup.problem !== undefined) return { problem: cgroup.problem };
  const inspectPort = await freePort();
  const sidecar = await startSidecar({
    idp: ctx.idp,
    arm,
    upstream: upstream.url,
    cpus: ctx.layout.proxy,
    cgroup,
    nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`],
  });
  const inspector = await connectInspector(inspectPort);
  try {
    progress(
      `memory: the same ${s.tokensPerPhase.toLocaleString('en-US')} tokens through a new sidecar in a ${s.containerLimitMb} MiB memory cgroup`,
    );
    const heapLimit = await inspector.heapLimit();
    const problems = [];
    for (const [name, tokens] of [
      ['principalsAuthorized', authorizeAll],
      ['firstHundredThousand', rest],
    ]) {
      const run = await requestEach(sidecar.url, '/v1/models', tokens, {
        concurrency: s.concurrency,
        onProgress: (n) => progress(`  limited ${name}: ${n.toLocaleString('en-US')} requests`),
      });
      const bad = allOk(run.statuses);
      if (bad !== undefined) problems.push(`${name}: ${bad}`);
    }
    await sleep(500);
    const peak = peakRssBytes(sidecar.child.pid);
    progress(`  in the ${s.containerLimitMb} MiB limit: peak RSS ${mb(peak)} MB (heap limit ${mb(heapLimit)} MB)`);
    return { peak, heapLimit, bad: problems.length > 0 ? problems.join('; ') : undefined };
  } finally {
    inspector.close();
    await sidecar.stop();
    cgroup.remove();
  }
}
