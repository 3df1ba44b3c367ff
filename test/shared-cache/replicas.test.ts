/**
 * Issue 12 end to end: three real `serve` replicas share RBAC lookups, the ARM read budget, 429
 * pauses and flushes through a real redis-server, against the ARM fixture (its request log is the
 * evidence of every ARM read, with arrival times).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArmFixture, CLUSTER_SCOPE, ROLES } from '../fixtures/arm.js';
import { TestIdp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import type { ServeProcess } from '../e2e/harness.js';
import { armServeFlags, chat, flushOn, grantUser, metric, principal, readsOf, startReplicas, stopAll, waitUntil } from './harness.js';

let idp: TestIdp;
let arm: ArmFixture;
let up: Upstream;
let redis: RedisServer;

beforeAll(async () => {
  [idp, arm, up, redis] = await Promise.all([TestIdp.start(), ArmFixture.start(), startUpstream(), startRedis()]);
});

afterAll(async () => {
  await Promise.allSettled([redis?.stop(), arm?.close(), up?.close(), idp?.close()]);
});

const token = (oid: string): Promise<string> => idp.mint({ claims: { oid } });

describe('three replicas, long TTLs', () => {
  let replicas: ServeProcess[];
  beforeAll(async () => {
    replicas = await startReplicas(
      3,
      armServeFlags(idp, arm, up.url, { 'shared-cache': redis.url, 'shared-cache-timeout': '1s', 'arm-read-rate': '1000', 'rbac-deny-ttl': '300s' }),
    );
  }, 30_000);
  afterAll(() => stopAll(replicas ?? []));

  it('300 cold principals requested at once on all three replicas make exactly 300 role-assignment reads, with the same decisions everywhere', async () => {
    const oids = Array.from({ length: 300 }, (_, i) => principal(1, i));
    oids.forEach((oid, i) => i % 2 === 0 && grantUser(arm, oid));
    const tokens = await Promise.all(oids.map(token));
    const before = arm.calls.roleAssignments;
    const answers = await Promise.all(tokens.flatMap((t) => replicas.map((r) => chat(r, t))));
    // Named in the failure message: how each replica's misses were answered (hit, miss, waited, local) and its shared-cache errors.
    const outcomes = await Promise.all(
      replicas.map(async (r) => [
        ...(await Promise.all(['hit', 'miss', 'waited', 'local'].map((o) => metric(r, 'foundry_auth_shared_cache_lookups_total', `outcome="${o}"`)))),
        await metric(r, 'foundry_auth_shared_cache_errors_total'),
      ]),
    );
    const reads = arm.calls.roleAssignments - before;
    const sum = (i: number): number => outcomes.reduce((n, o) => n + o[i]!, 0);
    if (sum(4) === 0) {
      expect(reads, JSON.stringify(outcomes)).toBe(300);
    } else {
      // A replica whose Redis operations exceeded --shared-cache-timeout (a very busy machine) read
      // alone meanwhile, as it must: then every read is one under a lease or one counted as alone.
      expect(reads, JSON.stringify(outcomes)).toBe(sum(1) + sum(3));
      expect(sum(1)).toBeLessThanOrEqual(300);
    }
    answers.forEach((a, n) => {
      const i = Math.floor(n / 3);
      expect(a.status, `principal ${i} on replica ${n % 3}`).toBe(i % 2 === 0 ? 200 : 403);
    });
    if (sum(4) === 0) for (const oid of oids) expect(readsOf(arm, oid)).toBe(1);
    const shared = await Promise.all(replicas.map((r) => metric(r, 'foundry_auth_shared_cache_lookups_total')));
    expect(shared.reduce((a, b) => a + b, 0)).toBe(900);
    // ARM's remaining-reads header (the fixture sends 11999) is a metric in the replicas that read.
    const remaining = await Promise.all(replicas.map((r) => metric(r, 'foundry_auth_arm_remaining_subscription_reads')));
    expect(remaining).toContain(11999);
  }, 60_000);

  it('1,000 concurrent requests of one cold principal spread over the replicas make one read', async () => {
    const oid = principal(2, 1);
    grantUser(arm, oid);
    const t = await token(oid);
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => chat(replicas[i % 3]!, t)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(readsOf(arm, oid)).toBe(1);
  }, 60_000);

  it('a flush on replica A makes B and C read ARM again, and a revoked assignment is denied everywhere within 1 s', async () => {
    const oid = principal(3, 1);
    const assignment = arm.assign(oid, ROLES.openAiUser, CLUSTER_SCOPE);
    const t = await token(oid);
    for (const r of replicas) expect((await chat(r, t)).status).toBe(200);
    expect(readsOf(arm, oid)).toBe(1);
    arm.assignments.splice(arm.assignments.indexOf(assignment), 1);
    // Revoked in ARM, still allowed from every cache until the flush.
    for (const r of replicas) expect((await chat(r, t)).status).toBe(200);
    const flushedAt = Date.now();
    const flushed = await flushOn(replicas[0]!, { principal: oid });
    expect(flushed).toEqual({ status: 200, json: { status: 'flushed', flushed: oid, reach: 'shared' } });
    await waitUntil('every replica denies', async () => (await Promise.all(replicas.map((r) => chat(r, t)))).every((a) => a.status === 403), 1000);
    expect(Date.now() - flushedAt).toBeLessThan(1000);
    // One new read for all three replicas (the shared tier answered the others).
    expect(readsOf(arm, oid)).toBe(2);
  });

  it('POST /cache/flush with no body flushes everyone; a bad body is 400; GET is 405', async () => {
    const oid = principal(3, 2);
    grantUser(arm, oid);
    const t = await token(oid);
    await chat(replicas[1]!, t);
    expect((await flushOn(replicas[2]!)).json).toMatchObject({ status: 'flushed', flushed: 'all', reach: 'shared' });
    // The flush reaches B's memory through pub/sub: within 1 s, B reads ARM again (once).
    await waitUntil('replica B reads ARM again', async () => (await chat(replicas[1]!, t)).status === 200 && readsOf(arm, oid) >= 2, 1000);
    expect(readsOf(arm, oid)).toBe(2);
    expect((await flushOn(replicas[0]!, { principal: 'not-a-guid' })).status).toBe(400);
    expect((await flushOn(replicas[0]!, { other: 1 })).status).toBe(400);
    const res = await fetch(`${replicas[0]!.adminUrl}/cache/flush`);
    expect(res.status).toBe(405);
  });

  it('an ARM 429 with Retry-After: 5 seen by replica A pauses B and C: no ARM call for 5 s, 500 with Retry-After meanwhile', async () => {
    arm.fault('roleAssignments', { status: 429, headers: { 'retry-after': '5' }, times: 1 });
    const [a, b, c] = replicas as [ServeProcess, ServeProcess, ServeProcess];
    const throttledAt = Date.now();
    expect(await chat(a, await token(principal(4, 0)))).toMatchObject({ status: 500, code: 'rbac_check_unavailable', retryAfter: '5' });
    const callsAfter429 = arm.calls.roleAssignments;
    // New cold principals on B and C within the pause: answered 500 without calling ARM.
    for (let i = 1; i <= 4; i++) {
      const answer = await chat(i % 2 === 0 ? b : c, await token(principal(4, i)));
      expect(answer.status).toBe(500);
      expect(answer.code).toBe('rbac_check_unavailable');
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(answer.retryAfter)).toBeLessThanOrEqual(5);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, throttledAt + 4300 - Date.now())));
    expect((await chat(b, await token(principal(4, 9)))).status).toBe(500);
    expect(arm.calls.roleAssignments).toBe(callsAfter429);
    // After the pause, reads resume on every replica.
    await new Promise((r) => setTimeout(r, Math.max(0, throttledAt + 5200 - Date.now())));
    grantUser(arm, principal(4, 10));
    expect((await chat(c, await token(principal(4, 10)))).status).toBe(200);
    expect(arm.calls.roleAssignments).toBe(callsAfter429 + 1);
  }, 20_000);

  it('Redis killed mid-run: no 5xx, decisions unchanged, one warning per replica; restarted: shared again without restarting the replicas', async () => {
    const oids = Array.from({ length: 30 }, (_, i) => principal(5, i));
    oids.forEach((oid, i) => i % 3 !== 0 && grantUser(arm, oid));
    const tokens = await Promise.all(oids.map(token));
    const expected = (i: number): number => (i % 3 !== 0 ? 200 : 403);
    const round = async (): Promise<void> => {
      const answers = await Promise.all(tokens.flatMap((t) => replicas.map((r) => chat(r, t))));
      answers.forEach((a, n) => expect(a.status, `principal ${Math.floor(n / 3)}`).toBe(expected(Math.floor(n / 3))));
    };
    await round();
    const logsBefore = replicas.map((r) => r.logs.length);
    await redis.kill();
    // Cached principals, and cold ones read by each replica alone: same answers, no 5xx.
    for (let i = 0; i < 3; i++) await round();
    const cold = principal(5, 100);
    grantUser(arm, cold);
    const coldToken = await token(cold);
    for (const r of replicas) expect((await chat(r, coldToken)).status).toBe(200);
    for (const [i, r] of replicas.entries()) {
      await r.waitForLog((l) => l.msg.startsWith('shared cache unavailable') && r.logs.indexOf(l) >= logsBefore[i]!);
      expect(r.logs.slice(logsBefore[i]).filter((l) => l.msg.startsWith('shared cache unavailable'))).toHaveLength(1);
      expect(await metric(r, 'foundry_auth_shared_cache_errors_total')).toBeGreaterThan(0);
      expect(await metric(r, 'foundry_auth_shared_cache_up')).toBe(0);
    }
    // Ready all along.
    for (const r of replicas) expect((await fetch(`${r.adminUrl}/readyz`)).status).toBe(200);

    await redis.restart();
    for (const r of replicas)
      await waitUntil('the replica uses the shared cache again', async () => (await metric(r, 'foundry_auth_shared_cache_up')) === 1, 10_000);
    const after = principal(5, 200);
    grantUser(arm, after);
    const afterToken = await token(after);
    const answers = await Promise.all(replicas.flatMap((r) => [chat(r, afterToken), chat(r, afterToken)]));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(readsOf(arm, after)).toBe(1);
    await round();
  }, 60_000);
});

describe('three replicas, short TTLs', () => {
  let replicas: ServeProcess[];
  beforeAll(async () => {
    replicas = await startReplicas(
      3,
      armServeFlags(idp, arm, up.url, {
        'shared-cache': redis.url,
        'shared-cache-timeout': '1s',
        'arm-read-rate': '1000',
        'rbac-allow-ttl': '2s',
        'rbac-deny-ttl': '1s',
      }),
    );
  }, 30_000);
  afterAll(() => stopAll(replicas ?? []));

  it('an entry read by A at t is refreshed once at t + allow TTL, by whichever replica sees it first', async () => {
    const oid = principal(6, 1);
    grantUser(arm, oid);
    const t = await token(oid);
    expect((await chat(replicas[0]!, t)).status).toBe(200);
    const readAt = arm.requestsTo('roleAssignments').filter((r) => r.target.includes(oid))[0]!.atMs;
    // Every replica asks every 100 ms for 3 s: one refresh at t + 2 s.
    const until = readAt + 3000;
    while (Date.now() < until) {
      const answers = await Promise.all(replicas.map((r) => chat(r, t)));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
    }
    const reads = arm.requestsTo('roleAssignments').filter((r) => r.target.includes(oid));
    expect(reads).toHaveLength(2);
    // t is when the reading replica started its lookup, a little before ARM saw the request.
    expect(reads[1]!.atMs - readAt).toBeGreaterThanOrEqual(1800);
    expect(reads[1]!.atMs - readAt).toBeLessThan(2500);
  }, 20_000);
});

describe('three replicas, --arm-read-rate 5', () => {
  let replicas: ServeProcess[];
  beforeAll(async () => {
    replicas = await startReplicas(
      3,
      armServeFlags(idp, arm, up.url, { 'shared-cache': redis.url, 'shared-cache-timeout': '1s', 'arm-read-rate': '5', 'rbac-timeout': '3s' }),
    );
  }, 30_000);
  afterAll(() => stopAll(replicas ?? []));

  it('50 cold principals on three replicas: never more reads in a second than the bucket allows; the rest wait, then 500 with Retry-After', async () => {
    const oids = Array.from({ length: 50 }, (_, i) => principal(7, i));
    oids.forEach((oid) => grantUser(arm, oid));
    const tokens = await Promise.all(oids.map(token));
    const startedAt = Date.now();
    const answers = await Promise.all(tokens.map((t, i) => chat(replicas[i % 3]!, t)));
    const reads = arm
      .requestsTo('roleAssignments')
      .filter((r) => r.atMs >= startedAt && oids.some((o) => r.target.includes(o)))
      .map((r) => r.atMs)
      .sort((x, y) => x - y);
    // A bucket of 5 tokens refilled at 5/s: at most 5 + 5 reads in any one-second window.
    for (const at of reads) expect(reads.filter((x) => x >= at && x < at + 1000).length).toBeLessThanOrEqual(10);
    const allowed = answers.filter((a) => a.status === 200).length;
    expect(allowed).toBe(reads.length);
    // Over the span of the reads (about the 3 s --rbac-timeout; longer when a loaded machine delays
    // the requests' arrival) at most the burst of 5 plus 5 per second.
    const spanSeconds = reads.length === 0 ? 0 : (reads[reads.length - 1]! - reads[0]!) / 1000;
    expect(reads.length).toBeLessThanOrEqual(5 + Math.ceil(5 * spanSeconds) + 1);
    expect(reads.length).toBeGreaterThanOrEqual(10);
    for (const a of answers.filter((x) => x.status !== 200)) {
      expect(a).toMatchObject({ status: 500, code: 'rbac_check_unavailable' });
      expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    const waits = await Promise.all(replicas.map((r) => metric(r, 'foundry_auth_arm_budget_waits_total')));
    expect(waits.reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
  }, 30_000);
});
