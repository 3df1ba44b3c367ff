import { type Command, Option } from 'commander';
import type { Dispatcher } from 'undici';
import { EXIT_USAGE } from '../config/exit-codes.js';
import { AzureApiError } from '../azure/api-call.js';
import { DEFAULT_ARM_ENDPOINT } from '../azure/arm-manage.js';
import { CALLER_CREDENTIAL_KINDS, callerCredential, type CallerCredential, type CallerCredentialKind } from '../azure/credential.js';
import { DEFAULT_AUTHORITY_HOST } from '../azure/client-credentials.js';
import { DEFAULT_GRAPH_ENDPOINT } from '../azure/graph.js';
import { GUID, isArmResourceId } from '../contracts/azure-ids.js';
import { IdentityConfigError } from '../azure/token.js';
import { adviceFor } from './advice.js';
import { createSetupClients, DEFAULT_CALL_TIMEOUT_MS, type SetupClients } from './clients.js';
import { SetupError } from './setup.js';
import { Terminal } from './terminal.js';

/**
 * What `setup`, `grant`, `doctor` and `token inspect` share on the command line (SPEC section 10):
 * the common flags and their validation, the caller's credential, exit codes (0 success, 1 a check
 * or an operation failed, 2 usage), and how a failure is shown: Azure's code plus what to do.
 */

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;

/** A flag is missing or wrong: exit 2, naming the flag. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CommonFlags {
  tenantId?: string;
  authority?: string;
  graphEndpoint?: string;
  armEndpoint?: string;
  credential?: string;
  msiEndpoint?: string;
  json?: boolean;
  dryRun?: boolean;
  /** `--dev [STATE_DIR]`: true when given without a directory. */
  dev?: string | boolean;
}

export interface CommonSettings {
  readonly tenantId?: string;
  /** As given; undefined means the default. */
  readonly authority?: string;
  readonly authorityOrDefault: string;
  readonly graphEndpoint: string;
  readonly armEndpoint: string;
  readonly credential: CallerCredentialKind;
  readonly msiEndpoint?: string;
  readonly json: boolean;
  readonly dryRun: boolean;
  /** `--dev`: the running dev stack everything acts on (its emulator, tenant, app and cluster, as its admin). */
  readonly dev?: DevTarget;
}

/** The running `foundry-auth dev` stack a `--dev` command acts on (opened by the dev layer, which knows its state directory). */
export interface DevTarget {
  /** As the user gave it: printed fix commands repeat it. */
  readonly stateDir: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clusterId: string;
  readonly authority: string;
  readonly graphEndpoint: string;
  readonly armEndpoint: string;
  readonly credential: CallerCredential;
  /** HTTPS that trusts the emulator's CA (Graph, ARM, the JWKS). */
  readonly dispatcher: Dispatcher;
}

/** Opens the dev stack of a state directory; throws UsageError when none is running there. */
export type DevStackOpener = (stateDir: string) => DevTarget;

/** `--dev` without a directory. */
export const DEFAULT_STATE_DIR = '.foundry-auth';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

export function addCommonOptions(cmd: Command, opts: { dryRun?: boolean; azure?: boolean } = {}): Command {
  cmd
    .option('--tenant-id <guid>', 'the directory (tenant) ID; default: the tenant of the signed-in account')
    .option('--authority <url>', `the Entra ID login endpoint (default ${DEFAULT_AUTHORITY_HOST}; sovereign clouds and the emulator)`);
  if (opts.azure !== false) {
    cmd
      .option('--graph-endpoint <url>', `Microsoft Graph (default ${DEFAULT_GRAPH_ENDPOINT})`)
      .option('--arm-endpoint <url>', `Azure Resource Manager (default ${DEFAULT_ARM_ENDPOINT})`)
      .addOption(
        new Option(
          '--credential <kind>',
          'how to sign in: the Azure CLI account, AZURE_* environment variables (client secret or federated token file), or a managed identity',
        )
          .choices([...CALLER_CREDENTIAL_KINDS])
          .default('azure-cli'),
      )
      .option('--msi-endpoint <url>', 'with --credential managed-identity: the IMDS-shaped token endpoint (default Azure IMDS)');
  }
  cmd.option(
    '--dev [state-dir]',
    `act on the running foundry-auth dev stack whose state is in this directory (default ${DEFAULT_STATE_DIR}): its emulator, tenant, app and cluster, signed in as the emulator's admin`,
  );
  cmd.option('--json', 'print one JSON document on stdout (progress and messages on stderr)');
  if (opts.dryRun === true) cmd.option('--dry-run', 'show what would change and change nothing');
  return cmd;
}

export function commonSettings(flags: CommonFlags, openDev?: DevStackOpener): CommonSettings {
  if (flags.dev !== undefined && flags.dev !== false) {
    if (openDev === undefined) throw new UsageError('--dev is not available here');
    return devSettings(flags, openDev(flags.dev === true ? DEFAULT_STATE_DIR : flags.dev));
  }
  const tenantId = flags.tenantId === undefined ? undefined : guidFlag('--tenant-id', flags.tenantId);
  const authority = flags.authority === undefined ? undefined : endpoint('--authority', flags.authority);
  return {
    ...(tenantId !== undefined ? { tenantId } : {}),
    ...(authority !== undefined ? { authority } : {}),
    authorityOrDefault: authority ?? DEFAULT_AUTHORITY_HOST,
    graphEndpoint: flags.graphEndpoint === undefined ? DEFAULT_GRAPH_ENDPOINT : endpoint('--graph-endpoint', flags.graphEndpoint),
    armEndpoint: flags.armEndpoint === undefined ? DEFAULT_ARM_ENDPOINT : endpoint('--arm-endpoint', flags.armEndpoint),
    credential: (flags.credential ?? 'azure-cli') as CallerCredentialKind,
    ...(flags.msiEndpoint !== undefined ? { msiEndpoint: endpoint('--msi-endpoint', flags.msiEndpoint, { allowHttp: true }) } : {}),
    json: flags.json === true,
    dryRun: flags.dryRun === true,
  };
}

/** `--dev`: every endpoint, the tenant and the credential come from the running stack; flags that would contradict it are refused. */
function devSettings(flags: CommonFlags, dev: DevTarget): CommonSettings {
  const given = (['tenantId', 'authority', 'graphEndpoint', 'armEndpoint', 'msiEndpoint'] as const).filter((k) => flags[k] !== undefined);
  if (given.length > 0)
    throw new UsageError(
      `--dev takes the tenant and every endpoint from the dev stack: leave out ${given.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}`,
    );
  return {
    tenantId: dev.tenantId,
    authority: dev.authority,
    authorityOrDefault: dev.authority,
    graphEndpoint: dev.graphEndpoint,
    armEndpoint: dev.armEndpoint,
    credential: 'azure-cli',
    json: flags.json === true,
    dryRun: flags.dryRun === true,
    dev,
  };
}

export function guidFlag(flag: string, value: string): string {
  if (!GUID.test(value.trim())) throw new UsageError(`${flag} must be a GUID such as 00000000-0000-0000-0000-000000000000 (got "${clip(value)}")`);
  return value.trim().toLowerCase();
}

export function clusterFlag(value: string): string {
  const v = value.trim().replace(/\/+$/, '');
  if (!isArmResourceId(v) || !/\/providers\/Microsoft\.Kubernetes\/connectedClusters\/[^/]+$/i.test(v)) {
    throw new UsageError(
      `--cluster-id must be the ARM resource ID of an Arc connected cluster, /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Kubernetes/connectedClusters/<name> (az connectedk8s show -g <group> -n <name> --query id -o tsv); got "${clip(value)}"`,
    );
  }
  return v;
}

/** An https URL without credentials, query or fragment; http only for loopback hosts (the emulator) or IMDS. */
function endpoint(flag: string, value: string, opts: { allowHttp?: boolean } = {}): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${flag} must be an absolute https:// URL (got "${clip(value)}")`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`${flag} must use https:// (got "${url.protocol}")`);
  if (url.protocol === 'http:' && !LOOPBACK.has(url.hostname) && opts.allowHttp !== true)
    throw new UsageError(`${flag}: http:// is allowed only for loopback hosts; use https:// for ${url.host}`);
  if (url.username !== '' || url.password !== '') throw new UsageError(`${flag} must not contain credentials`);
  if (url.hash !== '' || (url.search !== '' && opts.allowHttp !== true)) throw new UsageError(`${flag} must not contain a query or fragment`);
  return url.href.replace(/\/+$/, '');
}

export function credentialOf(settings: CommonSettings): CallerCredential {
  if (settings.dev !== undefined) return settings.dev.credential;
  try {
    return callerCredential({
      kind: settings.credential,
      ...(settings.tenantId !== undefined ? { tenantId: settings.tenantId } : {}),
      ...(settings.authority !== undefined ? { authority: settings.authority } : {}),
      ...(settings.msiEndpoint !== undefined ? { msiEndpoint: settings.msiEndpoint } : {}),
      timeoutMs: DEFAULT_CALL_TIMEOUT_MS,
    });
  } catch (err) {
    if (err instanceof IdentityConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * The Graph and ARM clients acting as the caller. With `warmArm`, the ARM token is requested at
 * once, alongside the Graph token: each `az account get-access-token` takes about a second.
 */
export function clientsOf(
  settings: CommonSettings,
  credential: CallerCredential = credentialOf(settings),
  opts: { warmArm?: boolean } = {},
): SetupClients {
  const warm = (resource: string): void => {
    // A failure here is remembered by the provider and reported by the call that needs the token.
    credential
      .forResource(resource)
      .getToken()
      .catch(() => undefined);
  };
  warm(settings.graphEndpoint);
  if (opts.warmArm === true) warm(settings.armEndpoint);
  return createSetupClients({
    graphEndpoint: settings.graphEndpoint,
    armEndpoint: settings.armEndpoint,
    graphTokens: credential.forResource(settings.graphEndpoint),
    armTokens: credential.forResource(settings.armEndpoint),
    ...(settings.dev !== undefined ? { dispatcher: settings.dev.dispatcher } : {}),
  });
}

/** The common flags a printed follow-up command needs to reach the same tenant and endpoints. */
export function commonArgs(settings: CommonSettings): string[] {
  if (settings.dev !== undefined) return ['--dev', settings.dev.stateDir];
  const args: string[] = [];
  if (settings.tenantId !== undefined) args.push('--tenant-id', settings.tenantId);
  if (settings.authority !== undefined && settings.authority !== DEFAULT_AUTHORITY_HOST) args.push('--authority', settings.authority);
  if (settings.graphEndpoint !== DEFAULT_GRAPH_ENDPOINT) args.push('--graph-endpoint', settings.graphEndpoint);
  if (settings.armEndpoint !== DEFAULT_ARM_ENDPOINT) args.push('--arm-endpoint', settings.armEndpoint);
  if (settings.credential !== 'azure-cli') args.push('--credential', settings.credential);
  if (settings.msiEndpoint !== undefined) args.push('--msi-endpoint', settings.msiEndpoint);
  return args;
}

/** argv as one shell line, single-quoting what a POSIX shell would otherwise split or expand. */
export function shellLine(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * Runs a command's action: usage errors exit 2, Azure and setup failures print what failed and
 * what to do and exit 1. In `--json` mode the failure is also the JSON document.
 */
export async function runAction(name: string, json: boolean, action: (term: Terminal) => Promise<number>): Promise<void> {
  const term = new Terminal({ json });
  try {
    process.exitCode = await action(term);
  } catch (err) {
    process.exitCode = reportFailure(name, term, err);
  }
}

function reportFailure(name: string, term: Terminal, err: unknown): number {
  if (err instanceof UsageError) {
    term.note(`foundry-auth ${name}: ${err.message}`);
    term.note(`Run "foundry-auth ${name} --help" for the options.`);
    if (term.json) term.document({ error: { kind: 'usage', message: err.message } });
    return EXIT_USAGE;
  }
  if (err instanceof AzureApiError) {
    const service = err.api === 'graph' ? 'Microsoft Graph' : 'ARM';
    const what =
      err.failure.kind === 'token'
        ? `could not get a token for ${service}: ${err.failure.detail}`
        : `${service} call ${err.operation} failed: ${err.message.slice(err.operation.length + 2)}`;
    const fix = adviceFor(err);
    term.note(`foundry-auth ${name}: ${what}${err.correlationId !== undefined ? ` (correlation ID ${err.correlationId})` : ''}`);
    term.note(`  what to do: ${fix}`);
    if (term.json) {
      term.document({
        error: {
          kind: 'azure',
          api: err.api,
          operation: err.operation,
          status: err.status ?? null,
          code: err.code ?? null,
          message: err.azureMessage ?? what,
          fix,
          correlationId: err.correlationId ?? null,
        },
      });
    }
    return EXIT_FAILED;
  }
  if (err instanceof SetupError) {
    term.note(`foundry-auth ${name}: ${err.message}`);
    term.note(`  what to do: ${err.fix}`);
    if (term.json) term.document({ error: { kind: 'setup', message: err.message, fix: err.fix } });
    return EXIT_FAILED;
  }
  throw err;
}

function clip(value: string): string {
  const oneLine = value.replace(/[\u0000-\u001f\u007f]/g, '?');
  return oneLine.length > 80 ? `${oneLine.slice(0, 77)}...` : oneLine;
}
