import { describe, expect, it } from 'vitest';
import { decodeBase64Url, decodeCompactJws } from '../../src/authn/jws.js';
import { JsonSyntaxError, MAX_JSON_DEPTH, parseStrictJson } from '../../src/authn/strict-json.js';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64url');
const HEADER = b64('{"alg":"RS256","kid":"k"}');
const PAYLOAD = b64('{"tid":"t"}');
const SIG = b64(Buffer.alloc(256, 7));

function decodeFails(token: string): string {
  const result = decodeCompactJws(token);
  expect(result.ok).toBe(false);
  return result.ok ? '' : result.detail;
}

describe('strict JSON (threats 28-30, 33)', () => {
  it('parses RFC 8259 JSON like JSON.parse', () => {
    const text = '{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n\\"\\\\\\/"],"b":{"c":{}},"d":[],"e":0,"f":-0.0}';
    expect(parseStrictJson(text)).toEqual(JSON.parse(text));
    expect(parseStrictJson(' \t\r\n{ "a" : 1 } \n')).toEqual({ a: 1 });
  });

  it.each([
    ['{"alg":"none","alg":"RS256"}'],
    ['{"tid":"a","tid":"b"}'],
    ['{"aud":"x","aud":"y"}'],
    ['{"roles":[],"roles":["Admin"]}'],
    ['{"scp":"a","scp":"b"}'],
    ['{"a":{"b":1,"b":2}}'],
    ['{"a":[{"b":1,"b":2}]}'],
    ['{"\\u0061":1,"a":2}'],
    ['{"__proto__":1,"__proto__":2}'],
  ])('rejects duplicate member names at any depth: %s (29)', (text) => {
    expect(() => parseStrictJson(text)).toThrow(/duplicate member name/);
  });

  it.each([
    ['trailing comma', '{"a":1,}'],
    ['single quotes', "{'a':1}"],
    ['unquoted name', '{a:1}'],
    ['leading zero', '{"a":01}'],
    ['hex number', '{"a":0x1}'],
    ['plus sign', '{"a":+1}'],
    ['bare dot', '{"a":.5}'],
    ['NaN', '{"a":NaN}'],
    ['Infinity', '{"a":Infinity}'],
    ['1e999 overflows to Infinity', '{"exp":1e999}'],
    ['-1e999', '{"exp":-1e999}'],
    ['comment', '{"a":1/*x*/}'],
    ['raw control character', '{"a":"x\ty"}'],
    ['raw newline in string', '{"a":"x\ny"}'],
    ['bad escape', '{"a":"\\x41"}'],
    ['short unicode escape', '{"a":"\\u00e"}'],
    ['two values', '{"a":1}{"b":2}'],
    ['trailing garbage', '{"a":1} x'],
    ['unterminated', '{"a":"x'],
    ['empty', ''],
    ['byte-order mark', '\ufeff{"a":1}'],
    ['non-breaking space', '\u00a0{"a":1}'],
  ])('rejects %s', (_name, text) => {
    expect(() => parseStrictJson(text)).toThrow(JsonSyntaxError);
  });

  it(`limits nesting to ${MAX_JSON_DEPTH} levels (33)`, () => {
    const ok = '['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH);
    expect(() => parseStrictJson(ok)).not.toThrow();
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    expect(() => parseStrictJson(deep)).toThrow(/nested too deeply/);
    expect(() => parseStrictJson(`{"a":${'{"a":'.repeat(MAX_JSON_DEPTH)}1${'}'.repeat(MAX_JSON_DEPTH)}}`)).toThrow(/nested too deeply/);
  });

  it('handles 100,000 members in bounded time (33)', () => {
    const text = `{${Array.from({ length: 100_000 }, (_, i) => `"c${i}":${i}`).join(',')}}`;
    const started = process.hrtime.bigint();
    const value = parseStrictJson(text) as Record<string, number>;
    expect(value.c99999).toBe(99_999);
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(5_000);
  });

  it('treats __proto__ and constructor as plain data; Object.prototype untouched (30)', () => {
    const value = parseStrictJson('{"__proto__":{"scp":"foundry_access","polluted":true},"constructor":{"prototype":{"polluted":true}}}') as Record<
      string,
      unknown
    >;
    expect(Object.getPrototypeOf(value)).toBeNull();
    expect(Object.keys(value)).toEqual(['__proto__', 'constructor']);
    expect(value.scp).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).scp).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('keeps \\u0000 and lone surrogates as data, as RFC 8259 allows', () => {
    expect(parseStrictJson('{"k":"\\u0000"}')).toEqual({ k: '\u0000' });
    expect((parseStrictJson('{"k":"\\ud800"}') as { k: string }).k.charCodeAt(0)).toBe(0xd800);
  });
});

describe('canonical base64url (threats 24, 25)', () => {
  it('decodes the base64url alphabet without padding', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      expect(decodeBase64Url(bytes.toString('base64url'))).toEqual(bytes);
    }
  });

  it.each([
    ['padding', 'YQ=='],
    ['single padding', 'YWI='],
    ['standard alphabet +', 'a+b/'],
    ['standard alphabet /', 'ab/c'],
    ['impossible length', 'abcde'],
    ['non-zero unused bits (2 chars)', 'YR'],
    ['non-zero unused bits (3 chars)', 'YWJ'],
    ['whitespace', 'YW I'],
    ['percent', 'YW%20'],
    ['non-ASCII', 'YWé'],
    ['exclamation marks', 'YWI!!!!'],
  ])('rejects %s', (_name, text) => {
    expect(decodeBase64Url(text)).toBeUndefined();
  });

  it('the canonical form of the same bytes is accepted', () => {
    expect(decodeBase64Url('YQ')).toEqual(Buffer.from('a'));
    expect(decodeBase64Url('YWI')).toEqual(Buffer.from('ab'));
  });
});

describe('compact JWS decoding (threats 2, 3, 19-22, 24-28, 32)', () => {
  it('decodes a well-formed token', () => {
    const result = decodeCompactJws(`${HEADER}.${PAYLOAD}.${SIG}`);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.jws.header).toEqual({ alg: 'RS256', kid: 'k' });
    expect(result.jws.payload).toEqual({ tid: 't' });
    expect(result.jws.signingInput).toBe(`${HEADER}.${PAYLOAD}`);
    expect(result.jws.signature.length).toBe(256);
  });

  it.each([
    ['empty', ''],
    ['one part', HEADER],
    ['two parts (21, 2)', `${HEADER}.${PAYLOAD}`],
    ['four parts', `${HEADER}.${PAYLOAD}.${SIG}.${SIG}`],
    ['five parts (JWE, 22)', `${b64('{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}')}.${SIG}.${SIG}.${SIG}.${SIG}`],
    ['only dots', '.....'],
    ['dot flood (32)', '.'.repeat(15_000)],
  ])('rejects %s: wrong number of parts', (_name, token) => {
    expect(decodeFails(token)).toMatch(/exactly three/);
  });

  it('rejects an empty signature (3: null signature)', () => {
    expect(decodeFails(`${HEADER}.${PAYLOAD}.`)).toMatch(/signature is empty/);
  });

  it('rejects three empty parts', () => {
    expect(decodeFails('..')).toMatch(/empty/);
  });

  it('rejects empty header or payload', () => {
    expect(decodeFails(`.${PAYLOAD}.${SIG}`)).toMatch(/header is empty/);
    expect(decodeFails(`${HEADER}..${SIG}`)).toMatch(/payload is empty/);
  });

  it('rejects JSON serialization (19, 20)', () => {
    const json = JSON.stringify({ payload: PAYLOAD, signatures: [{ protected: HEADER, signature: SIG }] });
    expect(decodeCompactJws(json).ok).toBe(false);
    const polyglot = `{" ${PAYLOAD}.":"","protected":"${HEADER}","payload":"${PAYLOAD}","signature":"${SIG}"}`;
    expect(decodeCompactJws(polyglot).ok).toBe(false);
  });

  it.each([
    ['padding on header (25)', `${b64('{"alg":"RS256","kid":"k"}')}=.${PAYLOAD}.${SIG}`],
    ['padding on signature (25)', `${HEADER}.${PAYLOAD}.${b64(Buffer.alloc(255, 1))}=`],
    ['+ and / instead of - and _ (24)', `${HEADER}.${PAYLOAD}.${Buffer.alloc(256, 0xfb).toString('base64').replace(/=+$/, '')}`],
    ['exclamation marks on signature (25)', `${HEADER}.${PAYLOAD}.${SIG}!!!!`],
  ])('rejects non-canonical base64url: %s', (_name, token) => {
    expect(decodeFails(token)).toMatch(/canonical base64url/);
  });

  it('rejects non-zero unused bits in the last signature character (25)', () => {
    const sig = b64(Buffer.alloc(256, 7)); // 256 bytes -> 342 chars, 4 unused bits in the last one
    const last = sig.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const tweaked = sig.slice(0, -1) + alphabet[alphabet.indexOf(last) + 1];
    expect(Buffer.from(tweaked, 'base64url')).toEqual(Buffer.from(sig, 'base64url')); // Node would decode both alike
    expect(decodeFails(`${HEADER}.${PAYLOAD}.${tweaked}`)).toMatch(/canonical/);
  });

  it.each([
    ['invalid UTF-8 (27)', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])],
    ['overlong UTF-8 C0 AF (27)', Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])],
    ['UTF-8 byte-order mark (27)', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')])],
    ['UTF-16 JSON (27)', Buffer.from('{"a":1}', 'utf16le')],
    ['array (28)', Buffer.from('[]')],
    ['string (28)', Buffer.from('"x"')],
    ['number (28)', Buffer.from('123')],
    ['null (28)', Buffer.from('null')],
    ['invalid JSON (28)', Buffer.from('{"a":')],
    ['duplicate member (29)', Buffer.from('{"tid":"a","tid":"b"}')],
  ])('rejects a payload that is %s', (_name, bytes) => {
    expect(decodeCompactJws(`${HEADER}.${b64(bytes)}.${SIG}`).ok).toBe(false);
    expect(decodeCompactJws(`${b64(bytes)}.${PAYLOAD}.${SIG}`).ok).toBe(false);
  });

  it('accepts non-ASCII UTF-8 text in claims', () => {
    const result = decodeCompactJws(`${HEADER}.${b64('{"name":"Zoë Ñandú"}')}.${SIG}`);
    expect(result.ok && result.jws.payload.name).toBe('Zoë Ñandú');
  });
});
