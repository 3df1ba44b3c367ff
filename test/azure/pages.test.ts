import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AzureApiError } from '../../src/azure/api-call.js';
import { ArmManagementClient } from '../../src/azure/arm-manage.js';
import { GraphClient } from '../../src/azure/graph.js';
import type { TokenProvider } from '../../src/azure/token.js';

/** The list paging of the setup clients (Graph `@odata.nextLink`, ARM `nextLink`) against a stand-in that answers each page by path. */

const PRINCIPAL = 'a1b2c3d4-0000-4000-8000-000000000001';
const SCOPE = '/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg';
const tokens: TokenProvider = {
  description: 'test',
  invalidate: () => undefined,
  getToken: async () => ({ token: 'caller-token', expiresOnMs: Date.now() + 3_600_000 }),
};

let server: Server;
let url: string;
let pages: Map<string, unknown>;
let seen: Array<{ path: string; authorization: string | undefined }>;

beforeEach(async () => {
  pages = new Map();
  seen = [];
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    seen.push({ path, authorization: req.headers.authorization });
    const page = pages.get(path);
    res
      .writeHead(page === undefined ? 404 : 200, { 'content-type': 'application/json' })
      .end(JSON.stringify(page ?? { error: { code: 'NotFound' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const app = (n: number) => ({ id: `object-${n}`, appId: `0000000${n}-0000-4000-8000-000000000000`, displayName: 'same' });
const graph = () => new GraphClient({ endpoint: url, tokens, timeoutMs: 5_000 });

describe('Graph @odata.nextLink', () => {
  it('follows absolute and relative links on the same origin, with the token', async () => {
    pages.set('/v1.0/applications', { value: [app(1)], '@odata.nextLink': `${url}/v1.0/applications/page2` });
    pages.set('/v1.0/applications/page2', { value: [app(2)], '@odata.nextLink': '/v1.0/applications/page3' });
    pages.set('/v1.0/applications/page3', { value: [app(3)] });
    const found = await graph().applicationsNamed('same');
    expect(found.map((a) => a.id)).toEqual(['object-1', 'object-2', 'object-3']);
    expect(seen.map((s) => s.path)).toEqual(['/v1.0/applications', '/v1.0/applications/page2', '/v1.0/applications/page3']);
    expect(seen.every((s) => s.authorization === 'Bearer caller-token')).toBe(true);
  });

  it('refuses a link to another origin or one that is not a URL, as a bad response', async () => {
    pages.set('/v1.0/applications', { value: [app(1)], '@odata.nextLink': 'http://127.0.0.2:9/v1.0/applications/page2' });
    const elsewhere = await graph()
      .applicationsNamed('same')
      .catch((e: unknown) => e);
    expect(elsewhere).toBeInstanceOf(AzureApiError);
    expect((elsewhere as AzureApiError).failure).toEqual({
      kind: 'bad_response',
      detail: '@odata.nextLink points to another origin (http://127.0.0.2:9); refused',
    });

    pages.set('/v1.0/applications', { value: [app(1)], '@odata.nextLink': 'http://[not-a-host/page2' });
    const broken = await graph()
      .applicationsNamed('same')
      .catch((e: unknown) => e);
    expect(broken).toBeInstanceOf(AzureApiError);
    expect((broken as AzureApiError).failure).toEqual({ kind: 'bad_response', detail: '@odata.nextLink is not a URL' });
    expect(seen.filter((s) => s.path !== '/v1.0/applications')).toEqual([]);
  });

  it('gives up on a chain that does not end', async () => {
    pages.set('/v1.0/applications', { value: [app(1)], '@odata.nextLink': '/v1.0/applications' });
    const err = await graph()
      .applicationsNamed('same')
      .catch((e: unknown) => e);
    expect((err as AzureApiError).failure).toEqual({ kind: 'bad_response', detail: '@odata.nextLink did not end after 100 pages' });
    expect(seen).toHaveLength(100);
  });
});

describe('ARM nextLink (setup and grant)', () => {
  const assignment = (n: number) => ({
    id: `${SCOPE}/providers/Microsoft.Authorization/roleAssignments/${n}`,
    name: `${n}`,
    properties: {
      roleDefinitionId: '/providers/Microsoft.Authorization/roleDefinitions/5e0bd9bd-7b93-4f28-af87-19fc36ad61bd',
      principalId: PRINCIPAL,
      scope: SCOPE,
    },
  });
  const listPath = `${SCOPE}/providers/Microsoft.Authorization/roleAssignments`;

  it('follows a relative link and refuses one to another origin', async () => {
    pages.set(listPath, { value: [assignment(1)], nextLink: `${listPath}/page2` });
    pages.set(`${listPath}/page2`, { value: [assignment(2)] });
    const arm = new ArmManagementClient({ endpoint: url, tokens, timeoutMs: 5_000 });
    expect((await arm.roleAssignmentsOf(SCOPE, PRINCIPAL)).map((a) => a.name)).toEqual(['1', '2']);

    pages.set(`${listPath}/page2`, { value: [assignment(2)], nextLink: 'https://management.example/next' });
    const err = await arm.roleAssignmentsOf(SCOPE, PRINCIPAL).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AzureApiError);
    expect((err as AzureApiError).api).toBe('arm');
    expect((err as AzureApiError).failure).toEqual({
      kind: 'bad_response',
      detail: 'nextLink points to another origin (https://management.example); refused',
    });
  });
});
