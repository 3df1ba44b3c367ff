import type { Dispatcher } from 'undici';
import { systemClock, type Clock } from '../ops/clock.js';
import { azureCliSource } from './azure-cli.js';
import { clientCredentialsSource } from './client-credentials.js';
import { authorityHost, CachingTokenProvider } from './token-provider.js';
import { msiAdapterSource } from './msi-adapter.js';
import { IdentityConfigError, type TokenProvider, type TokenSource } from './token.js';

/**
 * The credential of the person (or pipeline) running `setup`, `grant`, `doctor`: `--credential
 * azure-cli | environment | managed-identity`. Graph and ARM need tokens for different resources,
 * so each resource gets its own cached provider built on the same token sources the sidecar uses.
 */

export type CallerCredentialKind = 'azure-cli' | 'environment' | 'managed-identity';
export const CALLER_CREDENTIAL_KINDS: readonly CallerCredentialKind[] = ['azure-cli', 'environment', 'managed-identity'];
/** Azure's instance metadata service; the Arc msi-adapter and the emulator speak the same protocol. */
export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254/metadata/identity/oauth2/token';

export interface CallerCredentialOptions {
  readonly kind: CallerCredentialKind;
  /** `--tenant-id`: asks for tokens from this tenant. */
  readonly tenantId?: string;
  /** `--authority` when given explicitly; for `environment`, else `AZURE_AUTHORITY_HOST`, else the public cloud. */
  readonly authority?: string;
  /** `managed-identity`: the IMDS-shaped token endpoint. */
  readonly msiEndpoint?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The Azure CLI binary; defaults to `FOUNDRY_AUTH_AZ_PATH` or `az` on PATH. */
  readonly azPath?: string;
  readonly timeoutMs: number;
  readonly dispatcher?: Dispatcher;
  readonly clock?: Clock;
}

export interface CallerCredential {
  /** Which identity this is, for messages (never a secret). */
  readonly description: string;
  /** A cached token provider for one resource (`https://graph.microsoft.com`, `https://management.azure.com`, `api://<client-id>`). */
  forResource(resource: string): TokenProvider;
}

/** Throws IdentityConfigError (a usage error) when the credential's environment is incomplete. */
export function callerCredential(opts: CallerCredentialOptions): CallerCredential {
  const env = opts.env ?? process.env;
  const clock = opts.clock ?? systemClock;
  const providers = new Map<string, TokenProvider>();
  const sourceFor = sourceFactory(opts, env, clock);
  return {
    description: describe(opts, env),
    forResource(resource: string): TokenProvider {
      const key = resource.replace(/\/+$/, '');
      let provider = providers.get(key);
      if (provider === undefined) {
        provider = new CachingTokenProvider(sourceFor(key), { clock });
        providers.set(key, provider);
      }
      return provider;
    },
  };
}

function sourceFactory(
  opts: CallerCredentialOptions,
  env: Readonly<Record<string, string | undefined>>,
  clock: Clock,
): (resource: string) => TokenSource {
  const common = { timeoutMs: opts.timeoutMs, dispatcher: opts.dispatcher, clock };
  switch (opts.kind) {
    case 'azure-cli': {
      const azPath = opts.azPath ?? nonEmpty(env['FOUNDRY_AUTH_AZ_PATH']) ?? 'az';
      const tenant = opts.tenantId !== undefined ? ` --tenant ${opts.tenantId}` : '';
      return (resource) =>
        azureCliSource({
          ...common,
          azPath,
          resource,
          env,
          ...(opts.tenantId !== undefined ? { tenant: opts.tenantId } : {}),
          description: `Azure CLI (az account get-access-token --resource ${resource}${tenant})`,
          fix: `run az login${opts.tenantId !== undefined ? ` --tenant ${opts.tenantId}` : ''} as an account that may manage the app registration, or pass --credential environment|managed-identity`,
        });
    }
    case 'environment': {
      const clientId = nonEmpty(env['AZURE_CLIENT_ID']);
      const tenantId = opts.tenantId ?? nonEmpty(env['AZURE_TENANT_ID']);
      const secret = nonEmpty(env['AZURE_CLIENT_SECRET']);
      const tokenFile = nonEmpty(env['AZURE_FEDERATED_TOKEN_FILE']);
      const missing = [
        clientId === undefined ? 'AZURE_CLIENT_ID' : '',
        tenantId === undefined ? 'AZURE_TENANT_ID (or --tenant-id)' : '',
        secret === undefined && tokenFile === undefined ? 'AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE' : '',
      ].filter((m) => m !== '');
      if (missing.length > 0) throw new IdentityConfigError(`--credential environment needs ${missing.join(', ')} (not set)`);
      const authority = opts.authority?.replace(/\/+$/, '') ?? authorityHost(env);
      return (resource) =>
        clientCredentialsSource({
          ...common,
          kind: secret !== undefined ? 'client-secret' : 'workload-identity',
          authorityHost: authority,
          tenantId: tenantId!,
          clientId: clientId!,
          credential: secret !== undefined ? { secret } : { federatedTokenFile: tokenFile! },
          resource,
        });
    }
    case 'managed-identity': {
      const endpoint = new URL(opts.msiEndpoint ?? DEFAULT_IMDS_ENDPOINT);
      // A user-assigned identity is chosen by its client ID, as the Azure SDKs do with AZURE_CLIENT_ID.
      const clientId = nonEmpty(env['AZURE_CLIENT_ID']);
      if (clientId !== undefined && !endpoint.searchParams.has('client_id')) endpoint.searchParams.set('client_id', clientId);
      const description = describe(opts, env);
      const fix =
        'run where a managed identity is available (Azure VM, Arc-enabled server or cluster), set AZURE_CLIENT_ID for a user-assigned identity, or pass --msi-endpoint';
      return (resource) => msiAdapterSource({ ...common, endpoint: endpoint.href, resource, description, fix });
    }
  }
}

function describe(opts: CallerCredentialOptions, env: Readonly<Record<string, string | undefined>>): string {
  const clientId = nonEmpty(env['AZURE_CLIENT_ID']);
  switch (opts.kind) {
    case 'azure-cli':
      return 'the Azure CLI signed-in account (az account get-access-token)';
    case 'environment':
      return `the app ${clientId ?? '(AZURE_CLIENT_ID)'} from AZURE_* environment variables`;
    case 'managed-identity': {
      const endpoint = new URL(opts.msiEndpoint ?? DEFAULT_IMDS_ENDPOINT);
      return `managed identity${clientId !== undefined ? ` (client ${clientId})` : ''} via ${endpoint.origin}${endpoint.pathname}`;
    }
  }
}

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim() !== '' ? v.trim() : undefined;
}
