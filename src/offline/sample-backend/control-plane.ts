import { z } from 'zod';
import type { ModelRecord } from './catalog.js';
import { fieldErrors, readJson, sendControlError, sendJson, type RequestContext } from './http.js';
import { afterToken, continueToken, deploymentKey, type ControlPlaneStore, type DeploymentSpec } from './store.js';

/**
 * The in-memory Foundry Local control plane under `/api/v1` (research/foundry-local.md 1.2):
 * models (catalog + bring-your-own custom models) and namespaced deployments, with the
 * control-plane error shape `{"error":"NotFound|Conflict|ValidationError","message","details"}`.
 */

/** A Kubernetes DNS label: deployment, namespace and custom model names. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MODEL_NAME = /^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$/;

const PRIVATE_HOST =
  /^(localhost|.*\.localhost|127\.\d+\.\d+\.\d+|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+|169\.254\.\d+\.\d+|0\.0\.0\.0|\[?::1?\]?)$/i;

/** A registry is a host name (optionally with a port), never a loopback or private address (SSRF). */
const registry = z
  .string()
  .regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, 'must be a registry host name such as myregistry.azurecr.io (no scheme, no path)')
  .refine((value) => !PRIVATE_HOST.test(value.replace(/:\d+$/, '')), 'must not be a loopback, link-local or private address');

const customModelBody = z.strictObject({
  name: z.string().regex(MODEL_NAME, 'must be lower-case letters, digits, ".", "_" or "-" (at most 63)'),
  displayName: z.string().min(1).max(200).optional(),
  source: z.strictObject({
    type: z.literal('custom', { error: 'only custom (bring-your-own) models can be registered; foundry-local models come from the catalog' }),
    registry,
    path: z.string().min(1).max(500).optional(),
  }),
  task: z.string().min(1).max(100).optional(),
  publisher: z.string().min(1).max(100).optional(),
  compute: z
    .array(z.enum(['cpu', 'gpu']))
    .min(1)
    .optional(),
  version: z.string().min(1).max(50).optional(),
});

const modelReference = z
  .strictObject({ ref: z.string().min(1).optional(), catalog: z.string().min(1).optional(), custom: z.string().min(1).optional() })
  .refine(
    (m) => [m.ref, m.catalog, m.custom].filter((v) => v !== undefined).length === 1,
    'set exactly one of model.ref, model.catalog, model.custom',
  );

const env = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names are letters, digits and _'), z.string());
const resources = z.record(z.string(), z.unknown());
const endpoint = z.record(z.string(), z.unknown());

const deploymentBody = z.strictObject({
  name: z.string().regex(DNS_LABEL, 'must be a DNS label: lower-case letters, digits and "-" (at most 63)'),
  model: modelReference,
  compute: z.enum(['cpu', 'gpu']).default('cpu'),
  workloadType: z.enum(['generative', 'predictive']).default('generative'),
  runtime: z.string().min(1).max(50).default('onnx-genai'),
  replicas: z.number().int().min(0).max(10).default(1),
  port: z.number().int().min(1).max(65535).default(5000),
  resources: resources.optional(),
  env: env.optional(),
  endpoint: endpoint.optional(),
});

/** PATCH may change only these (as the real API allows). */
const deploymentPatch = z.strictObject({
  replicas: z.number().int().min(0).max(10).optional(),
  env: env.optional(),
  resources: resources.optional(),
  endpoint: endpoint.optional(),
});

const listModelsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});

const listDeploymentsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  continue: z.string().optional(),
});

/** Answers `/api/v1/...`; `segments` are the path segments after `api/v1`. */
export async function handleControlPlane(ctx: RequestContext, segments: readonly string[], store: ControlPlaneStore): Promise<void> {
  const [first, second, third, fourth, ...rest] = segments;
  if (first === 'models' && second === undefined) return collection(ctx, { GET: () => listModels(ctx, store), POST: () => createModel(ctx, store) });
  if (first === 'models' && third !== undefined && fourth === undefined) {
    if (second === 'foundry-local' || second === 'foundry')
      return collection(ctx, { GET: () => getModel(ctx, store.catalogModel(third), 'foundry-local', third) });
    if (second === 'custom') {
      return collection(ctx, {
        GET: () => getModel(ctx, store.customModel(third), 'custom', third),
        PUT: () => replaceModel(ctx, store, third),
        DELETE: () => deleteModel(ctx, store, third),
      });
    }
  }
  if (first === 'deployments' && second === undefined) return collection(ctx, { GET: () => listDeployments(ctx, store, undefined) });
  if (first === 'namespaces' && second !== undefined && third === 'deployments' && rest.length === 0) {
    if (!DNS_LABEL.test(second)) return invalidName(ctx, 'namespace', second);
    if (fourth === undefined)
      return collection(ctx, { GET: () => listDeployments(ctx, store, second), POST: () => createDeployment(ctx, store, second) });
    return collection(ctx, {
      GET: () => getDeployment(ctx, store, second, fourth),
      PUT: () => replaceDeployment(ctx, store, second, fourth),
      PATCH: () => patchDeployment(ctx, store, second, fourth),
      DELETE: () => deleteDeployment(ctx, store, second, fourth),
    });
  }
  sendControlError(ctx.res, 404, 'NotFound', `no control-plane route ${ctx.path}`, { path: ctx.path });
}

type Handlers = Partial<Record<'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', () => void | Promise<void>>>;

async function collection(ctx: RequestContext, handlers: Handlers): Promise<void> {
  const method = ctx.method === 'HEAD' ? 'GET' : ctx.method;
  const handler = handlers[method as keyof Handlers];
  if (handler !== undefined) return handler();
  const allow = Object.keys(handlers).join(', ');
  sendControlError(ctx.res, 405, 'MethodNotAllowed', `${ctx.method} is not allowed on ${ctx.path}; allowed: ${allow}`, {
    allow: Object.keys(handlers),
  });
}

function listModels(ctx: RequestContext, store: ControlPlaneStore): void {
  const query = listModelsQuery.safeParse(Object.fromEntries(ctx.query));
  if (!query.success) return validationError(ctx, 'invalid query parameters', fieldErrors(query.error));
  const { limit, offset } = query.data;
  const filters = {
    name: ctx.query.get('name')?.toLowerCase(),
    compute: ctx.query.get('compute'),
    task: ctx.query.get('task'),
    publisher: ctx.query.get('publisher')?.toLowerCase(),
    source: ctx.query.get('source'),
  };
  const matching = store
    .models()
    .filter(
      (m) =>
        (filters.name === undefined || m.name.includes(filters.name) || m.displayName.toLowerCase().includes(filters.name)) &&
        (filters.compute == null || m.compute.includes(filters.compute as 'cpu' | 'gpu')) &&
        (filters.task == null || m.task === filters.task) &&
        (filters.publisher === undefined || m.publisher.toLowerCase() === filters.publisher) &&
        (filters.source == null || m.source.type === filters.source),
    );
  const page = matching.slice(offset, offset + limit);
  sendJson(ctx.res, 200, {
    models: page,
    total: matching.length,
    count: page.length,
    limit,
    offset,
    hasMore: offset + page.length < matching.length,
  });
}

function getModel(ctx: RequestContext, model: ModelRecord | undefined, source: string, name: string): void {
  if (model === undefined) return notFound(ctx, 'model', `no ${source} model named "${name}"`, { source, name });
  sendJson(ctx.res, 200, model);
}

async function createModel(ctx: RequestContext, store: ControlPlaneStore): Promise<void> {
  const body = await parseBody(ctx, customModelBody);
  if (body === undefined) return;
  if (store.model(body.name) !== undefined) {
    return sendControlError(ctx.res, 409, 'Conflict', `a model named "${body.name}" already exists`, { resource: 'model', name: body.name });
  }
  sendJson(ctx.res, 201, store.putCustomModel(customModel(body)));
}

async function replaceModel(ctx: RequestContext, store: ControlPlaneStore, name: string): Promise<void> {
  if (store.customModel(name) === undefined) return notFound(ctx, 'model', `no custom model named "${name}"`, { source: 'custom', name });
  const body = await parseBody(ctx, customModelBody);
  if (body === undefined) return;
  if (body.name !== name) return validationError(ctx, 'the name in the body must match the path', [{ field: 'name', message: `expected "${name}"` }]);
  sendJson(ctx.res, 200, store.putCustomModel(customModel(body)));
}

function deleteModel(ctx: RequestContext, store: ControlPlaneStore, name: string): void {
  if (store.customModel(name) === undefined) return notFound(ctx, 'model', `no custom model named "${name}"`, { source: 'custom', name });
  const users = store.deploymentsUsing(name);
  if (users.length > 0) {
    return sendControlError(ctx.res, 409, 'Conflict', `model "${name}" is used by ${users.length} deployment(s); delete them first`, {
      resource: 'model',
      name,
      deployments: users.map(deploymentKey),
    });
  }
  store.deleteCustomModel(name);
  ctx.res.writeHead(204).end();
}

function listDeployments(ctx: RequestContext, store: ControlPlaneStore, namespace: string | undefined): void {
  const query = listDeploymentsQuery.safeParse(Object.fromEntries(ctx.query));
  if (!query.success) return validationError(ctx, 'invalid query parameters', fieldErrors(query.error));
  const all = store.listDeployments(namespace);
  let start = 0;
  if (query.data.continue !== undefined) {
    const after = afterToken(query.data.continue);
    start = all.findIndex((d) => deploymentKey(d) > after);
    if (start < 0) start = all.length;
  }
  const page = all.slice(start, start + query.data.limit);
  const more = start + page.length < all.length;
  sendJson(ctx.res, 200, { deployments: page, count: page.length, continueToken: more ? continueToken(page[page.length - 1]!) : null });
}

async function createDeployment(ctx: RequestContext, store: ControlPlaneStore, namespace: string): Promise<void> {
  const body = await parseBody(ctx, deploymentBody);
  if (body === undefined) return;
  if (store.deployment(namespace, body.name) !== undefined) {
    return sendControlError(ctx.res, 409, 'Conflict', `deployment "${body.name}" already exists in namespace "${namespace}"`, {
      resource: 'deployment',
      namespace,
      name: body.name,
    });
  }
  if (!modelExists(ctx, store, body.model)) return;
  const { name, ...spec } = body;
  sendJson(ctx.res, 201, store.putDeployment(namespace, name, spec));
}

function getDeployment(ctx: RequestContext, store: ControlPlaneStore, namespace: string, name: string): void {
  const found = store.deployment(namespace, name);
  if (found === undefined) return deploymentNotFound(ctx, namespace, name);
  sendJson(ctx.res, 200, found);
}

async function replaceDeployment(ctx: RequestContext, store: ControlPlaneStore, namespace: string, name: string): Promise<void> {
  if (store.deployment(namespace, name) === undefined) return deploymentNotFound(ctx, namespace, name);
  const body = await parseBody(ctx, deploymentBody);
  if (body === undefined) return;
  if (body.name !== name) return validationError(ctx, 'the name in the body must match the path', [{ field: 'name', message: `expected "${name}"` }]);
  if (!modelExists(ctx, store, body.model)) return;
  const { name: _name, ...spec } = body;
  sendJson(ctx.res, 200, store.putDeployment(namespace, name, spec));
}

async function patchDeployment(ctx: RequestContext, store: ControlPlaneStore, namespace: string, name: string): Promise<void> {
  const existing = store.deployment(namespace, name);
  if (existing === undefined) return deploymentNotFound(ctx, namespace, name);
  const body = await parseBody(ctx, deploymentPatch, 'PATCH may change only replicas, env, resources and endpoint');
  if (body === undefined) return;
  const spec: DeploymentSpec = {
    model: existing.model,
    compute: existing.compute,
    workloadType: existing.workloadType,
    runtime: existing.runtime,
    port: existing.port,
    replicas: body.replicas ?? existing.replicas,
    ...((body.env ?? existing.env) ? { env: body.env ?? existing.env } : {}),
    ...((body.resources ?? existing.resources) ? { resources: body.resources ?? existing.resources } : {}),
    ...((body.endpoint ?? existing.endpoint) ? { endpoint: body.endpoint ?? existing.endpoint } : {}),
  };
  sendJson(ctx.res, 200, store.putDeployment(namespace, name, spec));
}

function deleteDeployment(ctx: RequestContext, store: ControlPlaneStore, namespace: string, name: string): void {
  if (!store.deleteDeployment(namespace, name)) return deploymentNotFound(ctx, namespace, name);
  ctx.res.writeHead(204).end();
}

function customModel(body: z.infer<typeof customModelBody>): Omit<ModelRecord, 'createdAt' | 'updatedAt'> {
  return {
    name: body.name,
    displayName: body.displayName ?? body.name,
    source: { type: 'custom', registry: body.source.registry, ...(body.source.path !== undefined ? { path: body.source.path } : {}) },
    task: body.task ?? 'chat-completion',
    publisher: body.publisher ?? 'custom',
    compute: body.compute ?? ['cpu'],
    version: body.version ?? '1',
  };
}

/** The referenced model must exist where the reference says (ref: catalog or custom). */
function modelExists(ctx: RequestContext, store: ControlPlaneStore, model: DeploymentSpec['model']): boolean {
  const found =
    model.catalog !== undefined
      ? store.catalogModel(model.catalog)
      : model.custom !== undefined
        ? store.customModel(model.custom)
        : store.model(model.ref ?? '');
  if (found !== undefined) return true;
  const [field, value] =
    model.catalog !== undefined
      ? ['model.catalog', model.catalog]
      : model.custom !== undefined
        ? ['model.custom', model.custom]
        : ['model.ref', model.ref ?? ''];
  validationError(ctx, `model "${value}" does not exist`, [{ field, message: `no model named "${value}"` }]);
  return false;
}

async function parseBody<T extends z.ZodType>(
  ctx: RequestContext,
  schema: T,
  message = 'the request body is invalid',
): Promise<z.infer<T> | undefined> {
  const body = await readJson(ctx.req);
  if (!body.ok) {
    if (body.status === 413) sendControlError(ctx.res, 413, 'PayloadTooLarge', body.message);
    else validationError(ctx, body.message, [{ field: '(body)', message: body.message }]);
    return undefined;
  }
  const parsed = schema.safeParse(body.value);
  if (!parsed.success) {
    validationError(ctx, message, fieldErrors(parsed.error));
    return undefined;
  }
  return parsed.data;
}

function validationError(ctx: RequestContext, message: string, errors: Array<{ field: string; message: string }>): void {
  sendControlError(ctx.res, 400, 'ValidationError', message, { errors });
}

function notFound(ctx: RequestContext, resource: string, message: string, details: Record<string, unknown>): void {
  sendControlError(ctx.res, 404, 'NotFound', message, { resource, ...details });
}

function deploymentNotFound(ctx: RequestContext, namespace: string, name: string): void {
  notFound(ctx, 'deployment', `deployment "${name}" not found in namespace "${namespace}"`, { namespace, name });
}

function invalidName(ctx: RequestContext, field: string, value: string): void {
  validationError(ctx, `invalid ${field} "${value}"`, [{ field, message: 'must be a DNS label: lower-case letters, digits and "-" (at most 63)' }]);
}
