import type { Dispatcher } from 'undici';
import { z } from 'zod';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { checkTokenShape, expiryFrom, IdentityError, requestTokenJson, type AccessToken, type TokenSource } from './token.js';

/** The IMDS answer the Arc msi-adapter gives: every field a string, as IMDS sends them. */
const imdsTokenSchema = z.object({
  access_token: z.string().min(1),
  expires_in: z.union([z.string(), z.number()]).optional(),
  expires_on: z.union([z.string(), z.number()]).optional(),
  token_type: z.string().optional(),
  resource: z.string().optional(),
});

/**
 * The cluster's Arc identity through the msi-adapter, which speaks the IMDS protocol:
 * `GET {endpoint}?api-version=2018-02-01&resource={arm}` with `Metadata: true`.
 */
export function msiAdapterSource(opts: {
  endpoint: string;
  resource: string;
  timeoutMs: number;
  dispatcher?: Dispatcher | undefined;
  clock: Clock;
  log?: Logger | undefined;
  /** Overrides the default description and fix (any other IMDS-shaped endpoint: `--credential managed-identity`). */
  description?: string;
  fix?: string;
}): TokenSource {
  const description = opts.description ?? `msi-adapter (${opts.endpoint})`;
  const fix =
    opts.fix ??
    'check that the Azure Arc msi-adapter is running and reachable at --msi-endpoint (FOUNDRY_AUTH_MSI_ENDPOINT) and that the connected cluster has a system-assigned identity';
  return {
    description,
    fix,
    async fetch(): Promise<AccessToken> {
      const url = new URL(opts.endpoint);
      url.searchParams.set('api-version', '2018-02-01');
      url.searchParams.set('resource', opts.resource);
      const body = await requestTokenJson(
        {
          operation: 'identity.msi_adapter',
          url,
          headers: { Metadata: 'true' },
          timeoutMs: opts.timeoutMs,
          dispatcher: opts.dispatcher,
          clock: opts.clock,
          log: opts.log,
        },
        description,
        fix,
      );
      const parsed = imdsTokenSchema.safeParse(body);
      if (!parsed.success) throw new IdentityError(`${description} answered without an access_token`, fix, 'bad_response');
      const expiresOnMs = expiryFrom({ expiresIn: parsed.data.expires_in, expiresOn: parsed.data.expires_on }, opts.clock.now());
      if (expiresOnMs === undefined) throw new IdentityError(`${description} answered without a usable expires_in/expires_on`, fix, 'bad_response');
      return { token: checkTokenShape(parsed.data.access_token, description, fix), expiresOnMs };
    },
  };
}
