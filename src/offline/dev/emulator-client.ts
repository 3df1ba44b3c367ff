import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { AZURE_CLI_APP_ID } from '../emulator/first-party.js';

/**
 * What `dev` asks of a running emulator: its `/_emulator` admin API (seeding) and, as a user or
 * a managed identity would, its token endpoints. HTTPS calls trust the emulator's CA only.
 */

export class EmulatorCallError extends Error {
  constructor(
    readonly status: number,
    readonly what: string,
    readonly detail: string,
  ) {
    super(`${what}: HTTP ${status} ${detail}`);
    this.name = 'EmulatorCallError';
  }
}

export interface IssuedToken {
  readonly accessToken: string;
  /** Seconds from when it was issued. */
  readonly expiresIn: number;
}

/** The part of the emulator's ready file (`--ready-file`) that `dev` uses. */
export const EmulatorReadySchema = z.object({
  https: z.string(),
  http: z.string(),
  authority: z.string(),
  signIn: z.string(),
  graph: z.string(),
  arm: z.string(),
  msi: z.string(),
  msiHttp: z.string(),
  admin: z.string(),
  caCert: z.string(),
  tenantId: z.string(),
});
export type EmulatorReady = z.infer<typeof EmulatorReadySchema>;

const TokenReply = z.object({ access_token: z.string().min(1), expires_in: z.union([z.number(), z.string()]) });
const AadError = z.object({ error: z.string(), error_description: z.string().optional() });
const AdminError = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export class EmulatorClient {
  readonly dispatcher: Dispatcher;

  constructor(
    readonly endpoints: EmulatorReady,
    caCertPem: string,
  ) {
    this.dispatcher = new Agent({ connect: { ca: caCertPem } });
  }

  get tenantId(): string {
    return this.endpoints.tenantId;
  }

  /** `{method} /_emulator{path}` with a JSON body; the parsed reply, or EmulatorCallError. */
  async admin(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<unknown> {
    const res = await request(`${this.endpoints.admin}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await res.body.text();
    const parsed: unknown = text === '' ? {} : JSON.parse(text);
    if (res.statusCode >= 300) {
      const err = AdminError.safeParse(parsed);
      throw new EmulatorCallError(
        res.statusCode,
        `emulator ${method} /_emulator${path}`,
        err.success ? `${err.data.error.code}: ${err.data.error.message}` : text.slice(0, 300),
      );
    }
    return parsed;
  }

  /** The password grant as the Azure CLI (a public client), as `az login --username` does: the v2 endpoint on the HTTPS authority. */
  passwordToken(username: string, password: string, scope: string): Promise<IssuedToken> {
    return this.token(`token for ${username} (${scope})`, {
      grant_type: 'password',
      client_id: AZURE_CLI_APP_ID,
      username,
      password,
      scope,
    });
  }

  /** A managed identity's token from the IMDS-shaped endpoint on the HTTPS listener (so its `iss` names the HTTPS authority). */
  async managedIdentityToken(clientId: string, resource: string): Promise<IssuedToken> {
    const url = new URL(this.endpoints.msi);
    url.searchParams.set('api-version', '2018-02-01');
    url.searchParams.set('resource', resource);
    url.searchParams.set('client_id', clientId);
    const res = await request(url, { headers: { metadata: 'true' }, dispatcher: this.dispatcher });
    return tokenFrom(`managed identity token for ${clientId} (${resource})`, res.statusCode, await res.body.text());
  }

  private async token(what: string, form: Record<string, string>): Promise<IssuedToken> {
    const res = await request(`${this.endpoints.authority}/${this.tenantId}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
      dispatcher: this.dispatcher,
    });
    return tokenFrom(what, res.statusCode, await res.body.text());
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

function tokenFrom(what: string, status: number, text: string): IssuedToken {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new EmulatorCallError(status, what, 'the answer is not JSON');
  }
  if (status !== 200) {
    const err = AadError.safeParse(body);
    throw new EmulatorCallError(status, what, err.success ? `${err.data.error}: ${err.data.error_description ?? ''}` : 'no error description');
  }
  const ok = TokenReply.safeParse(body);
  if (!ok.success) throw new EmulatorCallError(status, what, 'the answer has no access_token');
  return { accessToken: ok.data.access_token, expiresIn: Number(ok.data.expires_in) };
}
