import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ROUTES, RouteTable, loadRoutesFile } from '../../src/pipeline/routes.js';

const table = new RouteTable(DEFAULT_ROUTES);
const OPENAI = 'Microsoft.CognitiveServices/accounts/OpenAI';
const CS = 'Microsoft.CognitiveServices/accounts';

describe('default routes (SPEC section 5)', () => {
  it.each([
    ['POST', '/v1/chat/completions', 'data', `${OPENAI}/deployments/chat/completions/action`],
    ['POST', '/v1/completions', 'data', `${OPENAI}/deployments/completions/action`],
    ['POST', '/v1/embeddings', 'data', `${OPENAI}/deployments/embeddings/action`],
    ['POST', '/v1/audio/transcriptions', 'data', `${OPENAI}/deployments/audio/action`],
    ['POST', '/v1/audio/translations', 'data', `${OPENAI}/deployments/audio/action`],
    ['GET', '/v1/models', 'data', `${OPENAI}/models/read`],
    ['GET', '/v1/models/phi-4', 'data', `${OPENAI}/models/read`],
    ['GET', '/api/v1/models', 'control', `${CS}/deployments/read`],
    ['HEAD', '/api/v1/namespaces/ns/deployments/d', 'control', `${CS}/deployments/read`],
    ['GET', '/foundry/list', 'control', `${CS}/deployments/read`],
    ['GET', '/openai/models', 'control', `${CS}/deployments/read`],
    ['GET', '/openai/loadedmodels', 'control', `${CS}/deployments/read`],
    ['GET', '/openai/status', 'control', `${CS}/deployments/read`],
    ['POST', '/api/v1/namespaces/ns/deployments', 'control', `${CS}/deployments/write`],
    ['PUT', '/api/v1/models/custom/m', 'control', `${CS}/deployments/write`],
    ['PATCH', '/api/v1/namespaces/ns/deployments/d', 'control', `${CS}/deployments/write`],
    ['GET', '/openai/load/phi-4', 'control', `${CS}/deployments/write`],
    ['GET', '/openai/unload/phi-4', 'control', `${CS}/deployments/write`],
    ['GET', '/openai/unloadall', 'control', `${CS}/deployments/write`],
    ['POST', '/openai/download', 'control', `${CS}/deployments/write`],
    ['POST', '/openai/register', 'control', `${CS}/deployments/write`],
    ['DELETE', '/api/v1/namespaces/ns/deployments/d', 'control', `${CS}/deployments/delete`],
  ])('%s %s -> %s plane, %s', (method, path, plane, action) => {
    const found = table.lookup(method, path);
    expect(found.kind).toBe('match');
    if (found.kind !== 'match') return;
    expect(found.route.plane).toBe(plane);
    expect(found.route.action).toBe(action);
    expect(found.route.dataAction).toBe(plane === 'data');
  });

  it.each([
    ['GET', '/admin'],
    ['GET', '/v1/load_lora_adapter'],
    ['GET', '/metrics'],
    ['GET', '/api/v1'],
    ['GET', '/v1/models/a/b'],
    ['GET', '/V1/models'],
    ['GET', '/openai/getgpudevice'],
    ['POST', '/v1/chat/completions/tokenizer/encode/count'],
  ])('%s %s has no route', (method, path) => {
    expect(table.lookup(method, path)).toEqual({ kind: 'not_found' });
  });

  it.each([
    ['GET', '/v1/chat/completions', ['POST']],
    ['DELETE', '/v1/models', ['GET']],
    ['POST', '/v1/models/x', ['GET']],
    ['OPTIONS', '/api/v1/models', ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT']],
    ['get', '/v1/models', ['GET']],
  ])('%s %s is 405 with Allow %j', (method, path, allow) => {
    expect(table.lookup(method, path)).toEqual({ kind: 'method_not_allowed', allow });
  });
});

describe('--routes-file', () => {
  function write(body: string, ext = 'yaml'): string {
    const file = join(mkdtempSync(join(tmpdir(), 'fa-routes-')), `routes.${ext}`);
    writeFileSync(file, body);
    return file;
  }

  it('extends the defaults, and a file route wins for the same method and path', () => {
    const file = write(`routes:
  - methods: [POST]
    path: /v1/responses
    plane: data
    action: ${OPENAI}/responses/action
  - methods: [GET]
    path: /v1/models
    plane: control
    action: ${CS}/deployments/read
`);
    const loaded = loadRoutesFile(file);
    if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
    const t = new RouteTable(loaded.routes);
    expect(t.lookup('POST', '/v1/responses')).toMatchObject({ kind: 'match', route: { plane: 'data' } });
    expect(t.lookup('GET', '/v1/models')).toMatchObject({ kind: 'match', route: { plane: 'control' } });
    expect(t.lookup('POST', '/v1/chat/completions')).toMatchObject({ kind: 'match' });
  });

  it('replaces the defaults with mode: replace', () => {
    const file = write(
      JSON.stringify({
        mode: 'replace',
        routes: [{ methods: ['POST'], path: '/score/{model}', plane: 'data', action: `${OPENAI}/deployments/completions/action` }],
      }),
      'json',
    );
    const loaded = loadRoutesFile(file);
    if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
    const t = new RouteTable(loaded.routes);
    expect(t.lookup('POST', '/score/m1')).toMatchObject({ kind: 'match' });
    expect(t.lookup('POST', '/v1/chat/completions')).toEqual({ kind: 'not_found' });
  });

  it('names the file and entry of every invalid route', () => {
    const file = write(`routes:
  - methods: [post]
    path: /v1/../admin
    plane: both
    action: "x"
`);
    const loaded = loadRoutesFile(file);
    expect(loaded.ok).toBe(false);
    if (loaded.ok) return;
    expect(loaded.errors.some((e) => e.startsWith(`${file}: routes.0.methods.0:`))).toBe(true);
    expect(loaded.errors.some((e) => e.startsWith(`${file}: routes.0.path:`))).toBe(true);
    expect(loaded.errors.some((e) => e.startsWith(`${file}: routes.0.plane:`))).toBe(true);
    expect(loaded.errors.some((e) => e.startsWith(`${file}: routes.0.action:`))).toBe(true);
  });
});
