import type { AzureApiError } from '../azure/api-call.js';

/**
 * What to do about a failed Graph or ARM call, in the words of the person running the command:
 * which directory role or Azure role is missing, which flag is wrong. Keyed by Azure's error codes.
 */

const APP_ADMIN =
  'the signed-in account needs the Entra role Application Administrator or Cloud Application Administrator (or to own the app registration); an app or managed identity needs the Microsoft Graph application permission Application.ReadWrite.All';
const APP_ROLE_ADMIN =
  'the signed-in account needs the Entra role Cloud Application Administrator or Application Administrator; an app or managed identity needs the Microsoft Graph application permission AppRoleAssignment.ReadWrite.All';
const DIRECTORY_READER =
  'the signed-in account needs to read the directory (any member user can; a guest or an app needs Directory.Read.All, or Application.Read.All for app registrations)';

export function adviceFor(err: AzureApiError, context: { readonly scope?: string } = {}): string {
  const { api, operation, code } = err;
  const failure = err.failure;
  const at = context.scope ?? 'the cluster';
  if (failure.kind === 'token') return failure.fix;
  if (failure.kind === 'unreachable' || failure.kind === 'timeout') {
    return api === 'graph'
      ? "check --graph-endpoint (https://graph.microsoft.com, or your cloud's Graph endpoint) and the network or proxy between here and it"
      : "check --arm-endpoint (https://management.azure.com, or your cloud's ARM endpoint) and the network or proxy between here and it";
  }
  if (failure.kind === 'bad_response')
    return `the ${api === 'graph' ? 'Graph' : 'ARM'} endpoint answered something unexpected: check --${api}-endpoint`;
  const write = operation.endsWith('.write');
  if (api === 'graph') {
    switch (code) {
      case 'Authorization_RequestDenied':
        if (operation.startsWith('graph.app_role_assignments')) return APP_ROLE_ADMIN;
        return write ? APP_ADMIN : DIRECTORY_READER;
      case 'InvalidAuthenticationToken':
        return 'Microsoft Graph refused the token: sign in again (az login, with --tenant for the right directory) and check that --graph-endpoint belongs to the same cloud as --authority';
      case 'CannotDeleteOrUpdateEnabledEntitlement':
        return 'Graph refuses to change or remove an enabled scope or app role: disable it first (setup does this itself; a concurrent edit in the portal can race it), then rerun';
      case 'Request_MultipleObjectsWithSameKeyValue':
        return 'another object already uses this value (an identifier URI such as api://<client ID> is unique in the tenant): find it with az ad app list --identifier-uri <uri>';
      case 'HostNameNotOnVerifiedDomain':
        return 'identifier URIs with a host name must use a verified domain of the tenant; setup only adds api://<client ID>, so another URI on the app is the problem';
      case 'Request_ResourceNotFound':
        return 'the object does not exist in this tenant (or not yet: Entra replicates new objects within a minute); check the ID and --tenant-id';
      default:
        if (err.status === 429) return 'Microsoft Graph is throttling these requests: wait a minute and rerun (setup and grant are safe to rerun)';
        return "see Graph's message above; setup and grant are safe to rerun once it is resolved";
    }
  }
  switch (code) {
    case 'AuthorizationFailed':
      if (operation === 'arm.role_assignments.write') {
        return `the signed-in account needs Owner, User Access Administrator or Role Based Access Control Administrator at ${at} (or above) to assign roles`;
      }
      return `the signed-in account needs Reader (or any role that can read role assignments and the cluster) at ${at}`;
    case 'InvalidAuthenticationToken':
    case 'ExpiredAuthenticationToken':
    case 'InvalidAuthenticationTokenTenant':
      return 'ARM refused the token: sign in again (az login, with --tenant for the directory that owns the subscription) and check that --arm-endpoint belongs to the same cloud as --authority';
    case 'SubscriptionNotFound':
      return 'the subscription in --cluster-id is not visible to the signed-in account: check the ID and the tenant (az account list)';
    case 'ResourceGroupNotFound':
    case 'ResourceNotFound':
      return 'check --cluster-id: az connectedk8s show --resource-group <group> --name <cluster> --query id -o tsv';
    case 'PrincipalNotFound':
      return 'ARM does not know the principal yet (Entra replicates new objects within a few minutes): rerun shortly';
    case 'RoleAssignmentUpdateNotPermitted':
      return 'a role assignment with the same name exists for another principal or role: remove it (az role assignment delete --ids <id>) and rerun';
    case 'RoleDefinitionDoesNotExist':
      return 'the role is not available in this cloud or subscription';
    case 'LinkedAuthorizationFailed':
      return `the signed-in account needs Owner or User Access Administrator at ${at}`;
    default:
      if (err.status === 429) return 'ARM is throttling these requests: wait and rerun (setup and grant are safe to rerun)';
      return "see ARM's message above; setup and grant are safe to rerun once it is resolved";
  }
}
