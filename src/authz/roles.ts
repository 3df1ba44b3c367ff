import type { PermissionBlock } from './source.js';

/**
 * The built-in Azure role definitions foundry-auth knows by name and ID, with their real permission
 * blocks (Azure built-in roles reference, "AI + machine learning" and "General"). Built-in role IDs
 * are the same in every cloud. The emulator serves these same definitions.
 */
export interface RoleDefinition {
  /** GUID, lower case. */
  readonly id: string;
  readonly roleName: string;
  readonly description: string;
  readonly type: 'BuiltInRole' | 'CustomRole';
  readonly permissions: readonly PermissionBlock[];
}

const CS = 'Microsoft.CognitiveServices';
const OPENAI = `${CS}/accounts/OpenAI`;

function block(p: Partial<PermissionBlock>): PermissionBlock {
  return { actions: p.actions ?? [], notActions: p.notActions ?? [], dataActions: p.dataActions ?? [], notDataActions: p.notDataActions ?? [] };
}

export const BUILT_IN_ROLES: readonly RoleDefinition[] = [
  {
    id: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd',
    roleName: 'Cognitive Services OpenAI User',
    description: 'Read access to view files, models, deployments. The ability to create completion and embedding calls.',
    type: 'BuiltInRole',
    permissions: [
      block({
        actions: [`${CS}/*/read`, 'Microsoft.Authorization/roleAssignments/read', 'Microsoft.Authorization/roleDefinitions/read'],
        dataActions: [
          `${OPENAI}/*/read`,
          `${OPENAI}/engines/completions/action`,
          `${OPENAI}/engines/search/action`,
          `${OPENAI}/engines/generate/action`,
          `${OPENAI}/deployments/audio/action`,
          `${OPENAI}/deployments/search/action`,
          `${OPENAI}/deployments/completions/action`,
          `${OPENAI}/deployments/chat/completions/action`,
          `${OPENAI}/deployments/extensions/chat/completions/action`,
          `${OPENAI}/deployments/embeddings/action`,
          `${OPENAI}/deployments/realtime/action`,
          `${OPENAI}/images/generations/action`,
          `${OPENAI}/assistants/*`,
        ],
        notDataActions: [`${OPENAI}/stored-completions/read`],
      }),
    ],
  },
  {
    id: 'a001fd3d-188f-4b5d-821b-7da978bf7442',
    roleName: 'Cognitive Services OpenAI Contributor',
    description: 'Full access including the ability to fine-tune, deploy and generate text',
    type: 'BuiltInRole',
    permissions: [
      block({
        actions: [
          `${CS}/*/read`,
          `${CS}/accounts/deployments/write`,
          `${CS}/accounts/deployments/delete`,
          `${CS}/accounts/raiPolicies/read`,
          `${CS}/accounts/raiPolicies/write`,
          `${CS}/accounts/raiPolicies/delete`,
          `${CS}/accounts/commitmentplans/read`,
          `${CS}/accounts/commitmentplans/write`,
          `${CS}/accounts/commitmentplans/delete`,
          'Microsoft.Authorization/roleAssignments/read',
          'Microsoft.Authorization/roleDefinitions/read',
        ],
        dataActions: [`${OPENAI}/*`],
      }),
    ],
  },
  {
    id: '25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68',
    roleName: 'Cognitive Services Contributor',
    description: 'Lets you create, read, update, delete and manage keys of Cognitive Services.',
    type: 'BuiltInRole',
    permissions: [
      block({
        actions: [
          'Microsoft.Authorization/*/read',
          `${CS}/*`,
          'Microsoft.Features/features/read',
          'Microsoft.Features/providers/features/read',
          'Microsoft.Features/providers/features/register/action',
          'Microsoft.Insights/alertRules/*',
          'Microsoft.Insights/diagnosticSettings/*',
          'Microsoft.Insights/logDefinitions/read',
          'Microsoft.Insights/metricdefinitions/read',
          'Microsoft.Insights/metrics/read',
          'Microsoft.ResourceHealth/availabilityStatuses/read',
          'Microsoft.Resources/deployments/*',
          'Microsoft.Resources/deployments/operations/read',
          'Microsoft.Resources/subscriptions/operationresults/read',
          'Microsoft.Resources/subscriptions/read',
          'Microsoft.Resources/subscriptions/resourceGroups/read',
          'Microsoft.Resources/subscriptions/resourcegroups/deployments/*',
          'Microsoft.Support/*',
        ],
      }),
    ],
  },
  {
    id: 'a97b65f3-24c7-4388-baec-2e87135dc908',
    roleName: 'Cognitive Services User',
    description: 'Lets you read and list keys of Cognitive Services.',
    type: 'BuiltInRole',
    permissions: [
      block({
        actions: [
          `${CS}/*/read`,
          `${CS}/accounts/listkeys/action`,
          'Microsoft.Insights/alertRules/read',
          'Microsoft.Insights/diagnosticSettings/read',
          'Microsoft.Insights/logDefinitions/read',
          'Microsoft.Insights/metricdefinitions/read',
          'Microsoft.Insights/metrics/read',
          'Microsoft.ResourceHealth/availabilityStatuses/read',
          'Microsoft.Resources/deployments/operations/read',
          'Microsoft.Resources/subscriptions/operationresults/read',
          'Microsoft.Resources/subscriptions/read',
          'Microsoft.Resources/subscriptions/resourceGroups/read',
          'Microsoft.Support/*',
        ],
        dataActions: [`${CS}/*`],
      }),
    ],
  },
  {
    id: 'acdd72a7-3385-48ef-bd42-f606fba81ae7',
    roleName: 'Reader',
    description: 'View all resources, but does not allow you to make any changes.',
    type: 'BuiltInRole',
    permissions: [block({ actions: ['*/read'] })],
  },
  {
    id: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
    roleName: 'Contributor',
    description:
      'Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.',
    type: 'BuiltInRole',
    permissions: [
      block({
        actions: ['*'],
        notActions: [
          'Microsoft.Authorization/*/Delete',
          'Microsoft.Authorization/*/Write',
          'Microsoft.Authorization/elevateAccess/Action',
          'Microsoft.Blueprint/blueprintAssignments/write',
          'Microsoft.Blueprint/blueprintAssignments/delete',
          'Microsoft.Compute/galleries/share/action',
          'Microsoft.Purview/consents/write',
          'Microsoft.Purview/consents/delete',
          'Microsoft.Resources/deploymentStacks/manageDenySetting/action',
          'Microsoft.Subscription/cancel/action',
          'Microsoft.Subscription/enable/action',
        ],
      }),
    ],
  },
  {
    id: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635',
    roleName: 'Owner',
    description: 'Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.',
    type: 'BuiltInRole',
    permissions: [block({ actions: ['*'] })],
  },
];

/** Role definition IDs the product refers to by meaning. */
export const ROLE_IDS = {
  openAiUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd',
  openAiContributor: 'a001fd3d-188f-4b5d-821b-7da978bf7442',
  cognitiveServicesContributor: '25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68',
  cognitiveServicesUser: 'a97b65f3-24c7-4388-baec-2e87135dc908',
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7',
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
  owner: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635',
} as const;

const byId = new Map(BUILT_IN_ROLES.map((r) => [r.id, r]));
const byName = new Map(BUILT_IN_ROLES.map((r) => [r.roleName.toLowerCase(), r]));

/** The built-in role with this role definition GUID (any letter case). */
export function builtInRoleById(guid: string): RoleDefinition | undefined {
  return byId.get(guid.toLowerCase());
}

export function builtInRoleByName(name: string): RoleDefinition | undefined {
  return byName.get(name.trim().toLowerCase());
}
