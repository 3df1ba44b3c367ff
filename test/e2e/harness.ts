/**
 * Starts the real `foundry-auth serve` process (node dist/cli.js, built by `npm test`'s pretest) on
 * ephemeral loopback ports and hands back its URLs and every log line it printed.
 *
 *   const sidecar = await startServe({ upstream: up.url, 'tenant-id': ..., ... });
 *   await sidecar.ready();                      // /readyz answered 200
 *   sidecar.logs                                // parsed JSON log lines so far
 *   sidecar.stdout                              // raw stdout text (for "no token in logs" checks)
 *   await sidecar.stop('SIGTERM')               // exit code
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { TestIdp, TEST_CLIENT_ID, TEST_TENANT_ID, TEST_USER_OID } from '../fixtures/idp.js';
import { RawClient, startUpstream, type RawResponse, type Upstream } from '../fixtures/upstream.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

export interface ServeProcess {
  readonly url: string;
  readonly adminUrl: string;
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  stdout: string;
  stderr: string;
  ready(timeoutMs?: number): Promise<void>;
  /** Resolves with the first log line (now or later) that satisfies `match`. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startServe(
  flags: Readonly<Record<string, string>>,
  opts: {
    env?: Readonly<Record<string, string>>;
    extraArgs?: readonly string[];
    /** Another installation's cli.js (default: this repository's dist/cli.js). */
    cli?: string;
    /** A command the node command line is appended to, e.g. a namespace wrapper (`unshare ... --`). */
    launcher?: readonly string[];
  } = {},
): Promise<ServeProcess> {
  const args = [opts.cli ?? CLI, 'serve', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--log-level', 'debug'];
  for (const [flag, value] of Object.entries(flags)) args.push(`--${flag}`, value);
  args.push(...(opts.extraArgs ?? []));
  const [file, ...argv] = [...(opts.launcher ?? []), process.execPath, ...args];
  const child = spawn(file!, argv, {
    env: { PATH: process.env.PATH ?? '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let buffered = '';
  const proc = {
    child,
    logs,
    stdout: '',
    stderr: '',
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    proc.stdout += chunk;
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        continue;
      }
      logs.push(parsed);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.match(parsed)) waiters.splice(i, 1)[0]!.resolve(parsed);
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    proc.stderr += chunk;
  });

  function waitForLog(match: (line: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${proc.stderr}`)), timeoutMs);
      const exited = (): void => {
        clearTimeout(timer);
        reject(new Error(`serve exited (${child.exitCode}) before the log line; stderr: ${proc.stderr}`));
      };
      child.once('exit', exited);
      waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          child.off('exit', exited);
          resolve(l);
        },
      });
    });
  }

  const listening = await waitForLog((l) => l.msg === 'foundry-auth serve listening');
  const url = listening.listen as string;
  const adminUrl = listening.admin as string;

  return Object.assign(proc, {
    url,
    adminUrl,
    waitForLog,
    async ready(timeoutMs = 15_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < deadline) {
        const res = await request(`${adminUrl}/readyz`);
        last = await res.body.text();
        if (res.statusCode === 200) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`not ready within ${timeoutMs} ms: ${last}`);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (child.exitCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  });
}

/** The Arc cluster the e2e role assignments files are scoped to. */
export const SUBSCRIPTION_ID = '00000000-1111-2222-3333-444444444444';
export const SCOPE = `/subscriptions/${SUBSCRIPTION_ID}/resourceGroups/edge/providers/Microsoft.Kubernetes/connectedClusters/store-42`;

/** A role assignments file for `--rbac static` in a new temporary directory; by default the fixture's user holds OpenAI User. */
export function roleAssignmentsFile(
  assignments: readonly string[] = [`{ principalId: ${TEST_USER_OID}, role: Cognitive Services OpenAI User }`],
): string {
  const file = join(mkdtempSync(join(tmpdir(), 'fa-e2e-')), 'rbac.yaml');
  writeFileSync(file, `scope: ${SCOPE}\nroleAssignments:\n${assignments.map((a) => `  - ${a}\n`).join('')}`);
  return file;
}

/** `serve` flags that trust the test IdP's tenant and app and decide with `--rbac static`. */
export function staticServeFlags(idp: TestIdp, upstream: string, rbacFile = roleAssignmentsFile()): Record<string, string> {
  return {
    upstream,
    'tenant-id': TEST_TENANT_ID,
    'client-id': TEST_CLIENT_ID,
    authority: idp.authority,
    rbac: 'static',
    'role-assignments-file': rbacFile,
  };
}

export interface StaticStack {
  readonly idp: TestIdp;
  readonly up: Upstream;
  readonly sidecar: ServeProcess;
  /** Kills the sidecar and closes the upstream and the IdP. */
  close(): Promise<void>;
}

/** The test IdP, a recording upstream and a ready `serve --rbac static` in front of it. */
export async function startStaticStack(
  opts: { tenants?: string[]; rbacFile?: string; flags?: Readonly<Record<string, string>> } = {},
): Promise<StaticStack> {
  const idp = await TestIdp.start(opts.tenants ? { tenants: opts.tenants } : {});
  const up = await startUpstream();
  let sidecar: ServeProcess | undefined;
  const close = async (): Promise<void> => {
    await sidecar?.stop('SIGKILL');
    await up.close();
    await idp.close();
  };
  try {
    sidecar = await startServe({ ...staticServeFlags(idp, up.url, opts.rbacFile), ...opts.flags });
    await sidecar.ready();
    return { idp, up, sidecar, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Writes exact bytes to a listener and reads one response, then disconnects. */
export async function rawRequest(url: string, bytes: string): Promise<RawResponse> {
  const c = await RawClient.connect(Number(new URL(url).port));
  try {
    c.write(bytes);
    return await c.readResponse();
  } finally {
    c.destroy();
  }
}

/** Runs `foundry-auth <args>` to completion (for start-up errors and one-shot commands). */
export async function runCli(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}
