import { describe, expect, it } from 'vitest';
import {
  MAX_CREDENTIAL_CHARS,
  bearerSyntaxRejection,
  extractCredentials,
  type Credentials,
  type CredentialsOutcome,
} from '../../src/authn/credentials.js';
import type { Rejection } from '../../src/contracts/errors.js';

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.c2ln';
const OTHER_JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ5In0.c2ln';

/** Extraction, then the bearer syntax check the authenticator runs on a token-cache miss: what a request meets first. */
function extract(headers: string[], query?: string): CredentialsOutcome {
  const result = extractCredentials(headers, query);
  if (result.kind !== 'bearer') return result;
  const malformed = bearerSyntaxRejection(result.token);
  return malformed === undefined ? result : { kind: 'rejected', rejection: malformed };
}

function rejected(headers: string[], query?: string): Rejection {
  const result = extract(headers, query);
  if (result.kind !== 'rejected') throw new Error(`expected a rejection, got ${result.kind}`);
  return result.rejection;
}

function accepted(headers: string[], query?: string): Credentials {
  const result = extract(headers, query);
  if (result.kind === 'rejected') throw new Error(`expected credentials, got ${result.rejection.code}/${result.rejection.reason}`);
  return result;
}

describe('extractCredentials: carriers (threats 69, 72-74)', () => {
  it('no credentials: 401 missing_credentials without a bearer error (69)', () => {
    const r = rejected(['Host', 'x', 'Content-Type', 'application/json']);
    expect(r).toMatchObject({ code: 'missing_credentials', reason: 'missing' });
    expect(r.bearerError).toBeUndefined();
  });

  it.each([
    ['Cookie', `access_token=${JWT}`],
    ['Proxy-Authorization', `Bearer ${JWT}`],
    ['X-Api-Key', 'fndry-sk-abc'],
    ['Authorization-Bearer', JWT],
    ['X-MS-TOKEN-AAD-ACCESS-TOKEN', JWT],
  ])('%s is not a credential carrier (74)', (name, value) => {
    expect(rejected([name, value])).toMatchObject({ code: 'missing_credentials' });
  });

  it('a query-only access_token is ignored: missing_credentials (73)', () => {
    expect(rejected([], `access_token=${JWT}`)).toMatchObject({ code: 'missing_credentials' });
  });

  it.each([
    `access_token=${JWT}`,
    `a=1&access_token=${JWT}`,
    `access%5Ftoken=${JWT}`,
    `%61ccess_token=${JWT}`,
    `ACCESS_TOKEN=${JWT}`,
    `?access_token=${JWT}`,
  ])('header plus query token %s: 400 invalid_request (73)', (query) => {
    expect(rejected(['Authorization', `Bearer ${JWT}`], query)).toMatchObject({
      code: 'invalid_request',
      bearerError: 'invalid_request',
      reason: 'token_in_query',
    });
    expect(rejected(['api-key', 'fndry-sk-abc'], query)).toMatchObject({ code: 'invalid_request', reason: 'token_in_query' });
  });

  it('other query parameters do not matter', () => {
    expect(accepted(['Authorization', `Bearer ${JWT}`], 'api-version=2024-10-21&token=1&my_access_token=2')).toEqual({ kind: 'bearer', token: JWT });
  });

  it.each([
    [`Bearer ${JWT}`, 'Bearer garbage'],
    ['Bearer garbage', `Bearer ${JWT}`],
    [`Bearer ${JWT}`, `Bearer ${OTHER_JWT}`],
    [`Bearer ${JWT}`, `Bearer ${JWT}`],
  ])('two Authorization headers (%s, %s): 400 invalid_request (72)', (a, b) => {
    expect(rejected(['Authorization', a, 'Accept', '*/*', 'authorization', b])).toMatchObject({
      code: 'invalid_request',
      bearerError: 'invalid_request',
      reason: 'multiple_authorization',
    });
  });

  it('two api-key headers: 400 invalid_request', () => {
    expect(rejected(['api-key', 'fndry-sk-a', 'API-KEY', 'fndry-sk-b'])).toMatchObject({ code: 'invalid_request', reason: 'multiple_api_key' });
  });

  it('Authorization and api-key together: 400 ambiguous_auth', () => {
    expect(rejected(['Authorization', `Bearer ${JWT}`, 'api-key', 'fndry-sk-a'])).toMatchObject({ code: 'ambiguous_auth', reason: 'ambiguous' });
    expect(rejected(['api-key', 'fndry-sk-a', 'authorization', 'Bearer fndry-sk-a'])).toMatchObject({ code: 'ambiguous_auth' });
  });

  it('header names are case-insensitive', () => {
    expect(accepted(['AUTHORIZATION', `Bearer ${JWT}`])).toEqual({ kind: 'bearer', token: JWT });
    expect(accepted(['Api-Key', 'k'])).toEqual({ kind: 'api-key', key: 'k', via: 'api-key-header' });
  });
});

describe('extractCredentials: Authorization syntax (threats 26, 31, 70, 71)', () => {
  it.each(['Bearer', 'bearer', 'BEARER', 'bEaReR'])('scheme %s is case-insensitive (70)', (scheme) => {
    expect(accepted(['Authorization', `${scheme} ${JWT}`])).toEqual({ kind: 'bearer', token: JWT });
  });

  it.each([
    ['Bearer alone', 'Bearer'],
    ['Bearer and a space', 'Bearer '],
    ['two spaces', `Bearer  ${JWT}`],
    ['tab', `Bearer\t${JWT}`],
    ['trailing junk', `Bearer ${JWT} extra`],
    ['internal space', `Bearer ${JWT.slice(0, 10)} ${JWT.slice(10)}`],
    ['space then dot junk', `Bearer ${JWT} .junk`],
    ['newline', `Bearer ${JWT}\nx`],
    ['percent-encoded space', `Bearer ${JWT}%20`],
    ['non-ASCII', `Bearer ${JWT}é`],
    ['quotes', `Bearer "${JWT}"`],
    ['comma-joined', `Bearer ${JWT},Bearer ${OTHER_JWT}`],
    ['Basic-wrapped JWT', `Basic ${Buffer.from(`${JWT}:`).toString('base64')}`],
    ['Basic-wrapped x-oauth-basic', `Basic ${Buffer.from(`${JWT}:x-oauth-basic`).toString('base64')}`],
    ['no scheme', JWT],
    ['Bearer without space', `Bearer${JWT}`],
    ['other scheme', `Negotiate ${JWT}`],
    ['empty', ''],
  ])('%s: 401 invalid_token (26, 70, 71)', (_name, value) => {
    expect(rejected(['Authorization', value])).toMatchObject({
      code: 'invalid_token',
      bearerError: 'invalid_token',
      reason: 'malformed_authorization',
    });
  });

  it('token68 padding is allowed by the syntax (the JWS decoder rejects it later)', () => {
    expect(accepted(['Authorization', `Bearer ${JWT}==`])).toEqual({ kind: 'bearer', token: `${JWT}==` });
  });

  it(`a token over ${MAX_CREDENTIAL_CHARS} characters: 401 invalid_token before decoding (31)`, () => {
    const atLimit = 'a'.repeat(MAX_CREDENTIAL_CHARS);
    expect(accepted(['Authorization', `Bearer ${atLimit}`])).toEqual({ kind: 'bearer', token: atLimit });
    expect(rejected(['Authorization', `Bearer ${atLimit}a`])).toMatchObject({ code: 'invalid_token', reason: 'oversized' });
    expect(rejected(['Authorization', `Bearer ${'.'.repeat(15_000)}x`.padEnd(MAX_CREDENTIAL_CHARS + 20, '.')])).toMatchObject({
      reason: 'oversized',
    });
  });
});

describe('extractCredentials: API keys', () => {
  it('Bearer fndry-sk-/fndry-pk- is an API key sent as bearer', () => {
    expect(accepted(['Authorization', 'Bearer fndry-sk-0123456789abcdef'])).toEqual({
      kind: 'api-key',
      key: 'fndry-sk-0123456789abcdef',
      via: 'bearer',
    });
    expect(accepted(['Authorization', 'bearer fndry-pk-abc'])).toEqual({ kind: 'api-key', key: 'fndry-pk-abc', via: 'bearer' });
  });

  it('other bearer values are tokens', () => {
    expect(accepted(['Authorization', 'Bearer fndry-xx-abc'])).toEqual({ kind: 'bearer', token: 'fndry-xx-abc' });
    expect(accepted(['Authorization', 'Bearer sk-abc'])).toEqual({ kind: 'bearer', token: 'sk-abc' });
  });

  it('the api-key header value is the key', () => {
    expect(accepted(['api-key', 'fndry-sk-abc'])).toEqual({ kind: 'api-key', key: 'fndry-sk-abc', via: 'api-key-header' });
  });

  it('an empty or oversized api-key header: 401 invalid_api_key', () => {
    expect(rejected(['api-key', ''])).toMatchObject({ code: 'invalid_api_key' });
    expect(rejected(['api-key', 'k'.repeat(MAX_CREDENTIAL_CHARS + 1)])).toMatchObject({ code: 'invalid_api_key' });
  });
});
