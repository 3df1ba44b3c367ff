import { describe, expect, it } from 'vitest';
import { createAuthorizer } from '../../src/authz/authorizer.js';
import { AccessCache, principalKey } from '../../src/authz/cache.js';
import type { Authorizer, Decision } from '../../src/contracts/decision.js';
import { BUILT_IN_ROLES, ROLE_IDS } from '../../src/authz/roles.js';
import { AccessSourceError, type AccessSnapshot } from '../../src/authz/source.js';
import type { Principal } from '../../src/contracts/principal.js';
import { ManualClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { CLUSTER, CountingSource, OTHER_TENANT, ROUTES, TENANT, capturingLogger, oid, rbacConfig, user } from './helpers.js';

const ALLOW_TTL = 300_000;
const DENY_TTL = 30_000;

function openAiUser(principalId: string): AccessSnapshot {
  const role = BUILT_IN_ROLES.find((r) => r.id === ROLE_IDS.openAiUser)!;
  return {
    assignments: [{ roleDefinitionId: role.id, roleName: role.roleName, scope: CLUSTER, principalId, permissions: role.permissions }],
    denyAssignments: [],
  };
}
const NO_ACCESS: AccessSnapshot = { assignments: [], denyAssignments: [] };

function setup(
  opts: { staleIfErrorMs?: number; cacheMaxEntries?: number; answer?: (p: Principal) => AccessSnapshot | Promise<AccessSnapshot> } = {},
) {
  const clock = new ManualClock();
  const source = new CountingSource(opts.answer ?? ((p) => openAiUser(p.oid)));
  const metrics = new Metrics({ defaultMetrics: false });
  const logged = capturingLogger();
  const authorizer = createAuthorizer({
    rbac: rbacConfig({ mode: 'arm', scope: CLUSTER, allowTtlMs: ALLOW_TTL, denyTtlMs: DENY_TTL, staleIfErrorMs: opts.staleIfErrorMs ?? 0 }),
    source,
    scope: CLUSTER,
    clock,
    log: logged.log,
    metrics,
    ...(opts.cacheMaxEntries !== undefined ? { cacheMaxEntries: opts.cacheMaxEntries } : {}),
  });
  return { clock, source, metrics, authorizer, lines: logged.lines };
}

const throttled = () => {
  throw new AccessSourceError('arm_throttled', 'ARM throttled the role assignment lookup (429)', 17);
};

/** Starts `count` concurrent decisions for oid(1) while the source holds its answers, then lets them finish. */
async function concurrently(setup: { source: CountingSource; authorizer: Authorizer }, count: number): Promise<Decision[]> {
  setup.source.hold();
  const pending = Array.from({ length: count }, async () => setup.authorizer.authorize(user(oid(1)), ROUTES.chat));
  await Promise.resolve();
  setup.source.release();
  return Promise.all(pending);
}

describe('decision cache: single flight and reuse', () => {
  it('makes exactly one lookup for 1,000 concurrent first requests of one principal', async () => {
    const s = setup();
    const decisions = await concurrently(s, 1000);
    expect(s.source.lookups).toBe(1);
    expect(decisions.every((d) => d.kind === 'allow')).toBe(true);
  });

  it('makes one lookup per principal for 100 principals, and none for repeats inside the TTL', async () => {
    const { source, authorizer, clock } = setup();
    const principals = Array.from({ length: 100 }, (_, i) => user(oid(i + 1)));
    await Promise.all(principals.flatMap((p) => [ROUTES.chat, ROUTES.embeddings].map(async (route) => authorizer.authorize(p, route))));
    expect(source.lookups).toBe(100);
    clock.advance(ALLOW_TTL - 1);
    const again = await Promise.all(principals.flatMap((p) => [ROUTES.chat, ROUTES.models].map(async (route) => authorizer.authorize(p, route))));
    expect(source.lookups).toBe(100);
    expect(again.every((d) => d.kind === 'allow' && d.cache === 'hit')).toBe(true);
  });

  it('answers a fresh cached decision synchronously, without a promise', async () => {
    const { authorizer } = setup();
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'miss' });
    const hit = authorizer.authorize(user(oid(1)), ROUTES.chat);
    expect(hit).not.toBeInstanceOf(Promise);
    expect(hit).toMatchObject({ kind: 'allow', cache: 'hit' });
  });

  it('answers every action of a principal from one lookup', async () => {
    const { source, authorizer } = setup();
    for (const route of Object.values(ROUTES)) await authorizer.authorize(user(oid(1)), route);
    expect(source.lookups).toBe(1);
  });
});

describe('decision cache: TTLs', () => {
  it('shows a revocation only after the allow TTL', async () => {
    const { source, authorizer, clock } = setup();
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'miss' });
    source.answer = () => NO_ACCESS;
    clock.advance(ALLOW_TTL - 1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'hit' });
    clock.advance(1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'deny', cache: 'miss', reason: 'no_assignment' });
    expect(source.lookups).toBe(2);
  });

  it('shows a new grant after the deny TTL', async () => {
    const { source, authorizer, clock } = setup({ answer: () => NO_ACCESS });
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'deny', cache: 'miss' });
    source.answer = (p) => openAiUser(p.oid);
    clock.advance(DENY_TTL - 1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'deny', cache: 'hit' });
    clock.advance(1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'miss' });
    expect(source.lookups).toBe(2);
  });

  it('refreshes a principal on a denied action after the deny TTL while its allows stay cached until then', async () => {
    const { source, authorizer, clock } = setup();
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    await authorizer.authorize(user(oid(1)), ROUTES.deploymentsWrite);
    clock.advance(DENY_TTL);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'hit' });
    expect(source.lookups).toBe(1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.deploymentsWrite)).toMatchObject({ kind: 'deny', cache: 'miss' });
    expect(source.lookups).toBe(2);
  });

  it('single-flights the refresh of an expired entry', async () => {
    const { source, authorizer, clock } = setup();
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    clock.advance(ALLOW_TTL);
    await concurrently({ source, authorizer }, 200);
    expect(source.lookups).toBe(2);
  });
});

describe('decision cache: failures', () => {
  it('returns unavailable with the reason and Retry-After, never a deny, and never caches the failure', async () => {
    const { source, authorizer } = setup({ answer: throttled });
    const first = await authorizer.authorize(user(oid(1)), ROUTES.chat);
    expect(first).toMatchObject({ kind: 'unavailable', source: 'arm', reason: 'arm_throttled', retryAfterSeconds: 17 });
    expect(first.kind === 'unavailable' && first.message).toContain('ARM throttled the role assignment lookup (429)');
    expect(first.kind === 'unavailable' && first.message).toContain(oid(1));
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    expect(source.lookups).toBe(2);
    // Recovery: the first good answer is used at once.
    source.answer = (p) => openAiUser(p.oid);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'miss' });
  });

  it('single-flights failing lookups too', async () => {
    const s = setup({ answer: throttled });
    const decisions = await concurrently(s, 100);
    expect(s.source.lookups).toBe(1);
    expect(decisions.every((d) => d.kind === 'unavailable')).toBe(true);
  });

  it('keeps serving a cached principal within its TTL while the source fails, without looking up', async () => {
    const { source, authorizer, clock } = setup();
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    source.answer = throttled;
    clock.advance(ALLOW_TTL - 1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'hit' });
    expect(source.lookups).toBe(1);
  });

  it('uses a cached allow past its TTL within stale-if-error, then becomes unavailable, then recovers', async () => {
    const STALE = 60_000;
    const { source, authorizer, clock } = setup({ staleIfErrorMs: STALE });
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    source.answer = throttled;
    clock.advance(ALLOW_TTL + STALE - 1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'stale' });
    // Denies decided from the same snapshot have a shorter window: past deny TTL + stale they are unavailable.
    expect(await authorizer.authorize(user(oid(1)), ROUTES.deploymentsWrite)).toMatchObject({ kind: 'unavailable', reason: 'arm_throttled' });
    clock.advance(1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({
      kind: 'unavailable',
      reason: 'arm_throttled',
      retryAfterSeconds: 17,
    });
    source.answer = (p) => openAiUser(p.oid);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'miss' });
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'hit' });
  });

  it('uses a cached deny within deny TTL + stale-if-error, then becomes unavailable (never a deny)', async () => {
    const STALE = 10_000;
    const { source, authorizer, clock } = setup({ staleIfErrorMs: STALE, answer: () => NO_ACCESS });
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    source.answer = throttled;
    clock.advance(DENY_TTL + STALE - 1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'deny', cache: 'stale' });
    clock.advance(1);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'unavailable' });
  });

  it('without stale-if-error, is unavailable as soon as the TTL has passed and the source fails', async () => {
    const { source, authorizer, clock } = setup();
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    source.answer = throttled;
    clock.advance(ALLOW_TTL);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'unavailable', reason: 'arm_throttled' });
  });

  it('turns an unexpected source error into unavailable with a generic message, and logs it', async () => {
    const { source, authorizer, lines } = setup({
      answer: () => {
        throw new TypeError('secret internals');
      },
    });
    const decision = await authorizer.authorize(user(oid(1)), ROUTES.chat);
    expect(decision).toMatchObject({ kind: 'unavailable', reason: 'source_unavailable' });
    expect(decision.kind === 'unavailable' && decision.message).not.toContain('secret internals');
    expect(lines.some((l) => l.msg === 'access source failed unexpectedly')).toBe(true);
    source.answer = (p) => openAiUser(p.oid);
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow' });
  });

  it('survives a source that throws synchronously', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const cache = new AccessCache({
      source: {
        kind: 'arm',
        lookup: () => {
          calls++;
          throw new AccessSourceError('arm_unreachable', 'connect ECONNREFUSED');
        },
        readiness: async () => null,
        close: async () => {},
      },
      scope: CLUSTER,
      clock,
      allowTtlMs: ALLOW_TTL,
      denyTtlMs: DENY_TTL,
      staleIfErrorMs: 0,
    });
    expect(await cache.evaluate(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'unavailable', error: { reason: 'arm_unreachable' } });
    expect(await cache.evaluate(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'unavailable' });
    expect(calls).toBe(2);
  });
});

describe('decision cache: keys and bounds', () => {
  it('keeps the same object ID in two tenants apart', async () => {
    const { source, authorizer } = setup({ answer: (p) => (p.tid === TENANT ? openAiUser(p.oid) : NO_ACCESS) });
    expect(await authorizer.authorize(user(oid(1), TENANT), ROUTES.chat)).toMatchObject({ kind: 'allow' });
    expect(await authorizer.authorize(user(oid(1), OTHER_TENANT), ROUTES.chat)).toMatchObject({ kind: 'deny' });
    expect(await authorizer.authorize(user(oid(1), TENANT), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'hit' });
    expect(source.lookups).toBe(2);
  });

  it('keeps a data action and a control action of the same name apart in one snapshot', async () => {
    const { source, authorizer } = setup();
    const asControl = { ...ROUTES.chat, plane: 'control', dataAction: false } as const;
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow' });
    expect(await authorizer.authorize(user(oid(1)), asControl)).toMatchObject({ kind: 'deny', cache: 'hit' });
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'hit' });
    expect(source.lookups).toBe(1);
  });

  it('builds keys that cannot collide whatever the IDs contain', () => {
    const pairs: [string, string][] = [
      ['a/b', 'c'],
      ['a', 'b/c'],
      ['a|b', 'c'],
      ['a', 'b|c'],
      ['a:b', 'c'],
      ['a', 'b:c'],
      ['1:a', 'b'],
      ['1', 'a:b'],
      ['', '0::x'],
      ['0:', ':x'],
      ['..', 'x'],
      ['%2f', 'x'],
    ];
    const keys = new Set(pairs.map(([t, o]) => principalKey(t, o)));
    expect(keys.size).toBe(pairs.length);
  });

  it('looks up colliding-looking principals separately', async () => {
    const clock = new ManualClock();
    const source = new CountingSource(() => NO_ACCESS);
    const cache = new AccessCache({ source, scope: CLUSTER, clock, allowTtlMs: ALLOW_TTL, denyTtlMs: DENY_TTL, staleIfErrorMs: 0 });
    const odd = (tid: string, oidValue: string): Principal => ({ type: 'user', tid, oid: oidValue });
    for (const [t, o] of [
      ['a/b', 'c'],
      ['a', 'b/c'],
      ['a|b', 'c'],
      ['a', 'b|c'],
      ['a:b', 'c'],
      ['a', 'b:c'],
    ]) {
      await cache.evaluate(odd(t!, o!), ROUTES.chat);
    }
    expect(source.lookups).toBe(6);
  });

  it('honours its size bound, and a cold-key stampede after eviction still makes one lookup', async () => {
    const { source, authorizer } = setup({ cacheMaxEntries: 10 });
    for (let i = 1; i <= 25; i++) await authorizer.authorize(user(oid(i)), ROUTES.chat);
    expect(source.lookups).toBe(25);
    // oid(25) is still cached; oid(1) was evicted.
    await authorizer.authorize(user(oid(25)), ROUTES.chat);
    expect(source.lookups).toBe(25);
    await concurrently({ source, authorizer }, 500);
    expect(source.lookups).toBe(26);
  });

  it('does not start a second lookup for a key whose lookup is in flight while other keys churn the cache', async () => {
    const clock = new ManualClock();
    let hot = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const source = new CountingSource(async (p) => {
      if (p.oid === oid(1)) {
        hot++;
        await gate;
      }
      return openAiUser(p.oid);
    });
    const cache = new AccessCache({ source, scope: CLUSTER, clock, allowTtlMs: ALLOW_TTL, denyTtlMs: DENY_TTL, staleIfErrorMs: 0, maxEntries: 5 });
    const first = cache.evaluate(user(oid(1)), ROUTES.chat);
    for (let i = 2; i <= 50; i++) await cache.evaluate(user(oid(i)), ROUTES.chat);
    expect(cache.size).toBeLessThanOrEqual(5);
    const more = Array.from({ length: 100 }, () => cache.evaluate(user(oid(1)), ROUTES.chat));
    release();
    await Promise.all([first, ...more]);
    expect(hot).toBe(1);
  });
});

describe('metrics', () => {
  it('counts decisions by source, cache outcome and decision', async () => {
    const { authorizer, metrics, source } = setup();
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    await authorizer.authorize(user(oid(1)), ROUTES.deploymentsWrite);
    source.answer = throttled;
    await authorizer.authorize(user(oid(2)), ROUTES.chat);
    const values = (await metrics.rbacLookups.get()).values.map((v) => [v.labels.source, v.labels.cache, v.labels.decision, v.value]);
    expect(values).toEqual(
      expect.arrayContaining([
        ['arm', 'miss', 'allow', 1],
        ['arm', 'hit', 'allow', 1],
        ['arm', 'hit', 'deny', 1],
        ['arm', 'miss', 'unavailable', 1],
      ]),
    );
  });
});

export type { Decision };
