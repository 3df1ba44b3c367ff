// Child processes of a benchmark run and what the kernel knows about them: CPU time and RSS from
// /proc, free loopback ports, and one place that stops everything when the run ends or is interrupted.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli.js');

/** Progress goes to stderr, so `--json` on stdout stays clean. */
export function progress(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

let workDir;
/** A private temporary directory for configs, logs and token files; removed when the run ends. */
export function benchDir() {
  workDir ??= mkdtempSync(join(tmpdir(), 'foundry-auth-bench-'));
  return workDir;
}

const running = new Set();

/** Kills whatever is still running (SIGKILL: this is the last resort) and removes the work directory. */
export function cleanupAll() {
  for (const child of running) {
    // nginx workers outlive a killed master: take the children first.
    for (const pid of child.pid === undefined ? [] : childPids(child.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  running.clear();
  if (workDir !== undefined && process.env.BENCH_KEEP_FILES === undefined) rmSync(workDir, { recursive: true, force: true });
}

process.on('exit', cleanupAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    progress(`${signal}: stopping every process this run started`);
    cleanupAll();
    process.exit(130);
  });
}

/** `taskset` is used when present and asked for; the command runs unpinned otherwise. */
const TASKSET = whichSync('taskset');

export function whichSync(command) {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const candidate = join(dir, command);
    if (dir !== '' && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Spawns a long-running process. `cpus` ("0", "1", "0,1") pins it with taskset (which execs, so
 * the pid is the command's own); `logFile` receives stdout and stderr, otherwise they are ignored.
 */
export function startProcess(command, args, opts = {}) {
  let argv = pinnedCommand(opts.cpus, command, args);
  // opts.cgroup (from memoryCgroup): the process joins it before it execs, so the pid stays the command's own.
  if (opts.cgroup !== undefined) argv = ['sh', ['-c', 'echo $$ > "$0" && exec "$@"', opts.cgroup.procsFile, argv[0], ...argv[1]]];
  const fd = opts.logFile !== undefined ? openSync(opts.logFile, 'a') : undefined;
  const child = spawn(argv[0], argv[1], {
    stdio: ['ignore', fd ?? 'ignore', fd ?? 'ignore'],
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd ?? ROOT,
  });
  if (fd !== undefined) closeSync(fd);
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.stop = async (signal = 'SIGTERM', graceMs = 5_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return child;
}

/**
 * A memory cgroup with a limit, as a container's `resources.limits.memory` makes one (cgroup v2 or
 * v1; needs root): { procsFile, remove() }, or { problem } when this machine cannot make one.
 */
export function memoryCgroup(name, limitBytes) {
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  const dir = v2 ? join('/sys/fs/cgroup', name) : join('/sys/fs/cgroup/memory', name);
  try {
    if (v2 && !readFileSync('/sys/fs/cgroup/cgroup.subtree_control', 'utf8').includes('memory')) {
      writeFileSync('/sys/fs/cgroup/cgroup.subtree_control', '+memory');
    }
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(limitBytes));
  } catch (err) {
    return { problem: `cannot create a memory cgroup at ${dir}: ${err.code ?? err.message}` };
  }
  return {
    procsFile: join(dir, 'cgroup.procs'),
    remove() {
      try {
        rmdirSync(dir);
      } catch {
        // still has a process (it is stopping): the kernel keeps the empty group harmlessly
      }
    },
  };
}

/** Runs a command to completion; resolves with its exit code and output. */
export function runCommand(command, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? ROOT });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    child.once('error', (err) => {
      running.delete(child);
      resolve({ code: -1, stdout, stderr: `${stderr}${err.message}` });
    });
    child.once('close', (code) => {
      running.delete(child);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

export function pinned(cpus) {
  return TASKSET !== undefined ? cpus : undefined;
}

/** `[command, args]` that run `command` on `cpus` ("0", "1", "0,1") through taskset, or as is when either is missing. */
export function pinnedCommand(cpus, command, args) {
  return cpus !== undefined && TASKSET !== undefined ? [TASKSET, ['-c', cpus, command, ...args]] : [command, args];
}

export const CLOCK_TICKS = clockTicks();

function clockTicks() {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * User + system CPU seconds a process (all its threads) has used so far; with `reaped`, plus what
 * its children used that have exited and been waited for (wrk runs, for this process).
 */
export function cpuSeconds(pid, reaped = false) {
  const f = statFields(pid);
  if (f === undefined) return 0;
  // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
  const own = Number(f[11]) + Number(f[12]);
  return (reaped ? own + Number(f[13]) + Number(f[14]) : own) / CLOCK_TICKS;
}

/** CPU seconds of several processes together. */
export function cpuSecondsOf(pids) {
  let total = 0;
  for (const pid of pids) total += cpuSeconds(pid);
  return total;
}

/** The direct children of a process (nginx workers of their master). */
export function childPids(pid) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(name);
    if (f !== undefined && Number(f[1]) === pid) out.push(Number(name));
  }
  return out;
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid) {
  return statusBytes(pid, 'VmRSS');
}

/** The largest resident set size the process has had so far, in bytes (VmHWM, the high-water mark). */
export function peakRssBytes(pid) {
  return statusBytes(pid, 'VmHWM');
}

function statusBytes(pid, field) {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

/** Busy CPU seconds of the whole machine so far (all CPUs; idle and iowait excluded). */
export function machineBusySeconds() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS;
}

/**
 * Measures how much CPU processes outside the run used while `fn` ran: on a shared machine a
 * result taken next to someone's compiler is not a result. `ownPids()` lists the run's processes.
 */
export async function withForeignLoad(ownPids, fn) {
  const pids = ownPids();
  const ours = () => cpuSecondsOf(pids) + cpuSeconds(process.pid, true);
  const ownBefore = ours();
  const busyBefore = machineBusySeconds();
  const started = performance.now();
  const value = await fn();
  const elapsed = (performance.now() - started) / 1000;
  const own = ours() - ownBefore;
  const busy = machineBusySeconds() - busyBefore;
  const foreignCpu = Math.max(0, busy - own);
  return { value, foreignCpuShare: elapsed > 0 ? foreignCpu / elapsed : 0 };
}

/** A free TCP port on 127.0.0.1 (for servers that cannot report the port they bound, like nginx). */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor(what, check, timeoutMs = 15_000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ''}`);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Starts one of the bench's own Node servers (bare-proxy.mjs, bare-check.mjs, sse-upstream.mjs),
 * which print `{"listening": URL}` once they accept; resolves with `{ url, child, pids }`. opts:
 * cpus pins it, nodeArgs adds node flags, node runs it on another Node binary (default this one).
 */
let benchServers = 0;

export async function startBenchServer(name, script, args, opts = {}) {
  // One log per instance: the URL is read from it, and an earlier instance's line must not answer.
  const logFile = join(benchDir(), `${name}-${++benchServers}.log`);
  const child = startProcess(opts.node ?? process.execPath, [...(opts.nodeArgs ?? []), join(ROOT, 'bench', script), ...args], {
    cpus: opts.cpus,
    logFile,
  });
  const url = await waitFor(name, () => {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${readFileSync(logFile, 'utf8').slice(-1000)}`);
    const line = readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('{"listening"'));
    return line === undefined ? undefined : JSON.parse(line).listening;
  });
  return { name, url, child, pids: () => [child.pid], stop: () => child.stop() };
}
