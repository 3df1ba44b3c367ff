import type { Dispatcher } from 'undici';
import { decodeCompactJws } from '../authn/jws.js';
import { grantedBy } from '../authz/actions.js';
import { ROLE_IDS } from '../authz/roles.js';
import { ArmError, type RoleDefinition } from '../azure/arm.js';
import { AzureApiError } from '../azure/api-call.js';
import type { Application } from '../azure/graph.js';
import { GUID } from '../contracts/azure-ids.js';
import { describeFailure, HttpCallError, requestJson } from '../azure/http.js';
import { adviceFor } from './advice.js';
import type { SetupClients } from './clients.js';
import { shellLine } from './command-line.js';
import { inspectForUser } from './inspect.js';
import { APP_ROLE_VALUE, AZURE_CLI_APP_ID, CLUSTER_IDENTITY_ROLE, roleAssignmentName, SCOPE_VALUE } from './names.js';

/**
 * `foundry-auth doctor`: every setting the documentation names, checked where it lives (Graph for
 * the app registration, ARM for the cluster identity's role), one result per setting with the
 * command that repairs it; optionally a token checked as the sidecar would, and a live call.
 */

export type CheckStatus = 'pass' | 'fail' | 'warn' | 'skip';

export interface DoctorCheck {
  /** Stable: `app_registration`, `identifier_uri`, `scope`, `token_version`, `app_role`, `azure_cli_preauthorized`, `service_principal`, `cluster_identity`, `cluster_identity_role`, `token`, `endpoint`. */
  readonly name: string;
  readonly status: CheckStatus;
  /** What is required, in one line. */
  readonly title: string;
  /** What was found. */
  readonly detail: string;
  /** The command that repairs it (fail and warn only). */
  readonly fix?: string;
  /** The same command as argv, when it is a foundry-auth command that can be run as is. */
  readonly fixArgv?: readonly string[];
  /** The portal or az way to do the same. */
  readonly alternative?: string;
}

export interface DoctorOptions {
  readonly clientId: string;
  readonly clusterId?: string;
  /** A token to check as the sidecar would (`--token`). */
  readonly token?: string;
  /** A sidecar base URL for a live `GET /v1/models` (`--endpoint`). */
  readonly endpoint?: string;
  readonly tenantId?: string;
  readonly authority: string;
  /** The common flags printed fix commands need (endpoints, tenant, credential). */
  readonly commandArgs?: readonly string[];
  /** A token for `--endpoint` when `--token` is not given (the caller's credential for `api://<client-id>`). */
  readonly endpointToken?: () => Promise<string>;
  readonly dispatcher?: Dispatcher;
}

export interface DoctorResult {
  /** True when no check failed (warnings and skipped checks do not fail). */
  readonly ok: boolean;
  readonly tenantId: string | null;
  readonly clientId: string;
  readonly checks: readonly DoctorCheck[];
}

const READ_ASSIGNMENTS = 'Microsoft.Authorization/roleAssignments/read';
const READ_DEFINITIONS = 'Microsoft.Authorization/roleDefinitions/read';
const READ_DENIES = 'Microsoft.Authorization/denyAssignments/read';

export async function runDoctor(options: DoctorOptions, clients: SetupClients): Promise<DoctorResult> {
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck): void => {
    checks.push(c);
  };
  const common = [...(options.commandArgs ?? [])];
  // The token and the live call first: they need no Graph access, and when the caller cannot read
  // the directory (not signed in, no role) they still say what the sidecar does with the token.
  const live: DoctorCheck[] = [];
  const knownTenant = options.tenantId ?? null;
  if (options.token !== undefined) live.push(await tokenCheck(options, options.token, knownTenant, common));
  if (options.endpoint !== undefined)
    live.push(await endpointCheck(options, options.endpoint, knownTenant, common, setupArgvOf(options, common, undefined)));
  for (const c of live) add(c);
  let tenantId: string | null;
  let app: Application | null;
  try {
    tenantId = options.tenantId ?? (await clients.graph.callerTenantId()) ?? null;
    app = await clients.graph.applicationByAppId(options.clientId);
  } catch (err) {
    // Without the live checks the Graph failure is the whole answer (exit 1 with Azure's code and what to do).
    if (!(err instanceof AzureApiError) || live.length === 0) throw err;
    add({
      name: 'app_registration',
      status: 'fail',
      title: 'app registration exists',
      detail: `could not read Microsoft Graph: ${err.message}`,
      fix: adviceFor(err),
    });
    return { ok: false, tenantId: knownTenant, clientId: options.clientId, checks };
  }
  const setupArgv = (name: string | undefined): string[] => setupArgvOf(options, common, name);

  if (app === null) {
    add(
      failed(
        'app_registration',
        'app registration exists',
        `no app registration with client ID ${options.clientId} in tenant ${tenantId ?? '?'}`,
        setupArgv(undefined),
        'Portal: Microsoft Entra ID > App registrations > New registration',
      ),
    );
    for (const [name, title] of APP_CHECKS) add({ name, status: 'skip', title, detail: 'no app registration to check' });
  } else {
    add({
      name: 'app_registration',
      status: 'pass',
      title: 'app registration exists',
      detail: `${app.displayName ?? app.appId} (object ID ${app.id})`,
    });
    for (const c of appChecks(app, setupArgv(app.displayName ?? undefined))) add(c);
    const sp = await clients.graph.servicePrincipalByAppId(options.clientId);
    add(
      sp !== null
        ? { name: 'service_principal', status: 'pass', title: 'service principal exists', detail: `object ID ${sp.id}` }
        : failed(
            'service_principal',
            'service principal exists',
            'the app has no service principal in this tenant: nobody can get tokens for it',
            setupArgv(app.displayName ?? undefined),
            `az ad sp create --id ${options.clientId}`,
          ),
    );
  }

  if (options.clusterId !== undefined)
    for (const c of await clusterChecks(options.clusterId, clients, setupArgv(app?.displayName ?? undefined))) add(c);

  return { ok: checks.every((c) => c.status !== 'fail'), tenantId, clientId: options.clientId, checks };
}

/** The setup command that repairs the app registration (with its name when known, so it finds the same app). */
function setupArgvOf(options: DoctorOptions, common: readonly string[], name: string | undefined): string[] {
  return [
    'foundry-auth',
    'setup',
    '--app-name',
    name ?? '<app name>',
    ...(name !== undefined ? ['--client-id', options.clientId] : []),
    ...(options.clusterId !== undefined ? ['--cluster-id', options.clusterId] : []),
    ...common,
  ];
}

const APP_CHECKS: ReadonlyArray<readonly [string, string]> = [
  ['identifier_uri', 'identifier URI api://<client ID>'],
  ['scope', `scope ${SCOPE_VALUE}: exists, enabled, admin consent only`],
  ['token_version', 'v2 access tokens (requestedAccessTokenVersion 2)'],
  ['app_role', `app role ${APP_ROLE_VALUE}: for applications, enabled`],
  ['azure_cli_preauthorized', `Azure CLI pre-authorized for ${SCOPE_VALUE}`],
  ['service_principal', 'service principal exists'],
];

function failed(
  name: string,
  title: string,
  detail: string,
  argv: readonly string[],
  alternative?: string,
  status: 'fail' | 'warn' = 'fail',
): DoctorCheck {
  const runnable = argv[0] === 'foundry-auth' && !argv.some((a) => a.startsWith('<'));
  return {
    name,
    status,
    title,
    detail,
    fix: shellLine(argv),
    ...(runnable ? { fixArgv: argv } : {}),
    ...(alternative !== undefined ? { alternative } : {}),
  };
}

/** Steps 2-5, read from the application object. */
function appChecks(app: Application, setup: readonly string[]): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  const portal = (blade: string): string => `Portal: Microsoft Entra ID > App registrations > ${app.displayName ?? app.appId} > ${blade}`;
  const uri = `api://${app.appId}`;
  const uris = app.identifierUris ?? [];
  out.push(
    uris.some((u) => u.toLowerCase() === uri.toLowerCase())
      ? { name: 'identifier_uri', status: 'pass', title: `identifier URI ${uri}`, detail: 'set' }
      : failed(
          'identifier_uri',
          `identifier URI ${uri}`,
          uris.length === 0 ? 'the app has no identifier URI' : `the app's identifier URIs are ${uris.join(', ')}`,
          setup,
          portal('Expose an API > Application ID URI'),
        ),
  );

  const scopeTitle = `scope ${SCOPE_VALUE}: exists, enabled, admin consent only`;
  const scope = (app.api?.oauth2PermissionScopes ?? []).find((s) => s.value === SCOPE_VALUE);
  const scopeProblems =
    scope === undefined
      ? ['the app exposes no scope foundry_access']
      : [
          ...(scope.isEnabled !== true ? ['the scope is disabled'] : []),
          ...(scope.type !== 'Admin' ? [`the scope can be consented by users (type ${scope.type ?? 'unset'}), not admins only`] : []),
        ];
  out.push(
    scopeProblems.length === 0
      ? { name: 'scope', status: 'pass', title: scopeTitle, detail: `id ${scope!.id}` }
      : failed('scope', scopeTitle, scopeProblems.join('; '), setup, portal('Expose an API > Scopes (Who can consent: Admins only, State: Enabled)')),
  );

  const version = app.api?.requestedAccessTokenVersion ?? null;
  out.push(
    version === 2
      ? { name: 'token_version', status: 'pass', title: 'v2 access tokens (requestedAccessTokenVersion 2)', detail: 'requestedAccessTokenVersion 2' }
      : failed(
          'token_version',
          'v2 access tokens (requestedAccessTokenVersion 2)',
          `requestedAccessTokenVersion is ${String(version)}: tokens are v1.0 and the sidecar rejects them`,
          setup,
          `${portal('Manifest')}: "accessTokenAcceptedVersion": 2 (or: az rest --method PATCH --uri https://graph.microsoft.com/v1.0/applications/${app.id} --body '{"api":{"requestedAccessTokenVersion":2}}')`,
        ),
  );

  const roleTitle = `app role ${APP_ROLE_VALUE}: for applications, enabled`;
  const role = (app.appRoles ?? []).find((r) => r.value === APP_ROLE_VALUE);
  const roleProblems =
    role === undefined
      ? [`the app defines no app role ${APP_ROLE_VALUE}`]
      : [
          ...(role.isEnabled !== true ? ['the app role is disabled'] : []),
          ...(!(role.allowedMemberTypes ?? []).includes('Application') ? ['the app role cannot be assigned to applications'] : []),
        ];
  out.push(
    roleProblems.length === 0
      ? { name: 'app_role', status: 'pass', title: roleTitle, detail: `id ${role!.id}` }
      : failed('app_role', roleTitle, roleProblems.join('; '), setup, portal('App roles (Allowed member types: Applications, enabled)')),
  );

  const preTitle = `Azure CLI pre-authorized for ${SCOPE_VALUE}`;
  if (scope === undefined) {
    out.push({ name: 'azure_cli_preauthorized', status: 'skip', title: preTitle, detail: 'needs the scope first (see the scope check)' });
  } else {
    const entry = (app.api?.preAuthorizedApplications ?? []).find((p) => p.appId.toLowerCase() === AZURE_CLI_APP_ID);
    const ok = (entry?.delegatedPermissionIds ?? []).some((id) => id.toLowerCase() === scope.id.toLowerCase());
    out.push(
      ok
        ? {
            name: 'azure_cli_preauthorized',
            status: 'pass',
            title: preTitle,
            detail: `${AZURE_CLI_APP_ID} may request ${SCOPE_VALUE} without consent`,
          }
        : failed(
            'azure_cli_preauthorized',
            preTitle,
            entry === undefined
              ? `the Azure CLI (${AZURE_CLI_APP_ID}) is not a pre-authorized client: az account get-access-token for the app fails with AADSTS65001`
              : `the Azure CLI is pre-authorized, but not for ${SCOPE_VALUE}`,
            setup,
            portal(`Expose an API > Add a client application ${AZURE_CLI_APP_ID}`),
          ),
    );
  }
  return out;
}

/** Step 7: the cluster's Arc identity exists and holds a role that lets the sidecar read role assignments there. */
async function clusterChecks(clusterId: string, clients: SetupClients, setup: readonly string[]): Promise<DoctorCheck[]> {
  const identityTitle = 'the cluster has an Arc identity';
  const roleTitle = 'the cluster identity can read role assignments at the cluster';
  const cluster = await clients.arm.connectedCluster(clusterId);
  if (cluster === null || cluster.principalId === undefined) {
    return [
      {
        name: 'cluster_identity',
        status: 'fail',
        title: identityTitle,
        detail: cluster === null ? `ARM has no connected cluster ${clusterId}` : 'the connected cluster has no system-assigned identity',
        fix:
          cluster === null
            ? 'check --cluster-id: az connectedk8s show --resource-group <group> --name <cluster> --query id -o tsv'
            : 'reconnect the cluster with az connectedk8s connect; Arc gives every connected cluster a system-assigned identity',
      },
      { name: 'cluster_identity_role', status: 'skip', title: roleTitle, detail: 'no cluster identity to check' },
    ];
  }
  const principalId = cluster.principalId;
  const out: DoctorCheck[] = [{ name: 'cluster_identity', status: 'pass', title: identityTitle, detail: `object ID ${principalId}` }];
  const azRole = `az role assignment create --assignee-object-id ${principalId} --assignee-principal-type ServicePrincipal --role "${CLUSTER_IDENTITY_ROLE.name}" --scope ${clusterId}`;
  let held: Array<{ scope: string; definition: RoleDefinition }>;
  try {
    const assignments = await clients.armReader.listRoleAssignments(clusterId, principalId);
    const usable = assignments.filter((a) => a.condition === undefined);
    const definitions = await Promise.all(usable.map((a) => clients.armReader.getRoleDefinition(a.roleDefinitionId, clusterId)));
    held = usable.flatMap((a, i) => (definitions[i] ? [{ scope: a.scope, definition: definitions[i] }] : []));
  } catch (err) {
    const detail = err instanceof ArmError ? err.message : String(err);
    const advice =
      err instanceof ArmError && err.details.status === 403
        ? `the account running doctor needs Reader at ${clusterId} to check this`
        : 'rerun doctor when ARM answers';
    return [
      ...out,
      {
        name: 'cluster_identity_role',
        status: 'fail',
        title: roleTitle,
        detail: `could not read the identity's role assignments: ${detail}`,
        fix: advice,
      },
    ];
  }
  const can = (action: string): boolean => held.some((h) => h.definition.permissions.some((p) => grantedBy(p.actions, p.notActions, action)));
  const roles = held.map((h) => `${h.definition.roleName} at ${h.scope}`).join(', ');
  if (!can(READ_ASSIGNMENTS) || !can(READ_DEFINITIONS)) {
    out.push(
      failed(
        'cluster_identity_role',
        roleTitle,
        `${held.length === 0 ? 'the identity holds no role at or above the cluster' : `its roles (${roles}) do not include ${!can(READ_ASSIGNMENTS) ? READ_ASSIGNMENTS : READ_DEFINITIONS}`}: every authenticated request fails with 500 rbac_check_unavailable`,
        setup,
        azRole,
      ),
    );
    return out;
  }
  if (!can(READ_DENIES)) {
    // `az rest` rather than `az role assignment create`: it works in every az release, including
    // Debian's azure-cli 2.45, whose role commands fail against its packaged authorization SDK.
    // The name is the one setup would give it, so running the command twice creates one assignment.
    const reader = { roleGuid: ROLE_IDS.reader, principalId, principalType: 'ServicePrincipal' } as const;
    const put = clients.arm.roleAssignmentPut(clusterId, roleAssignmentName(clusterId, principalId, ROLE_IDS.reader), reader);
    out.push(
      failed(
        'cluster_identity_role',
        roleTitle,
        `holds ${roles}; it cannot read deny assignments, so the sidecar decides without them (a warning, not a failure)`,
        ['az', 'rest', '--method', 'PUT', '--uri', put.url, '--body', JSON.stringify(put.body)],
        `az role assignment create --assignee-object-id ${principalId} --assignee-principal-type ServicePrincipal --role Reader --scope ${clusterId}`,
        'warn',
      ),
    );
    return out;
  }
  out.push({ name: 'cluster_identity_role', status: 'pass', title: roleTitle, detail: `holds ${roles}` });
  return out;
}

async function tokenCheck(options: DoctorOptions, token: string, tenantId: string | null, common: readonly string[]): Promise<DoctorCheck> {
  const report = await inspectForUser(token, {
    ...(tenantId !== null ? { tenantId } : {}),
    clientId: options.clientId,
    authority: options.authority,
    ...(options.clusterId !== undefined ? { clusterId: options.clusterId } : {}),
    commandArgs: common,
    ...(options.dispatcher !== undefined ? { dispatcher: options.dispatcher } : {}),
  });
  const title = "the token passes the sidecar's checks";
  const who =
    report.verdict.principal !== undefined
      ? `${report.verdict.principal.type} ${report.verdict.principal.oid}`
      : report.kind === 'unknown'
        ? 'a token'
        : `${report.kind} token`;
  if (report.accepted) return { name: 'token', status: 'pass', title, detail: `${who}: accepted (signature verified)` };
  if (report.verdict.status === 200)
    return {
      name: 'token',
      status: 'fail',
      title,
      detail: `every claim check passes but the signature was not checked: ${report.notes.at(-1) ?? ''}`,
      fix: `check that ${options.authority} is reachable from here`,
    };
  return {
    name: 'token',
    status: 'fail',
    title,
    detail: `the sidecar would answer ${report.verdict.status} ${report.verdict.code ?? ''}: ${report.verdict.message}`,
    ...(report.fix !== undefined ? { fix: report.fix } : {}),
  };
}

async function endpointCheck(
  options: DoctorOptions,
  endpoint: string,
  tenantId: string | null,
  common: readonly string[],
  setup: readonly string[],
): Promise<DoctorCheck> {
  const url = `${endpoint.replace(/\/+$/, '')}/v1/models`;
  const title = `a live call GET ${url} succeeds`;
  let token = options.token;
  if (token === undefined) {
    if (options.endpointToken === undefined) return { name: 'endpoint', status: 'skip', title, detail: 'no token: pass --token' };
    try {
      token = await options.endpointToken();
    } catch (err) {
      const fix = err instanceof AzureApiError ? adviceFor(err) : 'pass --token';
      return {
        name: 'endpoint',
        status: 'fail',
        title,
        detail: `could not get a token for api://${options.clientId}: ${err instanceof Error ? err.message : String(err)}`,
        fix,
      };
    }
  }
  try {
    await requestJson({
      operation: 'doctor.endpoint',
      url,
      headers: { authorization: `Bearer ${token}` },
      timeoutMs: 30_000,
      ...(options.dispatcher !== undefined ? { dispatcher: options.dispatcher } : {}),
    });
    return { name: 'endpoint', status: 'pass', title, detail: '200: authenticated, authorized and answered by the backend' };
  } catch (err) {
    if (!(err instanceof HttpCallError)) throw err;
    const f = err.failure;
    if (f.kind !== 'http')
      return {
        name: 'endpoint',
        status: 'fail',
        title,
        detail: describeFailure(f),
        fix: `check --endpoint (the sidecar's base URL, e.g. https://<host>:8443) and the network between here and it`,
      };
    const said = `${f.status}${f.code !== undefined ? ` ${f.code}` : ''}${f.message !== undefined ? `: ${f.message}` : ''}`;
    const oid = oidOf(token);
    const cluster = options.clusterId ?? '<cluster resource ID>';
    switch (f.code) {
      case 'invalid_token':
      case 'missing_credentials': {
        const report = await inspectForUser(token, {
          ...(tenantId !== null ? { tenantId } : {}),
          clientId: options.clientId,
          authority: options.authority,
          clusterId: cluster,
          commandArgs: common,
          fetchKeys: false,
        });
        return {
          name: 'endpoint',
          status: 'fail',
          title,
          detail: `the sidecar answered ${said}`,
          fix: report.fix ?? 'run foundry-auth token inspect on the token',
        };
      }
      case 'insufficient_permissions': {
        const argv = [
          'foundry-auth',
          'grant',
          '--client-id',
          options.clientId,
          '--cluster-id',
          cluster,
          '--assignee',
          oid ?? '<object ID>',
          '--access',
          'inference',
          ...common,
        ];
        return failed(
          'endpoint',
          title,
          `the sidecar answered ${said}`,
          argv,
          'Azure RBAC changes can take up to 10 minutes to reach ARM, and the sidecar caches decisions for --rbac-deny-ttl',
        );
      }
      case 'rbac_check_unavailable':
        return failed(
          'endpoint',
          title,
          `the sidecar answered ${said}: it could not read role assignments as the cluster identity`,
          setup,
          "also check the sidecar's log and /readyz for the ARM error",
        );
      case 'identity_provider_unavailable':
        return {
          name: 'endpoint',
          status: 'fail',
          title,
          detail: `the sidecar answered ${said}`,
          fix: `the sidecar cannot load signing keys: check its --authority (${options.authority}) and its network path to it`,
        };
      case 'upstream_unavailable':
      case 'upstream_timeout':
        return {
          name: 'endpoint',
          status: 'fail',
          title,
          detail: `the sidecar answered ${said}`,
          fix: 'authentication and authorization passed; the Foundry Local backend (--upstream) did not answer: check it',
        };
      case 'route_not_found':
        return {
          name: 'endpoint',
          status: 'fail',
          title,
          detail: `the endpoint answered ${said}`,
          fix: "pass the sidecar's base URL as --endpoint (without /v1)",
        };
      default:
        return {
          name: 'endpoint',
          status: 'fail',
          title,
          detail: `the endpoint answered ${said}`,
          fix: 'check that --endpoint is a foundry-auth sidecar',
        };
    }
  }
}

/** The token's `oid`, for the grant command in a fix (read, not trusted). */
function oidOf(token: string): string | undefined {
  const decoded = decodeCompactJws(token);
  const oid = decoded.ok ? decoded.jws.payload.oid : undefined;
  return typeof oid === 'string' && GUID.test(oid) ? oid.toLowerCase() : undefined;
}
