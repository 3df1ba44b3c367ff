import type { PrincipalType } from '../azure/arm-manage.js';
import { GUID } from '../contracts/azure-ids.js';
import type { DirectoryPrincipal, ServicePrincipal } from '../azure/graph.js';
import type { SetupClients } from './clients.js';
import { ACCESS_ROLES, APP_ROLE_VALUE, roleAssignmentName, type AccessLevel } from './names.js';
import { collectingReporter, isChange, planned, type Reporter, type StepReport } from './report.js';
import { SetupError } from './setup.js';

/**
 * `foundry-auth grant`: the documentation's step 6. A user, group, service principal or managed
 * identity gets Cognitive Services OpenAI User (`inference`) or Cognitive Services Contributor
 * (`admin`) at the cluster; a service principal or managed identity also gets the app role its
 * app-only tokens must carry. `revoke` removes what grant adds. Idempotent both ways.
 */

export interface GrantOptions {
  /** The API app registration's Application (client) ID. */
  readonly clientId: string;
  /** ARM resource ID of the Arc connected cluster. */
  readonly clusterId: string;
  /** Object ID (user, group, service principal), user principal name, or a service principal's / managed identity's client ID. */
  readonly assignee: string;
  readonly access: AccessLevel;
  readonly revoke?: boolean;
  readonly dryRun?: boolean;
}

export interface GrantResult {
  readonly principal: DirectoryPrincipal & { readonly principalType: PrincipalType };
  readonly access: AccessLevel;
  readonly role: string;
  readonly clusterId: string;
  readonly revoke: boolean;
  readonly dryRun: boolean;
  readonly changed: boolean;
  readonly steps: readonly StepReport[];
}

export async function runGrant(options: GrantOptions, clients: SetupClients, reporter: Reporter = collectingReporter()): Promise<GrantResult> {
  const { graph, arm } = clients;
  const dryRun = options.dryRun === true;
  const revoke = options.revoke === true;
  const role = ACCESS_ROLES[options.access];
  const steps: StepReport[] = [];
  const report = (r: StepReport): void => {
    steps.push(r);
    reporter.step(r);
  };

  const principal = await reporter.waiting(`looking up ${options.assignee}`, () => resolveAssignee(options.assignee, clients));
  const principalType: PrincipalType = principal.kind === 'user' ? 'User' : principal.kind === 'group' ? 'Group' : 'ServicePrincipal';
  const who = describePrincipal(principal);

  const resource = await reporter.waiting("reading the app's service principal", () => graph.servicePrincipalByAppId(options.clientId));
  if (resource === null) {
    throw new SetupError(
      `the app ${options.clientId} has no service principal in this tenant`,
      'check --client-id, or run foundry-auth setup for it first',
    );
  }

  // The RBAC role at the cluster.
  const existing = await reporter.waiting('reading role assignments at the cluster', () =>
    arm.roleAssignmentAt(options.clusterId, principal.id, role.guid),
  );
  const subject = `${role.name} for ${who}`;
  if (!revoke) {
    if (existing !== undefined) {
      report({ step: 'role_assignment', seedStep: 6, subject, outcome: 'unchanged', detail: 'at the cluster' });
    } else {
      let outcome: 'created' | 'exists' = 'created';
      if (!dryRun) {
        const name = roleAssignmentName(options.clusterId, principal.id, role.guid);
        outcome = await reporter.waiting(`assigning ${role.name}`, () =>
          arm.createRoleAssignment(options.clusterId, name, { roleGuid: role.guid, principalId: principal.id, principalType }),
        );
      }
      report({
        step: 'role_assignment',
        seedStep: 6,
        subject,
        outcome: outcome === 'exists' ? 'unchanged' : planned('created', dryRun),
        detail: 'at the cluster',
      });
    }
  } else if (existing === undefined) {
    report({ step: 'role_assignment', seedStep: 6, subject, outcome: 'unchanged', detail: 'not assigned at the cluster' });
  } else {
    if (!dryRun) await reporter.waiting(`removing ${role.name}`, () => arm.deleteRoleAssignment(existing.id));
    report({ step: 'role_assignment', seedStep: 6, subject, outcome: planned('removed', dryRun), detail: 'at the cluster' });
  }

  // App-only callers also need the app role in their tokens.
  if (principal.kind === 'servicePrincipal') await appRoleStep(options, clients, reporter, report, { principal, resource, who, role: role.name });

  return {
    principal: { ...principal, principalType },
    access: options.access,
    role: role.name,
    clusterId: options.clusterId,
    revoke,
    dryRun,
    changed: steps.some((s) => isChange(s.outcome)),
    steps,
  };
}

async function appRoleStep(
  options: GrantOptions,
  { graph, arm }: SetupClients,
  reporter: Reporter,
  report: (r: StepReport) => void,
  ctx: { principal: DirectoryPrincipal; resource: ServicePrincipal; who: string; role: string },
): Promise<void> {
  const dryRun = options.dryRun === true;
  const appRole = (ctx.resource.appRoles ?? []).find((r) => r.value === APP_ROLE_VALUE);
  const subject = `app role ${APP_ROLE_VALUE} for ${ctx.who}`;
  if (appRole === undefined || appRole.isEnabled === false) {
    if (options.revoke === true)
      return report({ step: 'app_role_assignment', seedStep: 6, subject, outcome: 'unchanged', detail: 'the app has no such enabled app role' });
    throw new SetupError(
      `the app ${options.clientId} has no enabled app role ${APP_ROLE_VALUE}`,
      `run foundry-auth setup --app-name <name> --client-id ${options.clientId} first (step 4)`,
    );
  }
  const assignments = await reporter.waiting('reading app role assignments', () => graph.appRoleAssignedTo(ctx.resource.id));
  const held = assignments.find((a) => a.principalId.toLowerCase() === ctx.principal.id && a.appRoleId.toLowerCase() === appRole.id.toLowerCase());
  if (options.revoke !== true) {
    if (held !== undefined) return report({ step: 'app_role_assignment', seedStep: 6, subject, outcome: 'unchanged' });
    if (!dryRun)
      await reporter.waiting(`assigning app role ${APP_ROLE_VALUE}`, () => graph.assignAppRole(ctx.resource.id, ctx.principal.id, appRole.id));
    return report({ step: 'app_role_assignment', seedStep: 6, subject, outcome: planned('created', dryRun) });
  }
  if (held === undefined) return report({ step: 'app_role_assignment', seedStep: 6, subject, outcome: 'unchanged', detail: 'not assigned' });
  // The app role is shared by both access levels: it stays while the other one is still granted.
  const other = ACCESS_ROLES[options.access === 'inference' ? 'admin' : 'inference'];
  const otherHeld = await reporter.waiting('reading role assignments at the cluster', () =>
    arm.roleAssignmentAt(options.clusterId, ctx.principal.id, other.guid),
  );
  if (otherHeld !== undefined)
    return report({
      step: 'app_role_assignment',
      seedStep: 6,
      subject,
      outcome: 'unchanged',
      detail: `kept: ${other.name} is still assigned at the cluster`,
    });
  if (!dryRun) await reporter.waiting(`removing app role ${APP_ROLE_VALUE}`, () => graph.removeAppRoleAssignment(ctx.resource.id, held.id));
  report({ step: 'app_role_assignment', seedStep: 6, subject, outcome: planned('removed', dryRun) });
}

/** `--assignee`: an object ID (user, group, service principal), a client ID (service principal, managed identity), or a UPN. */
export async function resolveAssignee(assignee: string, { graph }: SetupClients): Promise<DirectoryPrincipal> {
  const value = assignee.trim();
  if (GUID.test(value)) {
    const byObjectId = await graph.directoryObject(value);
    if (byObjectId !== null) return byObjectId;
    const byClientId = await graph.servicePrincipalByAppId(value);
    if (byClientId !== null) {
      return {
        kind: 'servicePrincipal',
        id: byClientId.id.toLowerCase(),
        appId: byClientId.appId.toLowerCase(),
        ...(byClientId.displayName ? { displayName: byClientId.displayName } : {}),
        ...(byClientId.servicePrincipalType ? { servicePrincipalType: byClientId.servicePrincipalType } : {}),
      };
    }
    throw new SetupError(
      `no user, group, service principal or managed identity has the object ID or client ID ${value} in this tenant`,
      'check --assignee (az ad user show / az ad group show / az ad sp show --id <id>)',
    );
  }
  if (value.includes('@')) {
    const user = await graph.user(value);
    if (user !== null) return user;
    throw new SetupError(`no user ${value} in this tenant`, 'check --assignee: a user principal name as az ad user show --id <upn> knows it');
  }
  throw new SetupError(
    `--assignee ${value} is neither an object ID, a client ID nor a user principal name`,
    'pass a GUID (object ID of a user, group or service principal; or the client ID of a managed identity or service principal) or a UPN such as alice@contoso.com',
  );
}

function describePrincipal(p: DirectoryPrincipal): string {
  const kind =
    p.kind === 'user'
      ? 'user'
      : p.kind === 'group'
        ? 'group'
        : p.servicePrincipalType === 'ManagedIdentity'
          ? 'managed identity'
          : 'service principal';
  const name = p.userPrincipalName ?? p.displayName;
  return `${kind} ${name !== undefined ? `${name} (${p.id})` : p.id}`;
}
