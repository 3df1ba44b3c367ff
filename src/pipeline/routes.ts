import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { Plane, RouteMatch } from '../contracts/route.js';

/**
 * The route table of SPEC section 5: method + canonical path -> plane and Azure RBAC action.
 * Patterns are `/literal/segments`, `{name}` for exactly one segment, and a final `**` for one or
 * more segments. Anything without a route is 404 (405 when another method has one) and is never
 * forwarded.
 */
export interface RouteDefinition {
  readonly methods: readonly string[];
  readonly path: string;
  readonly plane: Plane;
  readonly action: string;
}

const CS = 'Microsoft.CognitiveServices/accounts';
const OPENAI = `${CS}/OpenAI`;
const READ = `${CS}/deployments/read`;
const WRITE = `${CS}/deployments/write`;
const DELETE = `${CS}/deployments/delete`;

export const DEFAULT_ROUTES: readonly RouteDefinition[] = [
  { methods: ['POST'], path: '/v1/chat/completions', plane: 'data', action: `${OPENAI}/deployments/chat/completions/action` },
  { methods: ['POST'], path: '/v1/completions', plane: 'data', action: `${OPENAI}/deployments/completions/action` },
  { methods: ['POST'], path: '/v1/embeddings', plane: 'data', action: `${OPENAI}/deployments/embeddings/action` },
  { methods: ['POST'], path: '/v1/audio/transcriptions', plane: 'data', action: `${OPENAI}/deployments/audio/action` },
  { methods: ['POST'], path: '/v1/audio/translations', plane: 'data', action: `${OPENAI}/deployments/audio/action` },
  { methods: ['GET'], path: '/v1/models', plane: 'data', action: `${OPENAI}/models/read` },
  { methods: ['GET'], path: '/v1/models/{id}', plane: 'data', action: `${OPENAI}/models/read` },
  { methods: ['GET', 'HEAD'], path: '/api/v1/**', plane: 'control', action: READ },
  { methods: ['POST', 'PUT', 'PATCH'], path: '/api/v1/**', plane: 'control', action: WRITE },
  { methods: ['DELETE'], path: '/api/v1/**', plane: 'control', action: DELETE },
  { methods: ['GET'], path: '/foundry/list', plane: 'control', action: READ },
  { methods: ['GET'], path: '/openai/models', plane: 'control', action: READ },
  { methods: ['GET'], path: '/openai/loadedmodels', plane: 'control', action: READ },
  { methods: ['GET'], path: '/openai/status', plane: 'control', action: READ },
  { methods: ['GET'], path: '/openai/load/{name}', plane: 'control', action: WRITE },
  { methods: ['GET'], path: '/openai/unload/{name}', plane: 'control', action: WRITE },
  { methods: ['GET'], path: '/openai/unloadall', plane: 'control', action: WRITE },
  { methods: ['POST'], path: '/openai/download', plane: 'control', action: WRITE },
  { methods: ['POST'], path: '/openai/register', plane: 'control', action: WRITE },
];

export type RouteLookup =
  | { readonly kind: 'match'; readonly route: RouteMatch }
  | { readonly kind: 'method_not_allowed'; readonly allow: readonly string[] }
  | { readonly kind: 'not_found' };

type Segment = { readonly kind: 'literal'; readonly value: string } | { readonly kind: 'param' } | { readonly kind: 'rest' };

interface CompiledRoute {
  readonly methods: ReadonlySet<string>;
  readonly segments: readonly Segment[];
  readonly match: RouteMatch;
}

const NOT_FOUND: RouteLookup = { kind: 'not_found' };

export class RouteTable {
  /** `METHOD path` -> lookup, for routes without parameters: the common case costs one Map lookup. */
  private readonly exact = new Map<string, RouteLookup>();
  private readonly patterns: readonly CompiledRoute[];
  private readonly exactPaths = new Map<string, string[]>();

  constructor(definitions: readonly RouteDefinition[]) {
    const patterns: CompiledRoute[] = [];
    for (const def of definitions) {
      const segments = compilePath(def.path);
      const match: RouteMatch = {
        name: `${def.methods.join(',')} ${def.path}`,
        plane: def.plane,
        action: def.action,
        dataAction: def.plane === 'data',
      };
      if (segments.every((s) => s.kind === 'literal')) {
        for (const method of def.methods) {
          const key = `${method} ${def.path}`;
          if (!this.exact.has(key)) this.exact.set(key, { kind: 'match', route: match });
          const methods = this.exactPaths.get(def.path) ?? [];
          if (!methods.includes(method)) methods.push(method);
          this.exactPaths.set(def.path, methods);
        }
      } else {
        patterns.push({ methods: new Set(def.methods), segments, match });
      }
    }
    this.patterns = patterns;
  }

  /** Finds the route for a canonical path: parameterless routes first, then patterns in order; earlier definitions win. */
  lookup(method: string, path: string): RouteLookup {
    const exact = this.exact.get(`${method} ${path}`);
    if (exact !== undefined) return exact;
    const allow = new Set(this.exactPaths.get(path) ?? []);
    if (this.patterns.length > 0) {
      const parts = path.split('/').slice(1);
      for (const route of this.patterns) {
        if (!segmentsMatch(route.segments, parts)) continue;
        if (route.methods.has(method)) return { kind: 'match', route: route.match };
        for (const m of route.methods) allow.add(m);
      }
    }
    if (allow.size > 0) return { kind: 'method_not_allowed', allow: [...allow].sort() };
    return NOT_FOUND;
  }
}

function segmentsMatch(pattern: readonly Segment[], parts: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const seg = pattern[i]!;
    if (seg.kind === 'rest') return parts.length > i;
    if (i >= parts.length) return false;
    if (seg.kind === 'literal' && seg.value !== parts[i]) return false;
  }
  return parts.length === pattern.length;
}

function compilePath(path: string): Segment[] {
  const parts = path.split('/').slice(1);
  return parts.map((part, i): Segment => {
    if (part === '**') {
      if (i !== parts.length - 1) throw new Error(`"**" must be the last segment of a route path (${path})`);
      return { kind: 'rest' };
    }
    if (/^\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(part)) return { kind: 'param' };
    return { kind: 'literal', value: part };
  });
}

const METHOD = z.string().regex(/^[A-Z]+$/, 'an upper-case HTTP method such as GET or POST');
const ROUTE_PATH = z
  .string()
  .regex(
    /^(\/([A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\}|\*\*))+$/,
    'a path of literal segments, {param} segments and an optional final **',
  )
  .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'no dot segments')
  .refine((p) => !p.slice(0, -3).includes('**'), '"**" only as the last segment');

const ROUTES_FILE = z
  .object({
    mode: z.enum(['extend', 'replace']).default('extend'),
    routes: z
      .array(
        z
          .object({
            methods: z.array(METHOD).min(1),
            path: ROUTE_PATH,
            plane: z.enum(['data', 'control']),
            action: z
              .string()
              .regex(
                /^[A-Za-z0-9.]+\/[A-Za-z0-9./*_-]+$/,
                'an Azure RBAC action such as Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action',
              ),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

export type RoutesFileResult =
  { readonly ok: true; readonly routes: readonly RouteDefinition[] } | { readonly ok: false; readonly errors: readonly string[] };

/**
 * `--routes-file` (YAML or JSON): `mode: extend` (default) puts the file's routes before the
 * defaults, so a file route wins for the same method and path; `mode: replace` uses only the file.
 */
export function loadRoutesFile(path: string): RoutesFileResult {
  let parsed: unknown;
  try {
    const body = readFileSync(path, 'utf8');
    parsed = path.endsWith('.json') ? JSON.parse(body) : parseYaml(body);
  } catch (err) {
    return { ok: false, errors: [`cannot read ${path}: ${(err as Error).message.split('\n')[0]}`] };
  }
  const result = ROUTES_FILE.safeParse(parsed);
  if (!result.success) {
    return {
      ok: false,
      errors: result.error.issues.map((issue) => `${path}: ${issue.path.length > 0 ? issue.path.join('.') : '(top level)'}: ${issue.message}`),
    };
  }
  const fileRoutes: RouteDefinition[] = result.data.routes;
  return { ok: true, routes: result.data.mode === 'replace' ? fileRoutes : [...fileRoutes, ...DEFAULT_ROUTES] };
}
