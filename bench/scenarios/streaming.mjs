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
  const upstream = await startBenchServer(
    'sse-upstream',
    'sse-upstream.mjs',
    ['--listen', `127.0.0.1:${await freePort()}`, '--interval-ms', String(s.intervalMs)],
    {
      cpus: ctx.layout.upstream,
    },
  );
  const bare = await startBenchServer('bare-proxy', 'bare-proxy.mjs', ['--listen', `127.0.0.1:${await freePort()}`, '--upstream', upstream.url], {
    cpus: ctx.layout.proxy,
  });
  const sidecar = await startSidecar({ idp: ctx.idp, arm, upstream: upstream.url, cpus: ctx.layout.proxy });
  const [token] = await ctx.idp.mint([ctx.principals.streaming]);
  const runs = { direct: [], bare: [], sidecar: [] };
  try {
    // One short stream through each proxy first: the sidecar's token and RBAC allow are cached before measuring.
    await runStreams(sidecar.url, token, 1, 2);
    await runStreams(bare.url, token, 1, 2);
    progress(
      `streaming: ${s.streams} concurrent streams x ${s.chunks} chunks every ${s.intervalMs} ms; direct, bare undici proxy, foundry-auth; ${s.rounds} round(s) each`,
    );
    for (let r = 0; r < s.rounds; r++) {
      runs.direct.push(await runStreams(upstream.url, token, s.streams, s.chunks));
      runs.bare.push(await runStreams(bare.url, token, s.streams, s.chunks));
      runs.sidecar.push(await runStreams(sidecar.url, token, s.streams, s.chunks));
      progress(
        `  round ${r + 1}: direct ${describe(runs.direct.at(-1))}; bare ${describe(runs.bare.at(-1))}; foundry-auth ${describe(runs.sidecar.at(-1))}`,
      );
    }
  } finally {
    await Promise.allSettled([sidecar.stop(), bare.stop()]);
    await upstream.stop();
  }
  const direct = merge(runs.direct);
  const viaBare = merge(runs.bare);
  const through = merge(runs.sidecar);
  const latencyBare = percentiles(viaBare.latencies, [50, 99, 99.9]);
  const ttfbBare = percentiles(viaBare.ttfb, [50, 99]);
  const ttfbDirect = percentiles(direct.ttfb, [50, 99]);
  const ttfbSidecar = percentiles(through.ttfb, [50, 99]);
  const latencyDirect = percentiles(direct.latencies, [50, 99, 99.9]);
  const latencySidecar = percentiles(through.latencies, [50, 99, 99.9]);
  const gapDirect = percentiles(direct.gaps, [50, 99]);
  const gapSidecar = percentiles(through.gaps, [50, 99]);
  const expected = s.streams * s.rounds;
  const ms = (v) => v.toFixed(2);
  result.measure(
    'time to first event p50: direct / bare undici proxy / foundry-auth',
    `${ms(ttfbDirect.p50)} / ${ms(ttfbBare.p50)} / ${ms(ttfbSidecar.p50)} ms`,
  );
  result.measure(
    'added time to first event p50 / p99: bare undici proxy',
    `+${ms(ttfbBare.p50 - ttfbDirect.p50)} / +${ms(ttfbBare.p99 - ttfbDirect.p99)} ms`,
  );
  result.measure(
    'added time to first event p50 / p99: foundry-auth',
    `+${ms(ttfbSidecar.p50 - ttfbDirect.p50)} / +${ms(ttfbSidecar.p99 - ttfbDirect.p99)} ms`,
  );
  result.measure('event latency (upstream write -> client read), direct p50 / p99', `${ms(latencyDirect.p50)} / ${ms(latencyDirect.p99)} ms`);
  result.measure('event latency, bare undici proxy p50 / p99', `${ms(latencyBare.p50)} / ${ms(latencyBare.p99)} ms`);
  result.measure('event latency, foundry-auth p50 / p99', `${ms(latencySidecar.p50)} / ${ms(latencySidecar.p99)} ms`);
  result.measure(
    'added inter-chunk delay p50 / p99: bare undici proxy',
    `+${ms(latencyBare.p50 - latencyDirect.p50)} / +${ms(latencyBare.p99 - latencyDirect.p99)} ms`,
  );
  const added99 = latencySidecar.p99 - latencyDirect.p99;
  result.target(
    'added inter-chunk delay p50 / p99: foundry-auth',
    `+${ms(latencySidecar.p50 - latencyDirect.p50)} / +${ms(added99)} ms`,
    'p99 <= +2 ms',
    added99 <= 2,
  );
  result.measure(
    'inter-chunk gap at the client, direct / foundry-auth, p50 and p99',
    `${ms(gapDirect.p50)} / ${ms(gapSidecar.p50)} ms, ${ms(gapDirect.p99)} / ${ms(gapSidecar.p99)} ms`,
  );
  const complete = through.complete;
  result.target(
    'streams complete through foundry-auth (all chunks + [DONE])',
    `${complete} / ${expected} (${through.events.toLocaleString('en-US')} events)`,
    'all',
    complete === expected && through.failures.length === 0,
    through.failures.length > 0 ? through.failures.slice(0, 3).join('; ') : undefined,
  );
  if (direct.complete !== expected)
    result.note(`direct streams complete: ${direct.complete} / ${expected}: ${direct.failures.slice(0, 3).join('; ')}`);
  result.note(
    "the SSE upstream is bench/sse-upstream.mjs (the sample backend's event shape with exactly max_tokens chunks; the sample backend's deterministic replies end near 50 tokens); each event carries its CLOCK_MONOTONIC write time, so the added delay is measured per event rather than from gaps that also hold the upstream's own timer jitter",
  );
  result.data = {
    settings: s,
    ttfbMs: { direct: roundAll(ttfbDirect), bare: roundAll(ttfbBare), foundryAuth: roundAll(ttfbSidecar) },
    eventLatencyMs: { direct: roundAll(latencyDirect), bare: roundAll(latencyBare), foundryAuth: roundAll(latencySidecar) },
    gapMs: { direct: roundAll(gapDirect), foundryAuth: roundAll(gapSidecar) },
    streams: { expected, direct: direct.complete, bare: viaBare.complete, foundryAuth: complete },
  };
  return result;
}

function describe(run) {
  const latency = percentiles(run.latencies, [50, 99]);
  return `${run.complete}/${run.streams.length} complete, event latency p50 ${latency.p50.toFixed(2)} / p99 ${latency.p99.toFixed(2)} ms`;
}

function roundAll(values) {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, round(v, 3)]));
}

function merge(runs) {
  return {
    ttfb: runs.flatMap((r) => r.streams.map((st) => st.ttfb).filter((v) => v !== undefined)),
    gaps: runs.flatMap((r) => r.gaps),
    latencies: runs.flatMap((r) => r.latencies),
    complete: runs.reduce((n, r) => n + r.complete, 0),
    events: runs.reduce((n, r) => n + r.streams.reduce((m, st) => m + st.events, 0), 0),
    failures: runs.flatMap((r) => r.failures),
  };
}

/**
 * Opens `count` streaming chat completions at once and records, per stream, when each SSE event
 * arrived. `gaps` are the times between consecutive events from the role chunk to the last token.
 */
export async function runStreams(base, token, count, chunks) {
  const url = new URL('/v1/chat/completions', base);
  const agent = new Agent({ keepAlive: false, maxSockets: count });
  const body = JSON.stringify({
    model: 'phi-4-mini',
    stream: true,
    max_tokens: chunks,
    messages: [{ role: 'user', content: 'Write a long story.' }],
  });
  // Stream starts are spread over one interval, as independent generators would be; started in
  // the same millisecond, every chunk of every stream would fall due at once.
  const spreadMs = SETTINGS.intervalMs / count;
  const streams = await Promise.all(
    Array.from(
      { length: count },
      (_, i) => new Promise((resolve) => setTimeout(() => resolve(oneStream(url, agent, token, body, chunks)), i * spreadMs)),
    ),
  );
  agent.destroy();
  const gaps = [];
  const latencies = [];
  for (const st of streams) {
    for (let i = 1; i < st.times.length && i <= chunks; i++) gaps.push(st.times[i] - st.times[i - 1]);
    for (let i = 0; i < st.latencies.length && i <= chunks; i++) latencies.push(st.latencies[i]);
  }
  const failures = streams.filter((st) => st.problem !== undefined).map((st) => st.problem);
  return { streams, gaps, latencies, complete: streams.filter((st) => st.problem === undefined).length, failures };
}

function oneStream(url, agent, token, body, chunks) {
  return new Promise((resolve) => {
    const started = performance.now();
    const st = { ttfb: undefined, times: [], latencies: [], events: 0, problem: undefined };
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
        const nowUs = Number(process.hrtime.bigint() / 1000n);
        buffered += text;
        let end;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (!event.startsWith('data: ')) continue;
          st.events += 1;
          if (st.ttfb === undefined) st.ttfb = now - started;
          if (event === 'data: [DONE]') {
            done = true;
            continue;
          }
          st.times.push(now);
          // The upstream stamped the event with CLOCK_MONOTONIC (µs) when it wrote it.
          const at = event.indexOf('"sent_us":');
          if (at >= 0) st.latencies.push((nowUs - Number.parseInt(event.slice(at + 10, at + 30), 10)) / 1000);
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
