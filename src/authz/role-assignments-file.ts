import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { EVERYONE_PRINCIPAL_ID, GUID, isArmResourceId, roleDefinitionGuid } from '../contracts/azure-ids.js';
import { BUILT_IN_ROLES, builtInRoleById, builtInRoleByName, type RoleDefinition } from './roles.js';
import { isAssignableScope } from '../azure/scope.js';
import type { EffectiveAssignment, EffectiveDenyAssignment } from './source.js';

/**
 * The format of `--role-assignments-file` (YAML or JSON) for `--rbac static`: role assignments, group
 * memberships, custom role definitions and deny assignments. The file is validated as a whole and
 * indexed into a StaticModel; reading, reloading and lookups belong to the source (static.ts).
 *
 * ```yaml
 * scope: /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Kubernetes/connectedClusters/<name>  # optional; --rbac-scope wins
 * roleDefinitions:                 # custom roles (optional)
 *   - id: <guid>
 *     roleName: Chat Only
 *     permissions: [{ dataActions: [Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action] }]
 * groups:                          # optional; nested groups allowed, membership is transitive
 *   - id: <guid>
 *     displayName: inference-users
 *     members: [<object id or group id>, ...]
 * roleAssignments:
 *   - principalId: <guid>          # user, service principal, managed identity or group object ID
 *     role: Cognitive Services OpenAI User   # built-in or custom role name, role definition GUID or full ID
 *     scope: <ARM scope>           # optional; default: the cluster scope
 *     condition: "..."             # optional; an assignment with a condition grants nothing
 * denyAssignments:                 # optional
 *   - name: no-chat-for-contractors
 *     principals: [<guid> | Everyone]
 *     excludePrincipals: [<guid>]
 *     scope: <ARM scope>           # optional; default: the cluster scope
 *     doNotApplyToChildScopes: false
 *     permissions: [{ dataActions: [Microsoft.CognitiveServices/*] }]
 * ```
 */

const guid = z.guid({ error: 'must be a GUID (an Entra object ID)' });
const scopeText = z.string().refine(isAssignableScope, {
  error: 'must be an ARM scope: /, /providers/Microsoft.Management/managementGroups/<id>, or /subscriptions/<guid>[/<type>/<name>...]',
});
const actionList = z.array(z.string().min(1, { error: 'must not be empty' })).default([]);
const permissionBlock = z.strictObject({ actions: actionList, notActions: actionList, dataActions: actionList, notDataActions: actionList });
const permissions = z.array(permissionBlock).min(1, { error: 'needs at least one permission block' });

const fileSchema = z.strictObject({
  scope: z
    .string()
    .refine(isArmResourceId, {
      error: 'must be the ARM resource ID of the connected cluster (/subscriptions/<guid>/resourceGroups/<rg>/providers/...)',
    })
    .optional(),
  roleDefinitions: z
    .array(
      z.strictObject({
        id: guid,
        roleName: z.string().trim().min(1, { error: 'must not be empty' }),
        description: z.string().optional(),
        assignableScopes: z.array(z.string()).optional(),
        permissions,
      }),
    )
    .default([]),
  groups: z
    .array(
      z.strictObject({
        id: guid,
        displayName: z.string().optional(),
        members: z.array(guid).default([]),
      }),
    )
    .default([]),
  roleAssignments: z
    .array(
      z.strictObject({
        principalId: guid,
        principalType: z.enum(['User', 'Group', 'ServicePrincipal']).optional(),
        role: z.string().trim().min(1, { error: 'must name a role' }),
        scope: scopeText.optional(),
        condition: z.string().min(1, { error: 'must not be empty (omit it for an unconditional assignment)' }).optional(),
        conditionVersion: z.string().optional(),
        description: z.string().optional(),
      }),
    )
    .default([]),
  denyAssignments: z
    .array(
      z.strictObject({
        id: z.string().min(1).optional(),
        name: z.string().trim().min(1, { error: 'must not be empty' }),
        description: z.string().optional(),
        scope: scopeText.optional(),
        principals: z
          .array(z.string().refine((p) => GUID.test(p) || p.toLowerCase() === 'everyone', { error: 'must be a GUID or "Everyone"' }))
          .min(1, { error: 'needs at least one principal (a GUID or "Everyone")' }),
        excludePrincipals: z.array(guid).default([]),
        doNotApplyToChildScopes: z.boolean().default(false),
        permissions,
      }),
    )
    .default([]),
});

type FileContent = z.infer<typeof fileSchema>;
type Path = readonly (string | number)[];

/** A validated file, indexed for lookups. Immutable: a reload builds a new one. */
export interface StaticModel {
  readonly scope: string;
  /** The file's own `scope`, when it has one (`--rbac-scope` may override it). */
  readonly fileScope?: string;
  /** Assignments by the (lower-case) principal or group they name. */
  readonly assignments: ReadonlyMap<string, readonly EffectiveAssignment[]>;
  /** Groups that directly contain a member (lower-case IDs). */
  readonly memberOf: ReadonlyMap<string, readonly string[]>;
  readonly denies: readonly {
    readonly deny: EffectiveDenyAssignment;
    readonly everyone: boolean;
    readonly principals: ReadonlySet<string>;
    readonly exclude: ReadonlySet<string>;
  }[];
  readonly counts: { readonly roleAssignments: number; readonly groups: number; readonly roleDefinitions: number; readonly denyAssignments: number };
}

export type ParseResult = { readonly ok: true; readonly model: StaticModel } | { readonly ok: false; readonly problems: readonly string[] };

function formatPath(path: Path): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out;
}

/** Builds problem lines that name the file, the entry's path and, for YAML/JSON text, its line. */
class Problems {
  readonly lines: string[] = [];
  constructor(
    private readonly file: string,
    private readonly lineOf: (path: Path) => number | undefined,
  ) {}

  add(path: Path, message: string): void {
    const where = formatPath(path);
    const line = this.lineOf(path);
    const at = where === '' ? '' : line === undefined ? `${where}: ` : `${where} (line ${line}): `;
    this.lines.push(`${this.file}: ${at}${message}`);
  }
}

/**
 * Parses and validates the text of a role assignments file. `clusterScope` is `--rbac-scope` when
 * given; it wins over the file's `scope`.
 */
export function parseRoleAssignmentsFile(text: string, file: string, clusterScope?: string): ParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return `${file}: line ${pos.line}, column ${pos.col}: ${e.message.split('\n')[0]}`;
      }),
    };
  }
  const lineOf = (path: Path): number | undefined => {
    for (let n = path.length; n > 0; n--) {
      const node: unknown = doc.getIn(path.slice(0, n), true);
      if (node !== null && typeof node === 'object' && 'range' in node && Array.isArray(node.range) && typeof node.range[0] === 'number') {
        return lineCounter.linePos(node.range[0]).line;
      }
    }
    return undefined;
  };
  const problems = new Problems(file, lineOf);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, problems: [`${file}: ${err instanceof Error ? err.message : String(err)}`] };
  }
  if (raw === null || raw === undefined) raw = {};
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
      problems.add(path, issue.message);
    }
    return { ok: false, problems: problems.lines };
  }
  const model = buildModel(parsed.data, problems, clusterScope);
  return model === undefined ? { ok: false, problems: problems.lines } : { ok: true, model };
}

/** Resolves role names and IDs, checks cross-references, and indexes the file for lookups. */
function buildModel(content: FileContent, problems: Problems, clusterScope: string | undefined): StaticModel | undefined {
  const scope = clusterScope ?? content.scope;
  if (scope === undefined) {
    problems.add([], 'no cluster scope: set --rbac-scope or add `scope: <ARM resource ID of the connected cluster>` to the file');
    return undefined;
  }

  const customById = new Map<string, RoleDefinition>();
  const customByName = new Map<string, RoleDefinition>();
  content.roleDefinitions.forEach((def, i) => {
    const id = def.id.toLowerCase();
    const builtIn = builtInRoleById(id) ?? builtInRoleByName(def.roleName);
    if (builtIn !== undefined) {
      problems.add(
        ['roleDefinitions', i],
        `collides with the built-in role "${builtIn.roleName}" (${builtIn.id}); give the custom role its own GUID and name`,
      );
      return;
    }
    if (customById.has(id)) problems.add(['roleDefinitions', i, 'id'], `duplicate role definition ID ${id}`);
    if (customByName.has(def.roleName.toLowerCase())) problems.add(['roleDefinitions', i, 'roleName'], `duplicate role name "${def.roleName}"`);
    const role: RoleDefinition = { id, roleName: def.roleName, description: def.description ?? '', type: 'CustomRole', permissions: def.permissions };
    customById.set(id, role);
    customByName.set(def.roleName.toLowerCase(), role);
  });

  const resolveRole = (ref: string): RoleDefinition | undefined => {
    const id = roleDefinitionGuid(ref);
    if (id !== undefined) return builtInRoleById(id) ?? customById.get(id);
    return builtInRoleByName(ref) ?? customByName.get(ref.trim().toLowerCase());
  };

  const memberOf = new Map<string, string[]>();
  const groupIds = new Set<string>();
  content.groups.forEach((group, i) => {
    const id = group.id.toLowerCase();
    if (groupIds.has(id)) problems.add(['groups', i, 'id'], `duplicate group ID ${id}; list all members in one entry`);
    groupIds.add(id);
    for (const member of group.members) {
      const m = member.toLowerCase();
      const parents = memberOf.get(m);
      if (parents === undefined) memberOf.set(m, [id]);
      else if (!parents.includes(id)) parents.push(id);
    }
  });

  const assignments = new Map<string, EffectiveAssignment[]>();
  content.roleAssignments.forEach((a, i) => {
    const role = resolveRole(a.role);
    if (role === undefined) {
      const known = BUILT_IN_ROLES.map((r) => r.roleName).join(', ');
      problems.add(['roleAssignments', i, 'role'], `unknown role "${a.role}": not a built-in role (${known}) nor a roleDefinitions entry`);
      return;
    }
    const principalId = a.principalId.toLowerCase();
    const effective: EffectiveAssignment = {
      roleDefinitionId: role.id,
      roleName: role.roleName,
      scope: a.scope ?? scope,
      principalId,
      ...(a.condition !== undefined ? { condition: a.condition } : {}),
      permissions: role.permissions,
    };
    const list = assignments.get(principalId);
    if (list === undefined) assignments.set(principalId, [effective]);
    else list.push(effective);
  });

  const denies = content.denyAssignments.map((d, i) => {
    const principals = new Set(d.principals.map((p) => p.toLowerCase()));
    const everyone = principals.has('everyone') || principals.has(EVERYONE_PRINCIPAL_ID);
    const deny: EffectiveDenyAssignment = {
      id: d.id ?? `denyAssignments[${i}]`,
      name: d.name,
      scope: d.scope ?? scope,
      doNotApplyToChildScopes: d.doNotApplyToChildScopes,
      permissions: d.permissions,
    };
    return { deny, everyone, principals, exclude: new Set(d.excludePrincipals.map((p) => p.toLowerCase())) };
  });

  if (problems.lines.length > 0) return undefined;
  return {
    scope,
    ...(content.scope !== undefined ? { fileScope: content.scope } : {}),
    assignments,
    memberOf,
    denies,
    counts: {
      roleAssignments: content.roleAssignments.length,
      groups: content.groups.length,
      roleDefinitions: content.roleDefinitions.length,
      denyAssignments: content.denyAssignments.length,
    },
  };
}
