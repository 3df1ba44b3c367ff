/**
 * The decision core both fronts call: steps 1-8 in order, the value each front builds its answer
 * from, and the hot path (a plain value, no promise, when the token and the decision are cached).
 */
import { describe, expect, it } from 'vitest';
import { createAuthorizer } from '../../src/authz/authorizer.js';
import { BUILT_IN_ROLES, ROLE_IDS } from '../../src/authz/roles.js';
import type { AccessSnapshot } from '../../src/authz/source.js';
import { rejection } from '../../src/contracts/errors.js';
import type { Principal } from '../../src/contracts/principal.js';
import type { RequestDecision } from '../../src/contracts/request.js';
import type { AuthenticationStage, AuthnOutcome } from '../../src/contracts/stages.js';
import { ManualClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { DecisionCore } from '../../src/pipeline/decide.js';
import { DEFAULT_ROUTES, RouteTable } from '../../src/pipeline/routes.js';
import { CLUSTER, CountingSource, capturingLogger, oid, rbacConfig, TENANT } from '../authz/helpers.js';

const EXP = Date.UTC(2026, 0, 1, 1) / 1000;
const ALICE: Principal = { type: 'user', oid: oid(1), tid: TENANT, name: 'alice@contoso.com', claims: { exp: EXP, oid: oid(1), tid: TENANT } };
const CAROL: Principal = { type: 'user', oid: oid(3), tid: TENANT, claims: { exp: EXP } };
const KEY: Principal = { type: 'api-key', oid: 'key-3f9a1c2e', tid: '' };

/** Authentication by the `Authorization` value, answered synchronously like a verified-token cache hit. */
class CachedTokens implements AuthenticationStage {
  calls = 0;
  authenticateRequest(raw: readonly string[]): AuthnOutcome {
    this.calls++;
    const value = raw.find((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'authorization');
    const principal = value === 'Bearer alice' ? ALICE : value === 'Bearer carol' ? CAROL : value === 'Bearer fndry-sk-1' ? KEY : undefined;
    if (principal === undefined) return { ok: false, rejection: rejection('missing_credentials', 'no credentials', { reason: 'missing' }) };
    return { ok: true, principal, tokenCache: principal.type === 'api-key' ? 'none' : 'hit' };
  }
}

function openAiUser(principal: Principal): AccessSnapshot {
  if (principal.oid !== ALICE.oid) return { assignments: [], denyAssignments: [] };
  const role = BUILT_IN_ROLES.find((r) => r.id === ROLE_IDS.openAiUser)!;
  return {
    assignments: [{ roleDefinitionId: role.id, roleName: role.roleName, scope: CLUSTER, principalId: principal.oid, permissions: role.permissions }],
    denyAssignments: [],
  };
}

function setup() {
  const clock = new ManualClock();
  const source = new CountingSource(openAiUser);
  const authn = new CachedTokens();
  const authz = createAuthorizer({
    rbac: rbacConfig({ mode: 'arm', scope: CLUSTER }),
    source,
    scope: CLUSTER,
    clock,
    log: capturingLogger().log,
    metrics: new Metrics({ defaultMetrics: false }),
  });
  const core = new DecisionCore({ routes: new RouteTable(DEFAULT_ROUTES), publicPaths: ['/healthz'], authn, authz });
  const decide = (method: string, target: string, authorization?: string, hasBody = false) =>
    core.decide({ method, target, rawHeaders: authorization !== undefined ? ['Host', 'x', 'Authorization', authorization] : ['Host', 'x'], hasBody });
  return { clock, source, authn, core, decide };
}

describe('DecisionCore.decide', () => {
  it('allows with everything a front answers from: route, principal, decision and its expiry, the token exp, timings and caches', async () => {
    const { decide, clock } = setup();
    const lookedUpAt = clock.now();
    const decision = await decide('GET', '/v1/models?api-version=1', 'Bearer alice');
    expect(decision).toMatchObject({
      kind: 'allow',
      path: '/v1/models',
      query: 'api-version=1',
      route: { name: 'GET /v1/models', plane: 'data' },
      principal: { type: 'user', oid: ALICE.oid, tid: TENANT, name: 'alice@contoso.com' },
      decision: { kind: 'allow', source: 'arm', cache: 'miss', expiresAt: lookedUpAt + 300_000 },
      tokenExpiresAt: EXP * 1000,
      tokenCache: 'hit',
      rbacCache: 'miss',
      decisionSource: 'arm',
    });
    const allowed = decision as Extract<RequestDecision, { kind: 'allow' }>;
    expect(allowed.authMs).toBeGreaterThanOrEqual(0);
    expect(allowed.rbacMs).toBeGreaterThanOrEqual(0);
  });

  it('is a plain value, not a promise, when the token and the RBAC decision are cached', async () => {
    const { decide, source } = setup();
    await decide('GET', '/v1/models', 'Bearer alice');
    const cached = decide('GET', '/v1/models', 'Bearer alice');
    expect(cached).not.toBeInstanceOf(Promise);
    expect(cached).toMatchObject({ kind: 'allow', rbacCache: 'hit' });
    expect(source.lookups).toBe(1);
  });

  it('a deny carries its own expiry (the deny TTL) and becomes insufficient_permissions', async () => {
    const { decide, clock } = setup();
    const decision = await decide('POST', '/v1/chat/completions', 'Bearer carol');
    expect(decision).toMatchObject({
      kind: 'reject',
      rejection: { code: 'insufficient_permissions' },
      principal: { oid: CAROL.oid },
      decision: { kind: 'deny', expiresAt: clock.now() + 30_000 },
    });
  });

  it('an API key has no token exp and no decision expiry', () => {
    const { decide } = setup();
    expect(decide('POST', '/v1/chat/completions', 'Bearer fndry-sk-1')).toMatchObject({
      kind: 'allow',
      tokenExpiresAt: undefined,
      decision: { kind: 'allow', source: 'api-key' },
    });
  });

  it('public paths skip authentication, and refuse a body', () => {
    const { decide, authn } = setup();
    expect(decide('GET', '/healthz?probe=1')).toEqual({ kind: 'public', path: '/healthz', query: 'probe=1' });
    expect(decide('HEAD', '/healthz', undefined, true)).toMatchObject({
      kind: 'reject',
      rejection: { code: 'invalid_request', reason: 'public_body' },
    });
    expect(authn.calls).toBe(0);
  });

  it('refuses a body on GET, HEAD and DELETE before authentication; POST bodies are fine', async () => {
    const { decide, authn } = setup();
    for (const [method, target] of [
      ['GET', '/v1/models'],
      ['HEAD', '/api/v1/models'],
      ['DELETE', '/api/v1/models/x'],
    ] as const) {
      expect(decide(method, target, 'Bearer alice', true)).toMatchObject({
        kind: 'reject',
        rejection: { code: 'invalid_request', reason: 'bodyless_method_body' },
      });
    }
    expect(authn.calls).toBe(0);
    expect(await decide('POST', '/v1/chat/completions', 'Bearer alice', true)).toMatchObject({ kind: 'allow' });
  });

  it('never authenticates a request that fails an earlier step', () => {
    const { decide, authn } = setup();
    expect(decide('TRACE', '/v1/models', 'Bearer alice')).toMatchObject({ kind: 'reject', rejection: { code: 'method_not_allowed' } });
    expect(decide('GET', '/v1/../x', 'Bearer alice')).toMatchObject({ kind: 'reject', rejection: { code: 'invalid_path' } });
    expect(decide('GET', 'http://x/v1/models', 'Bearer alice')).toMatchObject({ kind: 'reject' });
    expect(decide('GET', '/nope', 'Bearer alice')).toMatchObject({ kind: 'reject', path: '/nope', rejection: { code: 'route_not_found' } });
    expect(decide('PUT', '/v1/models', 'Bearer alice')).toMatchObject({ kind: 'reject', rejection: { code: 'method_not_allowed', allow: ['GET'] } });
    expect(authn.calls).toBe(0);
    expect(decide('GET', '/v1/models')).toMatchObject({
      kind: 'reject',
      route: { name: 'GET /v1/models' },
      rejection: { code: 'missing_credentials' },
    });
  });
});
