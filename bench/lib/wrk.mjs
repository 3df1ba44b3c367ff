// Runs wrk with bench/wrk/bench.lua and returns what its `done` printed, plus the CPU seconds
// the measured proxy process used during the run and how busy the rest of the machine was.
import { join } from 'node:path';
import { cpuSecondsOf, pinnedCommand, progress, ROOT, runCommand, withForeignLoad } from './proc.mjs';

const SCRIPT = join(ROOT, 'bench', 'wrk', 'bench.lua');

/**
 * opts: url, threads, connections, seconds, token (bearer), rate (paced: requests per second in
 * total), tokensFile (one token per request), bodyFile (POST it as the JSON body), cpus (taskset list for wrk), measure (pids whose
 * CPU time is charged to the run), ownPids (every process of the run, for the foreign-load check).
 */
export async function runWrk(wrk, opts) {
  const env = { BENCH_THREADS: String(opts.threads) };
  if (opts.token !== undefined) env.BENCH_AUTH = opts.token;
  if (opts.tokensFile !== undefined) env.BENCH_TOKENS_FILE = opts.tokensFile;
  if (opts.bodyFile !== undefined) env.BENCH_BODY_FILE = opts.bodyFile;
  // wrk's timers add about a millisecond to every pause (they fire on the next event-loop turn).
  if (opts.rate !== undefined) env.BENCH_DELAY_MS = String(Math.max(0, (opts.connections / opts.rate) * 1000 - 1));
  const args = ['-t', String(opts.threads), '-c', String(opts.connections), '-d', `${opts.seconds}s`, '--timeout', '10s', '-s', SCRIPT, opts.url];
  const [command, argv] = pinnedCommand(opts.cpus, wrk, args);
  const measured = opts.measure ?? (() => []);
  const pidsBefore = measured();
  const cpuBefore = cpuSecondsOf(pidsBefore);
  const { value: result, foreignCpuShare } = await withForeignLoad(opts.ownPids ?? measured, () => runCommand(command, argv, { env }));
  const cpu = cpuSecondsOf(pidsBefore) - cpuBefore;
  const line = result.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (result.code !== 0 || line === undefined) {
    throw new Error(`wrk failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  }
  const data = JSON.parse(line.slice('WRKJSON '.length));
  const seconds = data.durationUs / 1e6;
  const errors = Object.values(data.errors).reduce((a, b) => a + b, 0);
  const summary = {
    requests: data.requests,
    seconds,
    rps: data.requests / seconds,
    errors,
    errorDetail: data.errors,
    latencyMs: Object.fromEntries(Object.entries(data.latencyUs).map(([k, v]) => [k, v / 1000])),
    cpuSeconds: cpu,
    cpuMicrosPerRequest: data.requests > 0 ? (cpu / data.requests) * 1e6 : undefined,
    foreignCpuShare,
  };
  if (opts.label !== undefined) {
    progress(
      `  ${opts.label}: ${Math.round(summary.rps).toLocaleString('en-US')} req/s, p50 ${summary.latencyMs.p50.toFixed(3)} ms, p99 ${summary.latencyMs.p99.toFixed(3)} ms` +
        `${summary.cpuMicrosPerRequest !== undefined && cpu > 0 ? `, ${summary.cpuMicrosPerRequest.toFixed(1)} µs CPU/req` : ''}${errors > 0 ? `, ${errors} errors ${JSON.stringify(data.errors)}` : ''}` +
        `${foreignCpuShare > 0.1 ? `, other processes used ${(foreignCpuShare * 100).toFixed(0)}% of a CPU` : ''}`,
    );
  }
  return summary;
}
