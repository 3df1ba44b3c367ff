import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startSampleBackend, type SampleBackend } from '../../src/offline/sample-backend/server.js';

let backend: SampleBackend;

beforeEach(async () => {
  backend = await startSampleBackend({ port: 0, tokenRate: 0 });
});

afterEach(async () => {
  await backend.close();
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

async function call(method: Method, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await request(`${backend.url}${path}`, {
    method,
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

const customModel = {
  name: 'my-phi',
  source: { type: 'custom', registry: 'myregistry.azurecr.io', path: 'models/my-phi:1' },
  task: 'chat-completion',
};
const deployment = { name: 'chat', model: { catalog: 'phi-4-mini' }, compute: 'cpu', replicas: 2 };

describe('models', () => {
  it('lists the catalog with limit/offset and total/count/hasMore', async () => {
    const page1 = await call('GET', '/api/v1/models?limit=2');
    expect(page1).toMatchObject({ status: 200, json: { total: 3, count: 2, hasMore: true, offset: 0, limit: 2 } });
    const page2 = await call('GET', '/api/v1/models?limit=2&offset=2');
    expect(page2).toMatchObject({ status: 200, json: { total: 3, count: 1, hasMore: false, models: [{ name: 'all-minilm-l6-v2' }] } });
    expect(await call('GET', '/api/v1/models?task=embeddings')).toMatchObject({ json: { total: 1, models: [{ name: 'all-minilm-l6-v2' }] } });
    expect(await call('GET', '/api/v1/models?limit=0')).toMatchObject({
      status: 400,
      json: { error: 'ValidationError', details: { errors: [{ field: 'limit' }] } },
    });
    expect(await call('GET', '/api/v1/models?limit=101')).toMatchObject({ status: 400, json: { error: 'ValidationError' } });
  });

  it('gets a catalog model, 404 NotFound otherwise', async () => {
    expect(await call('GET', '/api/v1/models/foundry-local/phi-4-mini')).toMatchObject({
      status: 200,
      json: { name: 'phi-4-mini', source: { type: 'foundry-local' } },
    });
    expect(await call('GET', '/api/v1/models/foundry-local/nope')).toEqual({
      status: 404,
      json: {
        error: 'NotFound',
        message: 'no foundry-local model named "nope"',
        details: { resource: 'model', source: 'foundry-local', name: 'nope' },
      },
    });
  });

  it('creates, replaces and deletes a custom model', async () => {
    const created = await call('POST', '/api/v1/models', customModel);
    expect(created).toMatchObject({
      status: 201,
      json: { name: 'my-phi', source: { type: 'custom', registry: 'myregistry.azurecr.io' }, publisher: 'custom' },
    });
    expect(await call('GET', '/api/v1/models/custom/my-phi')).toMatchObject({ status: 200, json: { name: 'my-phi' } });
    expect(await call('GET', '/api/v1/models?source=custom')).toMatchObject({ json: { total: 1, models: [{ name: 'my-phi' }] } });
    // The data plane serves it too.
    expect((await call('GET', '/v1/models')).json).toMatchObject({
      data: expect.arrayContaining([{ id: 'my-phi', object: 'model', created: expect.any(Number), owned_by: 'custom' }]),
    });
    expect(await call('POST', '/api/v1/models', customModel)).toMatchObject({
      status: 409,
      json: { error: 'Conflict', details: { name: 'my-phi' } },
    });
    const replaced = await call('PUT', '/api/v1/models/custom/my-phi', { ...customModel, publisher: 'Contoso' });
    expect(replaced).toMatchObject({ status: 200, json: { publisher: 'Contoso' } });
    expect(await call('DELETE', '/api/v1/models/custom/my-phi')).toEqual({ status: 204, json: undefined });
    expect(await call('DELETE', '/api/v1/models/custom/my-phi')).toMatchObject({ status: 404, json: { error: 'NotFound' } });
    expect(await call('PUT', '/api/v1/models/custom/my-phi', customModel)).toMatchObject({ status: 404, json: { error: 'NotFound' } });
  });

  it('validates custom models: only custom sources, a safe registry, a valid name', async () => {
    const cases: Array<[unknown, string]> = [
      [{ ...customModel, source: { type: 'foundry-local', registry: 'x.io' } }, 'source.type'],
      [{ ...customModel, source: { type: 'custom', registry: '127.0.0.1:5000' } }, 'source.registry'],
      [{ ...customModel, source: { type: 'custom', registry: 'localhost' } }, 'source.registry'],
      [{ ...customModel, source: { type: 'custom', registry: 'https://evil.example/x' } }, 'source.registry'],
      [{ ...customModel, name: 'Bad Name' }, 'name'],
      [{ ...customModel, unexpected: 1 }, '(body)'],
      ['{oops', '(body)'],
    ];
    for (const [body, field] of cases) {
      const res = await call('POST', '/api/v1/models', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json).toMatchObject({
        error: 'ValidationError',
        message: expect.any(String),
        details: { errors: expect.arrayContaining([expect.objectContaining({ field })]) },
      });
    }
    expect(await call('POST', '/api/v1/models', { ...customModel, name: 'phi-4-mini' })).toMatchObject({ status: 409, json: { error: 'Conflict' } });
  });
});

describe('deployments', () => {
  it('creates, reads, lists, patches, replaces and deletes a namespaced deployment', async () => {
    const created = await call('POST', '/api/v1/namespaces/team-a/deployments', deployment);
    expect(created).toMatchObject({
      status: 201,
      json: {
        name: 'chat',
        namespace: 'team-a',
        model: { catalog: 'phi-4-mini' },
        compute: 'cpu',
        workloadType: 'generative',
        replicas: 2,
        port: 5000,
        status: { state: 'Running', readyReplicas: 2 },
      },
    });
    expect(await call('GET', '/api/v1/namespaces/team-a/deployments/chat')).toMatchObject({ status: 200, json: { name: 'chat' } });
    expect(await call('GET', '/api/v1/namespaces/team-a/deployments')).toMatchObject({
      status: 200,
      json: { count: 1, deployments: [{ name: 'chat' }], continueToken: null },
    });
    expect(await call('POST', '/api/v1/namespaces/team-a/deployments', deployment)).toMatchObject({
      status: 409,
      json: { error: 'Conflict', details: { namespace: 'team-a', name: 'chat' } },
    });

    const patched = await call('PATCH', '/api/v1/namespaces/team-a/deployments/chat', { replicas: 0, env: { LOG_LEVEL: 'debug' } });
    expect(patched).toMatchObject({
      status: 200,
      json: { replicas: 0, env: { LOG_LEVEL: 'debug' }, status: { state: 'Pending' }, model: { catalog: 'phi-4-mini' } },
    });
    expect(await call('PATCH', '/api/v1/namespaces/team-a/deployments/chat', { compute: 'gpu' })).toMatchObject({
      status: 400,
      json: { error: 'ValidationError', message: 'PATCH may change only replicas, env, resources and endpoint' },
    });

    const replaced = await call('PUT', '/api/v1/namespaces/team-a/deployments/chat', {
      ...deployment,
      compute: 'gpu',
      model: { ref: 'qwen2.5-0.5b' },
    });
    expect(replaced).toMatchObject({ status: 200, json: { compute: 'gpu', model: { ref: 'qwen2.5-0.5b' } } });
    expect(await call('PUT', '/api/v1/namespaces/team-a/deployments/chat', { ...deployment, name: 'other' })).toMatchObject({
      status: 400,
      json: { error: 'ValidationError' },
    });

    expect(await call('DELETE', '/api/v1/namespaces/team-a/deployments/chat')).toEqual({ status: 204, json: undefined });
    expect(await call('GET', '/api/v1/namespaces/team-a/deployments/chat')).toEqual({
      status: 404,
      json: {
        error: 'NotFound',
        message: 'deployment "chat" not found in namespace "team-a"',
        details: { resource: 'deployment', namespace: 'team-a', name: 'chat' },
      },
    });
    expect(await call('DELETE', '/api/v1/namespaces/team-a/deployments/chat')).toMatchObject({ status: 404, json: { error: 'NotFound' } });
  });

  it('pages all deployments with limit and continue', async () => {
    for (const [ns, name] of [
      ['b', 'one'],
      ['a', 'two'],
      ['a', 'one'],
    ] as const) {
      expect((await call('POST', `/api/v1/namespaces/${ns}/deployments`, { ...deployment, name })).status).toBe(201);
    }
    const first = (await call('GET', '/api/v1/deployments?limit=2')).json as {
      deployments: Array<{ namespace: string; name: string }>;
      continueToken: string;
    };
    expect(first.deployments.map((d) => `${d.namespace}/${d.name}`)).toEqual(['a/one', 'a/two']);
    const second = (await call('GET', `/api/v1/deployments?limit=2&continue=${first.continueToken}`)).json as typeof first;
    expect(second.deployments.map((d) => `${d.namespace}/${d.name}`)).toEqual(['b/one']);
    expect(second.continueToken).toBeNull();
  });

  it('validates deployments and the model they reference', async () => {
    const cases: Array<[unknown, string]> = [
      [{ ...deployment, name: 'Chat_1' }, 'name'],
      [{ ...deployment, model: {} }, 'model'],
      [{ ...deployment, model: { catalog: 'phi-4-mini', custom: 'x' } }, 'model'],
      [{ ...deployment, model: { catalog: 'missing' } }, 'model.catalog'],
      [{ ...deployment, replicas: -1 }, 'replicas'],
      [{ ...deployment, compute: 'tpu' }, 'compute'],
    ];
    for (const [body, field] of cases) {
      const res = await call('POST', '/api/v1/namespaces/team-a/deployments', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json).toMatchObject({ error: 'ValidationError', details: { errors: expect.arrayContaining([expect.objectContaining({ field })]) } });
    }
    expect(await call('GET', '/api/v1/namespaces/Bad_NS/deployments')).toMatchObject({
      status: 400,
      json: { error: 'ValidationError', details: { errors: [{ field: 'namespace' }] } },
    });
  });

  it('refuses to delete a custom model a deployment uses', async () => {
    await call('POST', '/api/v1/models', customModel);
    expect((await call('POST', '/api/v1/namespaces/team-a/deployments', { ...deployment, model: { custom: 'my-phi' } })).status).toBe(201);
    expect(await call('DELETE', '/api/v1/models/custom/my-phi')).toMatchObject({
      status: 409,
      json: { error: 'Conflict', details: { deployments: ['team-a/chat'] } },
    });
  });

  it('answers unknown control-plane paths and methods in the control-plane error shape', async () => {
    expect(await call('GET', '/api/v1/nothing')).toMatchObject({ status: 404, json: { error: 'NotFound' } });
    expect(await call('DELETE', '/api/v1/deployments')).toMatchObject({
      status: 405,
      json: { error: 'MethodNotAllowed', details: { allow: ['GET'] } },
    });
  });
});
