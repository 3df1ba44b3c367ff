/**
 * The manifests cannot drift from the flags: for every example in deploy/, the foundry-auth
 * container's arguments and environment (ConfigMap, Secret references, mounted files), with URLs
 * swapped for loopback ones (test IdP, ARM fixture, recording upstream) and the variables the
 * workload identity webhook injects, start the real `serve`, which then serves a request.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArmFixture, ROLES } from '../fixtures/arm.js';
import { TestIdp, TEST_CLIENT_ID, TEST_TENANT_ID, TEST_USER_OID } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { startServe } from '../e2e/harness.js';
import {
  examples,
  exampleArgs,
  find,
  foundryAuthContainer,
  parseDocuments,
  podTemplates,
  renderCli,
  type K8sObject,
  type PodSpecLike,
} from './helpers.js';

const MODEL_KEY = 'fndry-pk-0d15ea5e0d15ea5e0d15ea5e0d15ea5e';

let idp: TestIdp;
let arm: ArmFixture;
let up: Upstream;

beforeAll(async () => {
  idp = await TestIdp.start();
  arm = await ArmFixture.start();
  up = await startUpstream();
});

afterAll(async () => {
  await up?.close();
  await arm?.close();
  await idp?.close();
});

/** The container's environment as the kubelet would build it, with each mounted file written under `root`. */
function podEnvironment(objects: readonly K8sObject[], spec: PodSpecLike, root: string): Record<string, string> {
  const container = foundryAuthContainer(spec);
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    Object.assign(env, (find(objects, 'ConfigMap', source.configMapRef!.name) as unknown as { data: Record<string, string> }).data);
  }
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else throw new Error(`${variable.name} comes from a Secret the examples do not use`);
  }
  // Mounted files: a Secret holds the model's key; a ConfigMap's keys are files.
  const moved = new Map<string, string>();
  for (const mount of container.volumeMounts ?? []) {
    const volume = spec.volumes?.find((v) => v.name === mount.name) as
      { secret?: { items: { key: string; path: string }[] }; configMap?: { name: string } } | undefined;
    const target = join(root, mount.mountPath);
    if (volume?.secret) for (const item of volume.secret.items) write(join(target, item.path), `${MODEL_KEY}\n`);
    if (volume?.configMap)
      for (const [key, text] of Object.entries(
        (find(objects, 'ConfigMap', volume.configMap.name) as unknown as { data: Record<string, string> }).data,
      ))
        write(join(target, key), text);
    moved.set(mount.mountPath, target);
  }
  for (const [name, value] of Object.entries(env)) {
    for (const [from, to] of moved) if (value.startsWith(`${from}/`)) env[name] = to + value.slice(from.length);
  }
  return env;
}

function write(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

describe("each rendered Deployment's serve settings start the real serve, which serves a request", () => {
  it.each(examples().map((e) => [e.file, e] as const))('%s', async (_file, example) => {
    const res = await renderCli(exampleArgs(example));
    expect(res.code, res.stderr).toBe(0);
    const objects = parseDocuments(res.stdout);
    const spec = podTemplates(objects)[0]!.spec;
    expect(foundryAuthContainer(spec).args).toEqual(['serve']);
    const root = mkdtempSync(join(tmpdir(), 'fa-pod-'));
    const env = podEnvironment(objects, spec, root);

    // Loopback stand-ins for every URL, and the test IdP's tenant and app.
    const scope = env['FOUNDRY_AUTH_RBAC_SCOPE']!;
    env['FOUNDRY_AUTH_AUTHORITY'] = idp.authority;
    env['FOUNDRY_AUTH_ARM_ENDPOINT'] = arm.url;
    env['FOUNDRY_AUTH_MSI_ENDPOINT'] = arm.msiEndpoint;
    env['FOUNDRY_AUTH_TENANT_ID'] = TEST_TENANT_ID;
    env['FOUNDRY_AUTH_CLIENT_ID'] = TEST_CLIENT_ID;
    if (env['FOUNDRY_AUTH_UPSTREAM'] !== undefined) env['FOUNDRY_AUTH_UPSTREAM'] = up.url;
    if (env['FOUNDRY_AUTH_TRUSTED_PROXIES'] !== undefined) env['FOUNDRY_AUTH_TRUSTED_PROXIES'] = '127.0.0.1';
    // What the workload identity webhook injects into a pod labelled azure.workload.identity/use.
    const serviceAccount = find(objects, 'ServiceAccount') as unknown as { metadata: { annotations?: Record<string, string> } };
    const managedIdentity = serviceAccount.metadata.annotations?.['azure.workload.identity/client-id'];
    expect(managedIdentity).toBeDefined();
    const tokenFile = join(root, 'azure-identity-token');
    writeFileSync(tokenFile, 'projected-service-account-token');
    arm.clients.set(managedIdentity!, { federated: true });
    arm.assign(TEST_USER_OID, ROLES.openAiUser, scope);
    const webhook = {
      AZURE_CLIENT_ID: managedIdentity!,
      AZURE_TENANT_ID: TEST_TENANT_ID,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      AZURE_AUTHORITY_HOST: `${arm.url}/`,
    };

    const sidecar = await startServe({}, { env: { ...env, ...webhook } });
    try {
      await sidecar.ready();
      const before = up.requests.length;
      const token = await idp.mint();
      // A proxied request, which is also an nginx-profile check request for forward-auth mode.
      const answer = await request(`${sidecar.url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'x-original-method': 'POST',
          'x-original-uri': '/v1/chat/completions',
        },
        body: '{"model":"phi-4"}',
      });
      await answer.body.text();
      expect(answer.statusCode, sidecar.stderr).toBe(200);
      expect(arm.requestsTo('token').length).toBeGreaterThan(0);
      if (env['FOUNDRY_AUTH_UPSTREAM'] !== undefined) {
        expect(up.requests.length).toBe(before + 1);
        const expectedKey = env['FOUNDRY_AUTH_UPSTREAM_API_KEY_FILE'] !== undefined ? [MODEL_KEY] : [];
        expect(up.requests.at(-1)!.header('api-key')).toEqual(expectedKey);
      }
    } finally {
      await sidecar.stop('SIGKILL');
    }
  });
});
