/**
 * Three real `serve --rbac arm` replicas sharing one real redis-server, in front of the ARM fixture
 * (whose request log, with arrival times, is the evidence of how often ARM was read) and the test
 * IdP. Each group of tests starts its own replicas with its own settings.
 */
import { request } from 'undici';
import { CLUSTER_SCOPE, ROLES, type ArmFixture } from '../fixtures/arm.js';
import { TEST_CLIENT_ID, TEST_TENANT_ID, type TestIdp } from '../fixtures/idp.js';
import { startServe, type ServeProcess } from '../e2e/harness.js';

export function armServeFlags(idp: TestIdp, arm: ArmFixture, upstream: string, over: Readonly<Record<string, string>> = {}): Record<string, string> {
  return {
    upstream,
    'tenant-id': TEST_TENANT_ID,
    'client-id': TEST_CLIENT_ID,
    authority: idp.authority,
    rbac: 'arm',
    'rbac-scope': CLUSTER_SCOPE,
    'arm-endpoint': arm.url,
    identity: 'msi-adapter',
    'msi-endpoint': arm.msiEndpoint,
    'log-level': 'info',
    ...over,
  };
}

/** Starts `count` replicas (once more if one was too slow to start on a busy machine). */
export async function startReplicas(
  count: number,
  flags: Readonly<Record<string, string>>,
  env: Readonly<Record<string, string>> = {},
): Promise<ServeProcess[]> {
  try {
    return await startReplicasOnce(count, flags, env);
  } catch {
    return startReplicasOnce(count, flags, env);
  }
}

async function startReplicasOnce(
  count: number,
  flags: Readonly<Record<string, string>>,
  env: Readonly<Record<string, string>>,
): Promise<ServeProcess[]> {
  const started = await Promise.allSettled(Array.from({ length: count }, () => startServe(flags, { env })));
  const replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed !== undefined) {
    await stopAll(replicas);
    throw failed.reason;
  }
  await Promise.all(replicas.map((r) => r.ready()));
  return replicas;
}

export async function stopAll(replicas: readonly ServeProcess[]): Promise<void> {
  await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
}

/** A principal's object ID, distinct per test group by `group`. */
export function principal(group: number, n: number): string {
  return `${group.toString(16).padStart(8, '0')}-aaaa-4bbb-8ccc-${n.toString(16).padStart(12, '0')}`;
}

export function grantUser(arm: ArmFixture, oid: string): void {
  arm.assign(oid, ROLES.openAiUser, CLUSTER_SCOPE);
}

export interface Answer {
  readonly status: number;
  readonly code?: string;
  readonly retryAfter?: string;
}

export async function chat(replica: ServeProcess, token: string): Promise<Answer> {
  const res = await request(`${replica.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{"model":"m","messages":[]}',
  });
  const text = await res.body.text();
  const retry = res.headers['retry-after'];
  if (res.statusCode < 400) return { status: res.statusCode };
  const code = (JSON.parse(text) as { error: { code: string } }).error.code;
  return { status: res.statusCode, code, ...(typeof retry === 'string' ? { retryAfter: retry } : {}) };
}

/** Role-assignment reads ARM received for a principal. */
export function readsOf(arm: ArmFixture, oid: string): number {
  return arm.requestsTo('roleAssignments').filter((r) => r.target.includes(oid)).length;
}

/** A metric's value summed over its label sets, from a replica's /metrics. */
export async function metric(replica: ServeProcess, name: string, labels = ''): Promise<number> {
  const res = await request(`${replica.adminUrl}/metrics`);
  const text = await res.body.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      if (labels !== '' && !line.includes(labels)) continue;
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function flushOn(replica: ServeProcess, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${replica.adminUrl}/cache/flush`, {
    method: 'POST',
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}
