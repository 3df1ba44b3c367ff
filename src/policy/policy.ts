import { LineCounter, parseDocument, isNode } from 'yaml';
import { z } from 'zod';
import type { Principal } from '../contracts/principal.js';

/**
 * The policy file (`--policy-file`, YAML or JSON): which principal may use which model, and how
 * many tokens and requests it may spend. Model rules are tried in order and the first whose glob
 * matches the request's model decides (no match: allowed, RBAC already passed). Every limit entry
 * that matches a principal applies and the tightest value of each limit wins; a `default` entry
 * applies to the principals no role or principal entry matches.
 */
export interface ModelRule {
  /** The glob as written (`phi-4*`). */
  readonly match: string;
  readonly pattern: RegExp;
  readonly roles: readonly string[];
  /** Lower-case object IDs and API key IDs (`key-3f9a1c2e`). */
  readonly principals: readonly string[];
}

export interface Limits {
  readonly tokensPerMinute?: number;
  readonly requestsPerMinute?: number;
  readonly tokensPerDay?: number;
}

export type LimitTarget =
  | { readonly kind: 'roles'; readonly roles: readonly string[] }
  | { readonly kind: 'principals'; readonly principals: readonly string[] }
  | { readonly kind: 'default' };

export interface LimitRule extends Limits {
  readonly for: LimitTarget;
}

export type ModelAccess = { readonly kind: 'allowed' } | { readonly kind: 'denied'; readonly rule: ModelRule };

const name = z.string().trim().min(1);
/** An object ID, or an API key ID as foundry-auth logs it. */
const principalId = z
  .string()
  .trim()
  .regex(
    /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|key-[0-9a-f]{8})$/,
    'an object ID (GUID) or an API key ID such as key-3f9a1c2e',
  )
  .transform((s) => s.toLowerCase());
const glob = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21-\x7e]+$/, 'a model name glob of printable ASCII without spaces (* any characters, ? one character)');
const limit = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const POLICY_FILE = z
  .strictObject({
    models: z
      .array(
        z.strictObject({
          match: glob,
          allow: z.strictObject({ roles: z.array(name).optional(), principals: z.array(principalId).optional() }),
        }),
      )
      .default([]),
    limits: z
      .array(
        z
          .strictObject({
            for: z.union([
              z.strictObject({ roles: z.array(name).min(1) }),
              z.strictObject({ principals: z.array(principalId).min(1) }),
              z.strictObject({ default: z.literal(true) }),
            ]),
            tokensPerMinute: limit.optional(),
            requestsPerMinute: limit.optional(),
            tokensPerDay: limit.optional(),
          })
          .refine((l) => l.tokensPerMinute !== undefined || l.requestsPerMinute !== undefined || l.tokensPerDay !== undefined, {
            message: 'a limit entry needs at least one of tokensPerMinute, requestsPerMinute, tokensPerDay',
          }),
      )
      .default([]),
  })
  .nullable();

export class Policy {
  readonly hasModelRules: boolean;
  readonly hasLimits: boolean;

  constructor(
    readonly models: readonly ModelRule[],
    readonly limits: readonly LimitRule[],
  ) {
    this.hasModelRules = models.length > 0;
    this.hasLimits = limits.length > 0;
  }

  /** The first model rule whose glob matches decides; no match leaves the decision to RBAC. */
  modelAccess(model: string, principal: Principal): ModelAccess {
    for (const rule of this.models) {
      if (!rule.pattern.test(model)) continue;
      if (rule.principals.includes(principal.oid)) return ALLOWED;
      const roles = rolesOf(principal);
      return rule.roles.some((r) => roles.includes(r)) ? ALLOWED : { kind: 'denied', rule };
    }
    return ALLOWED;
  }

  /** The limits that apply to a principal (tightest of every matching entry), or undefined when none does. */
  limitsFor(principal: Principal): Limits | undefined {
    if (!this.hasLimits) return undefined;
    const roles = rolesOf(principal);
    let matched: LimitRule[] | undefined;
    for (const rule of this.limits) {
      const target = rule.for;
      const applies =
        (target.kind === 'principals' && target.principals.includes(principal.oid)) ||
        (target.kind === 'roles' && target.roles.some((r) => roles.includes(r)));
      if (applies) (matched ??= []).push(rule);
    }
    matched ??= this.limits.filter((rule) => rule.for.kind === 'default');
    if (matched.length === 0) return undefined;
    return {
      ...tightest(matched, 'tokensPerMinute'),
      ...tightest(matched, 'requestsPerMinute'),
      ...tightest(matched, 'tokensPerDay'),
    };
  }
}

const ALLOWED: ModelAccess = { kind: 'allowed' };
const NO_ROLES: readonly string[] = [];

/** The token's `roles` claim (app roles assigned to the user, its groups, or the app); none for API keys. */
export function rolesOf(principal: Principal): readonly string[] {
  const roles = principal.claims?.roles;
  return Array.isArray(roles) ? (roles as string[]) : NO_ROLES;
}

function tightest(rules: readonly LimitRule[], key: keyof Limits): Limits {
  let value: number | undefined;
  for (const rule of rules) {
    const v = rule[key];
    if (v !== undefined && (value === undefined || v < value)) value = v;
  }
  return value === undefined ? {} : { [key]: value };
}

/** `*` is any run of characters, `?` one character, everything else literal; case-insensitive (model lookups upstream are). */
export function globPattern(text: string): RegExp {
  const body = text
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'is');
}

export type PolicyParse = { readonly ok: true; readonly policy: Policy } | { readonly ok: false; readonly errors: readonly string[] };

/** Parses a policy file's text. Every problem names the file, its line and the setting's path. */
export function parsePolicy(text: string, path: string): PolicyParse {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return { ok: false, errors: doc.errors.map((e) => `${path}:${lineCounter.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`) };
  }
  const result = POLICY_FILE.safeParse(doc.toJS({ maxAliasCount: 100 }));
  if (!result.success) {
    return {
      ok: false,
      errors: result.error.issues.map((issue) => {
        const at = lineOf(doc, lineCounter, issue.path);
        const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
        return `${path}:${at}: ${where}: ${issue.message}`;
      }),
    };
  }
  const data = result.data ?? { models: [], limits: [] };
  const models: ModelRule[] = data.models.map((m) => ({
    match: m.match,
    pattern: globPattern(m.match),
    roles: m.allow.roles ?? [],
    principals: m.allow.principals ?? [],
  }));
  const limits: LimitRule[] = data.limits.map((l) => ({
    for:
      'roles' in l.for
        ? { kind: 'roles', roles: l.for.roles }
        : 'principals' in l.for
          ? { kind: 'principals', principals: l.for.principals }
          : { kind: 'default' },
    ...(l.tokensPerMinute !== undefined ? { tokensPerMinute: l.tokensPerMinute } : {}),
    ...(l.requestsPerMinute !== undefined ? { requestsPerMinute: l.requestsPerMinute } : {}),
    ...(l.tokensPerDay !== undefined ? { tokensPerDay: l.tokensPerDay } : {}),
  }));
  return { ok: true, policy: new Policy(models, limits) };
}

/** The line of the deepest node on `path` that exists in the document (1 for the top level). */
function lineOf(doc: ReturnType<typeof parseDocument>, lineCounter: LineCounter, path: readonly PropertyKey[]): number {
  for (let depth = path.length; depth >= 0; depth--) {
    const node: unknown = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth) as (string | number)[], true);
    if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
  }
  return 1;
}
