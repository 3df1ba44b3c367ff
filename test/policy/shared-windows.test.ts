/**
 * Limit windows shared across replicas: three real `serve --rbac static` processes with the same
 * `--policy-file` (5 requests a minute by default) and the same `--shared-cache` (a real
 * redis-server). A principal's requests spread over the replicas are counted in one window; with
 * Redis stopped each replica counts alone (the full limit each, never "no limit", never refusing
 * everyone). The windows are clock minutes: each phase starts with enough of a minute left.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestIdp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { roleAssignmentsFile, staticServeFlags, type ServeProcess } from '../e2e/harness.js';
import { chat, metric, principal, startReplicas, stopAll, type Answer } from '../shared-cache/harness.js';

const PER_MINUTE = 5;
const OIDS = [1, 2, 3].map((n) => principal(0x15, n));
const [SPREAD, ALONE, BYSTANDER] = OIDS as [string, string, string];

let idp: TestIdp;
let up: Upstream;
let redis: RedisServer;
let replicas: ServeProcess[] = [];

beforeAll(async () => {
  [idp, up, redis] = await Promise.all([TestIdp.start(), startUpstream(), startRedis()]);
  const policy = join(mkdtempSync(join(tmpdir(), 'fa-shared-windows-')), 'policy.yaml');
  writeFileSync(policy, `limits:\n  - for: { default: true }\n    requestsPerMinute: ${PER_MINUTE}\n`);
  const rbac = roleAssignmentsFile(OIDS.map((oid) => `{ principalId: ${oid}, role: Cognitive Services OpenAI User }`));
  replicas = await startReplicas(3, {
    ...staticServeFlags(idp, up.url, rbac),
    'policy-file': policy,
    'shared-cache': redis.url,
    'log-level': 'info',
  });
}, 60_000);

afterAll(async () => {
  await stopAll(replicas);
  await Promise.allSettled([redis?.stop(), up?.close(), idp?.close()]);
});

const token = (oid: string): Promise<string> => idp.mint({ claims: { oid } });

/** Waits for the next clock minute when less than 10 s of this one are left, so a phase stays in one window. */
async function startOfWindow(): Promise<number> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 10_000) await new Promise((r) => setTimeout(r, left + 50));
  return Math.floor(Date.now() / 60_000);
}

const fallbacks = async (): Promise<number[]> => Promise.all(replicas.map((r) => metric(r, 'foundry_auth_limit_window_fallbacks_total')));
const sum = (ns: readonly number[]): number => ns.reduce((a, b) => a + b, 0);
const outcome = (a: Answer): string => (a.status === 200 ? '200' : `${a.status} ${a.code}`);

describe('limit windows with --shared-cache and --rbac static', () => {
  it('static mode warns that RBAC decisions are not shared, and says the limit windows are', async () => {
    for (const r of replicas) {
      const line = await r.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('--shared-cache is not used for RBAC with --rbac static'));
      expect(line.sharedLimitWindows).toBe(true);
    }
  });

  it("one principal's requests spread over three replicas share one window: the 6th in the minute is 429 request_limit_exceeded", async () => {
    const minute = await startOfWindow();
    const t = await token(SPREAD);
    const before = up.requests.length;
    const answers: Answer[] = [];
    for (let i = 0; i < 9; i++) answers.push(await chat(replicas[i % 3]!, t));
    expect(Math.floor(Date.now() / 60_000), 'the phase stayed in one clock minute').toBe(minute);
    const fellBack = sum(await fallbacks());
    const admitted = answers.filter((a) => a.status === 200).length;
    if (fellBack === 0) {
      expect(answers.map(outcome)).toEqual([
        ...Array<string>(PER_MINUTE).fill('200'),
        ...Array<string>(9 - PER_MINUTE).fill('429 request_limit_exceeded'),
      ]);
    } else {
      // A Redis operation slower than the windows' 250 ms budget (a very busy machine) was counted in its replica alone, as it
      // must be: each such request may be admitted beyond the shared window (its replica had seen at most 3), never refused.
      expect(admitted, JSON.stringify(answers.map(outcome))).toBeGreaterThanOrEqual(PER_MINUTE);
      expect(admitted, JSON.stringify(answers.map(outcome))).toBeLessThanOrEqual(PER_MINUTE + fellBack);
    }
    // Per process, each replica would have admitted all three of its requests.
    expect(up.requests.length - before).toBe(admitted);
    const refused = answers.at(-1)!;
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
    // Someone else's window is their own.
    expect((await chat(replicas[1]!, await token(BYSTANDER))).status).toBe(200);
  }, 30_000);

  it('Redis stopped: each replica falls back to its own window (the full limit each), never to "no limit" nor to refusing everyone', async () => {
    await redis.kill();
    const minute = await startOfWindow();
    const t = await token(ALONE);
    const perReplica: string[][] = [];
    for (const r of replicas) {
      const answers: string[] = [];
      for (let i = 0; i < PER_MINUTE + 1; i++) answers.push(outcome(await chat(r, t)));
      perReplica.push(answers);
    }
    expect(Math.floor(Date.now() / 60_000), 'the phase stayed in one clock minute').toBe(minute);
    const expected = [...Array<string>(PER_MINUTE).fill('200'), '429 request_limit_exceeded'];
    expect(perReplica).toEqual([expected, expected, expected]);
    // Every replica counted in its own windows because the shared cache failed.
    for (const n of await fallbacks()) expect(n).toBeGreaterThan(0);
    // Another principal is still admitted on every replica.
    const other = await token(BYSTANDER);
    for (const r of replicas) expect((await chat(r, other)).status).toBe(200);
  }, 30_000);
});
