// Scenario 2: streaming. 200 concurrent SSE streams of 100 chunks at 20 ms intervals, direct to
// the SSE upstream and through foundry-auth, alternating; the time to the first event and the
// gaps between events are compared, and every event of every stream must arrive.
import { Agent, request } from 'node:http';
import { startArmForRun } from '../lib/context.mjs';
import { freePort, progress, startBenchServer } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';
import { startSidecar } from '../lib/sidecar.mjs';
import { percentiles, round } from '../lib/stats.mjs';

export const SETTINGS = { streams: 200, chunks: 100, intervalMs: 20, rounds: 2 };

export async function streaming(ctx) {
  const result = new ScenarioResult('streaming', '2 streaming (SSE)');
  const s = ctx.quick ? { ...SETTINGS, rounds: 1 } : SETTINGS;
  const arm = await startArmForRun(ctx);
  const upstream = await startBenchServer('sse-upstream', 'sse-upstream.mjs', ['--listen', `127.0.0.1:${await freePort()}`, '--interval-ms', String(s.intervalMs)], {
    cpus: ctx.layout.upstream,
  });
  const sidecar = await startSidecar({ idp: ctx.idp, arm, upstream: upstream.url, cpus: ctx.layout.proxy });
  const [token] = await ctx.idp.mint([ctx.principals.streaming]);
  const runs = { direct: [], sidecar: [] };
  try {
    // One short stream through the sidecar first: token validated and RBAC allow cached before measuring.
    await runStreams(sidecar.url, token, 1, 2);
    progress(`streaming: ${s.streams} concurrent streams x ${s.chunks} chunks every ${s.intervalMs} ms, direct and through foundry-auth, ${s.rounds} round(s) each`);
    for (let r = 0; r < s.rounds; r++) {
      runs.direct.push(await runStreams(upstream.url, token, s.streams, s.chunks));
      runs.sidecar.push(await runStreams(sidecar.url, token, s.streams, s.chunks));
      progress(`  round ${r + 1}: direct ${describe(runs.direct.at(-1))}; foundry-auth ${describe(runs.sidecar.at(-1))}`);
    }
  } finally {
    await sidecar.stop();
    await upstream.stop();
  }
  const direct = merge(runs.direct);
  const through = merge(runs.sidecar);
  const ttfbDirect = percentiles(direct.ttfb, [50, 99]);
  const ttfbSidecar = percentiles(through.ttfb, [50, 99]);
  const gapDirect = percentiles(direct.gaps, [50, 99, 99.9]);
  const gapSidecar = percentiles(through.gaps, [50, 99, 99.9]);
  const expected = s.streams * s.rounds;
  result.measure('time to first event, direct p50 / p99', `${ttfbDirect.p50.toFixed(2)} / ${ttfbDirect.p99.toFixed(2)} ms`);
  result.measure('time to first event, foundry-auth p50 / p99', `${ttfbSidecar.p50.toFixed(2)} / ${ttfbSidecar.p99.toFixed(2)} ms`);
  result.measure('added time to first event p50 / p99', `+${(ttfbSidecar.p50 - ttfbDirect.p50).toFixed(2)} / +${(ttfbSidecar.p99 - ttfbDirect.p99).toFixed(2)} ms`);
  result.measure('inter-chunk gap, direct p50 / p99', `${gapDirect.p50.toFixed(2)} / ${gapDirect.p99.toFixed(2)} ms`);
  result.measure('inter-chunk gap, foundry-auth p50 / p99', `${gapSidecar.p50.toFixed(2)} / ${gapSidecar.p99.toFixed(2)} ms`);
  const added99 = gapSidecar.p99 - gapDirect.p99;
  result.target('added inter-chunk delay p50 / p99', `+${(gapSidecar.p50 - gapDirect.p50).toFixed(2)} / +${added99.toFixed(2)} ms`, 'p99 <= +2 ms', added99 <= 2);
  const complete = through.complete;
  result.target(
    'streams complete through foundry-auth (all chunks + [DONE])',
    `${complete} / ${expected} (${through.events.toLocaleString('en-US')} events)`,
    'all',
    complete === expected && through.failures.length === 0,
    through.failures.length > 0 ? through.failures.slice(0, 3).join('; ') : undefined,
  );
  if (direct.complete !== expected) result.note(`direct streams complete: ${direct.complete} / ${expected}: ${direct.failures.slice(0, 3).join('; ')}`);
  result.note('the SSE upstream is bench/sse-upstream.mjs (the sample backend\'s event shape with exactly max_tokens chunks): the sample backend\'s deterministic replies end near 50 tokens');
  result.data = {
    settings: s,
    ttfbMs: { direct: roundAll(ttfbDirect), foundryAuth: roundAll(ttfbSidecar) },
    gapMs: { direct: roundAll(gapDirect), foundryAuth: roundAll(gapSidecar) },
    streams: { expected, direct: direct.complete, foundryAuth: complete },
  };
  return result;
}

function describe(run) {
  const gaps = percentiles(run.gaps, [99]);
  return `${run.complete}/${run.streams.length} complete, gap p99 ${gaps.p99.toFixed(2)} ms`;
}

function roundAll(values) {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, round(v, 3)]));
}

function merge(runs) {
  return {
    ttfb: runs.flatMap((r) => r.streams.map((st) => st.ttfb).filter((v) => v !== undefined)),
    gaps: runs.flatMap((r) => r.gaps),
    complete: runs.reduce((n, r) => n + r.complete, 0),
    events: runs.reduce((n, r) => n + r.streams.reduce((m, st) => m + st.events, 0), 0),
    failures: runs.flatMap((r) => r.failures),
  };
}

/**
 * Opens `count` streaming chat completions at once and records, per stream, when each SSE event
 * arrived. `gaps` are the times between consecutive events from the role chunk to the last token.
 */
async function runStreams(base, token, count, chunks) {
  const url = new URL('/v1/chat/completions', base);
  const agent = new Agent({ keepAlive: false, maxSockets: count });
  const body = JSON.stringify({ model: 'phi-4-mini', stream: true, max_tokens: chunks, messages: [{ role: 'user', content: 'Write a long story.' }] });
  const streams = await Promise.all(Array.from({ length: count }, () => oneStream(url, agent, token, body, chunks)));
  agent.destroy();
  const gaps = [];
  for (const st of streams) for (let i = 1; i < st.times.length && i <= chunks; i++) gaps.push(st.times[i] - st.times[i - 1]);
  const failures = streams.filter((st) => st.problem !== undefined).map((st) => st.problem);
  return { streams, gaps, complete: streams.filter((st) => st.problem === undefined).length, failures };
}

function oneStream(url, agent, token, body, chunks) {
  return new Promise((resolve) => {
    const started = performance.now();
    const st = { ttfb: undefined, times: [], events: 0, problem: undefined };
    const req = request(url, {
      method: 'POST',
      agent,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        st.problem = `HTTP ${res.statusCode}`;
        res.resume();
        res.on('end', () => resolve(st));
        return;
      }
      let buffered = '';
      let done = false;
      res.setEncoding('utf8');
      res.on('data', (text) => {
        const now = performance.now();
        buffered += text;
        let end;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (!event.startsWith('data: ')) continue;
          st.events += 1;
          if (st.ttfb === undefined) st.ttfb = now - started;
          if (event === 'data: [DONE]') done = true;
          else st.times.push(now);
        }
      });
      res.on('end', () => {
        // role chunk + tokens + finish chunk, then [DONE]
        if (!done || st.times.length !== chunks + 2) st.problem = `stream ended after ${st.events} events${done ? '' : ' without [DONE]'}`;
        resolve(st);
      });
      res.on('error', (err) => {
        st.problem = err.message;
        resolve(st);
      });
    });
    req.on('error', (err) => {
      st.problem = err.message;
      resolve(st);
    });
    req.end(body);
  });
}
