import { describe, expect, it } from 'vitest';
import { checkTarget } from '../../src/pipeline/canonical.js';

describe('request target and canonical path (SPEC 3 steps 1-2, section 5)', () => {
  it.each([
    ['/v1/chat/completions', '/v1/chat/completions', undefined],
    ['/v1/models/phi-4%20mini', '/v1/models/phi-4%20mini', undefined],
    ['/v1/models?limit=5&x=/admin', '/v1/models', 'limit=5&x=/admin'],
    ['/', '/', undefined],
    ['/api/v1/namespaces/ns/deployments/d.1', '/api/v1/namespaces/ns/deployments/d.1', undefined],
    ['/healthz/%252e%252e/admin', '/healthz/%252e%252e/admin', undefined],
    ['/admin;x=y', '/admin;x=y', undefined],
    ['/a/.b', '/a/.b', undefined],
  ])('accepts %s literally', (target, path, query) => {
    expect(checkTarget(target)).toEqual({ ok: true, path, query });
  });

  it.each(['http://other-host/admin', '*', 'admin', '', 'upstream:8000'])('rejects non-origin-form target %j as invalid_request', (target) => {
    expect(checkTarget(target)).toMatchObject({ ok: false, code: 'invalid_request' });
  });

  it.each([
    ['/healthz/../admin', 'dot segment'],
    ['/v1/../admin', 'dot segment'],
    ['/./admin', 'dot segment'],
    ['/v1/chat/completions/..', 'dot segment'],
    ['/healthz/%2e%2e/admin', 'dot segment'],
    ['/healthz/%2E%2E/admin', 'dot segment'],
    ['/healthz/.%2e/admin', 'dot segment'],
    ['/healthz/%2e./admin', 'dot segment'],
    ['/healthz/%2e', 'dot segment'],
    ['/a/...', 'dot segment'],
    ['/healthz%2f..%2fadmin', 'encoded "/"'],
    ['/v1%2fchat%2fcompletions', 'encoded "/"'],
    ['/v1%2Fmodels', 'encoded "/"'],
    ['/v1%5cmodels', 'encoded "/" or "\\"'],
    ['/v1\\..\\admin', 'backslash'],
    ['//admin', 'empty path segment'],
    ['/v1//chat/completions', 'empty path segment'],
    ['///v1/models', 'empty path segment'],
    ['/v1/models/', 'trailing'],
    ['/healthz#/../admin', '"#"'],
    ['/admin%00', 'encoded control'],
    ['/admin%09', 'encoded control'],
    ['/admin%7f', 'encoded control'],
    ['/admin%zz', 'malformed percent'],
    ['/admin%4', 'malformed percent'],
    ['/\u00e9', 'non-ASCII'],
    ['/a\u0001b', 'control character'],
  ])('rejects %j as invalid_path (%s)', (target, why) => {
    const result = checkTarget(target);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.code).toBe('invalid_path');
    expect(result.message).toContain(why);
  });

  it('keeps the encoded-# variant literal (routed as a literal segment, so it matches no route)', () => {
    expect(checkTarget('/public/secret%23/endpoint')).toMatchObject({ ok: true, path: '/public/secret%23/endpoint' });
  });

  it('rejects control characters and # in the query', () => {
    expect(checkTarget('/v1/models?a=\u0001')).toMatchObject({ ok: false, code: 'invalid_request' });
    expect(checkTarget('/v1/models?a=#b')).toMatchObject({ ok: false, code: 'invalid_request' });
  });
});
