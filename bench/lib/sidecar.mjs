// `foundry-auth serve` as users run it (node dist/cli.js serve), one process, stdout (the JSON
// audit log at --log-level info) into a file as a log shipper would read it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { BENCH_CLIENT_ID } from './idp.mjs';
import { benchDir, CLI, freePort, startProcess, waitFor } from './proc.mjs';

let instances = 0;

/**
 * flags: serve flags (without `--`) merged over the defaults below; cpus pins it; nodeArgs adds
 * node flags (e.g. `--cpu-prof`); node runs it on another Node binary (default this one); cli
 * runs another build (A/B comparisons of a change); cgroup (proc.mjs memoryCgroup) runs it under a
 * container-like memory limit.
 */
export async function startSidecar({ idp, arm, upstream, flags = {}, cpus, nodeArgs = [], node = process.execPath, cli = CLI, logTo, cgroup }) {
  const name = `sidecar-${++instances}`;
  const logFile = logTo ?? join(benchDir(), `${name}.log`);
  const port = await freePort();
  const adminPort = await freePort();
  const all = {
    listen: `127.0.0.1:${port}`,
    'admin-listen': `127.0.0.1:${adminPort}`,
    // Forward-auth mode has no upstream.
    ...(upstream !== undefined ? { upstream } : {}),
    'tenant-id': idp.tenantId,
    'client-id': BENCH_CLIENT_ID,
    authority: idp.authority,
    'log-level': 'info',
    'shutdown-grace': '2s',
    ...arm.sidecarFlags,
    ...flags,
  };
  const args = [...nodeArgs, cli, 'serve'];
  for (const [flag, value] of Object.entries(all)) args.push(`--${flag}`, value);
  // BENCH_SIDECAR_NODE_OPTIONS: node options for the sidecars alone (e.g. a heap limit), not the bench.
  const nodeOptions = process.env.BENCH_SIDECAR_NODE_OPTIONS;
  const env = nodeOptions !== undefined ? { NODE_OPTIONS: nodeOptions } : {};
  const child = startProcess(node, args, { cpus, logFile, cwd: benchDir(), env, cgroup });
  const listening = { listen: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}` };
  // Readiness, not the start-up log line: at --log-level warn there is none.
  await waitFor(
    `${name} readiness`,
    async () => {
      if (child.exitCode !== null) throw new Error(`foundry-auth serve exited with ${child.exitCode}: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
      const res = await request(`${listening.admin}/readyz`);
      await res.body.dump();
      return res.statusCode === 200 || undefined;
    },
    30_000,
  );
  return {
    name,
    url: listening.listen,
    adminUrl: listening.admin,
    child,
    logFile,
    pids: () => [child.pid],
    /** The Prometheus text of /metrics. */
    async metrics() {
      const res = await request(`${listening.admin}/metrics`);
      return res.body.text();
    },
    /** Audit lines written so far (only those with msg "request"). */
    auditLines() {
      return readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"msg":"request"')).length;
    },
    stop: () => child.stop('SIGTERM', 10_000),
  };
}

/** The value of one Prometheus sample (first line that starts with `prefix`), or undefined. */
export function metricValue(text, prefix) {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}
