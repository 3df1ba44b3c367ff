import { readFile } from 'node:fs/promises';
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { checkTokenShape, expiryFrom, IdentityConfigError, IdentityError, requestTokenJson, type AccessToken, type TokenSource } from './token.js';

export const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com';

const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  expires_in: z.union([z.number(), z.string()]),
  token_type: z.string().optional(),
});

/** A tenant ID (GUID) or a verified domain: it becomes a path segment of the token endpoint. */
const TENANT = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;

/**
 * The client-credentials grant against the Entra v2 token endpoint,
 * `POST {authority}/{tenant}/oauth2/v2.0/token`, with a client secret or (workload identity) a
 * federated client assertion read from `AZURE_FEDERATED_TOKEN_FILE` at every refresh, because
 * the kubelet rotates that file.
 */
export function clientCredentialsSource(opts: {
  kind: 'workload-identity' | 'client-secret';
  authorityHost: string;
  tenantId: string;
  clientId: string;
  credential: { secret: string } | { federatedTokenFile: string };
  resource: string;
  timeoutMs: number;
  dispatcher?: Dispatcher | undefined;
  clock: Clock;
  log?: Logger | undefined;
}): TokenSource {
  if (!TENANT.test(opts.tenantId))
    throw new IdentityConfigError(`AZURE_TENANT_ID must be a tenant ID (GUID) or domain (got "${opts.tenantId.slice(0, 100)}")`);
  const url = new URL(`${opts.authorityHost}/${opts.tenantId}/oauth2/v2.0/token`);
  const who = `client ${opts.clientId}, tenant ${opts.tenantId}`;
  const description = opts.kind === 'workload-identity' ? `workload identity (${who})` : `client secret (${who})`;
  const fix =
    opts.kind === 'workload-identity'
      ? `check that the app registration or user-assigned identity ${opts.clientId} has a federated credential for this pod's service account and that ${url.origin} is reachable`
      : `check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (not expired) and AZURE_TENANT_ID, and that ${url.origin} is reachable`;

  async function clientProof(): Promise<Record<string, string>> {
    if ('secret' in opts.credential) return { client_secret: opts.credential.secret };
    let assertion: string;
    try {
      assertion = (await readFile(opts.credential.federatedTokenFile, 'utf8')).trim();
    } catch (err) {
      const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'unreadable';
      throw new IdentityError(`${description}: cannot read AZURE_FEDERATED_TOKEN_FILE ${opts.credential.federatedTokenFile} (${code})`, fix);
    }
    if (assertion === '') throw new IdentityError(`${description}: AZURE_FEDERATED_TOKEN_FILE ${opts.credential.federatedTokenFile} is empty`, fix);
    return { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
  }

  return {
    description,
    fix,
    async fetch(): Promise<AccessToken> {
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: opts.clientId,
        scope: `${opts.resource}/.default`,
        ...(await clientProof()),
      });
      const body = await requestTokenJson(
        {
          operation: 'identity.token_endpoint',
          url,
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form.toString(),
          timeoutMs: opts.timeoutMs,
          dispatcher: opts.dispatcher,
          clock: opts.clock,
          log: opts.log,
        },
        description,
        fix,
      );
      const parsed = tokenResponseSchema.safeParse(body);
      if (!parsed.success)
        throw new IdentityError(`${description}: the token endpoint answered without access_token/expires_in`, fix, 'bad_response');
      const expiresOnMs = expiryFrom({ expiresIn: parsed.data.expires_in }, opts.clock.now());
      if (expiresOnMs === undefined)
        throw new IdentityError(`${description}: the token endpoint answered with an unusable expires_in`, fix, 'bad_response');
      return { token: checkTokenShape(parsed.data.access_token, description, fix), expiresOnMs };
    },
  };
}
