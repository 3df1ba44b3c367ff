// A closed-loop load client in Node for the scenarios that care about exact counts (every token
// used once, every status checked) more than about the client's own speed: undici Pool, fixed
// concurrency, one request per item.
import { Pool } from 'undici';

/**
 * Sends one GET per token (`Authorization: Bearer <token>`) with `concurrency` requests in flight.
 * Resolves with the status counts and latencies (ms) in request order.
 */
export async function requestEach(url, path, tokens, { concurrency = 32, onProgress } = {}) {
  const pool = new Pool(url, { connections: concurrency, pipelining: 1 });
  const statuses = new Map();
  const latencies = new Float64Array(tokens.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < tokens.length) {
      const i = next++;
      const started = performance.now();
      const res = await pool.request({ path, method: 'GET', headers: { authorization: `Bearer ${tokens[i]}` } });
      await res.body.dump();
      latencies[i] = performance.now() - started;
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      if (++done % 20_000 === 0) onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tokens.length) }, worker));
  await pool.close();
  return { statuses: Object.fromEntries(statuses), latencies };
}

/** Only 200s? Otherwise a short description of what came back. */
export function allOk(statuses) {
  const other = Object.entries(statuses).filter(([status]) => status !== '200');
  return other.length === 0 ? undefined : other.map(([s, n]) => `${n} x ${s}`).join(', ');
}
