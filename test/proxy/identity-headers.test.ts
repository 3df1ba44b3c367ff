import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/contracts/principal.js';
import { clientPrincipal, headerSafe, identityHeaders } from '../../src/proxy/identity-headers.js';

function decode(value: string): { claims: Array<{ typ: string; val: string }> } {
  return JSON.parse(Buffer.from(value, 'base64').toString('utf8')) as { claims: Array<{ typ: string; val: string }> };
}

describe('identity headers', () => {
  it('copies only string identity claims, one entry per role, never other claims', () => {
    const principal: Principal = {
      type: 'app',
      oid: 'o',
      tid: 't',
      claims: { oid: 'o', tid: 't', roles: ['A', 7, 'B'], scp: 42, name: ['x'], aud: 'api://x', email: 'e@x', appid: 'app' },
    };
    expect(decode(clientPrincipal(principal)).claims).toEqual([
      { typ: 'oid', val: 'o' },
      { typ: 'tid', val: 't' },
      { typ: 'appid', val: 'app' },
      { typ: 'roles', val: 'A' },
      { typ: 'roles', val: 'B' },
    ]);
  });

  it('names the object ID when the principal has no claims', () => {
    expect(decode(clientPrincipal({ type: 'user', oid: 'o', tid: 't' })).claims).toEqual([{ typ: 'oid', val: 'o' }]);
  });

  it('falls back from name to app ID to object ID', () => {
    const name = (p: Principal): string | undefined => {
      const h = identityHeaders(p);
      return h[h.indexOf('x-ms-client-principal-name') + 1];
    };
    expect(name({ type: 'user', oid: 'o', tid: 't', name: 'n', appId: 'a' })).toBe('n');
    expect(name({ type: 'app', oid: 'o', tid: 't', appId: 'a' })).toBe('a');
    expect(name({ type: 'app', oid: 'o', tid: 't' })).toBe('o');
  });

  it('computes the headers once per principal object', () => {
    const p: Principal = { type: 'user', oid: 'o', tid: 't' };
    expect(identityHeaders(p)).toBe(identityHeaders(p));
  });

  it('makes every value a safe, reversible header value', () => {
    expect(headerSafe('alice@contoso.example')).toBe('alice@contoso.example');
    expect(headerSafe('100%')).toBe('100%25');
    expect(headerSafe('a\r\nb\u0000c\td')).toBe('a%0D%0Ab%00c%09d');
    expect(headerSafe('東京')).toBe('%E6%9D%B1%E4%BA%AC');
    expect(decodeURIComponent(headerSafe('Zoë 100% ✓'))).toBe('Zoë 100% ✓');
    // A lone surrogate cannot break encoding: it becomes U+FFFD.
    expect(headerSafe('x\ud800')).toBe('x%EF%BF%BD');
    for (const value of ['a\r\nb', '東京', '\u0000', '%']) expect(headerSafe(value)).toMatch(/^[\x21-\x7e ]*$/);
  });
});
