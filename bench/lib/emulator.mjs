// The emulator (`foundry-auth emulator`, its own process) as the ARM the sidecar asks: the
// cluster's identity may read role assignments and deny assignments at the cluster, and every
// benchmark principal is a member of one group holding Cognitive Services OpenAI User there.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir, CLI, startProcess, waitFor } from './proc.mjs';

export const SEED = {
  tenantId: 'c0ffee00-0000-4000-8000-000000000001',
  subscriptionId: 'c0ffee00-0000-4000-8000-000000000002',
  clusterPrincipalId: 'c0ffee00-0000-4000-8000-00000000000c',
};
export const CLUSTER_SCOPE = `/subscriptions/${SEED.subscriptionId}/resourceGroups/foundry-local-rg/providers/Microsoft.Kubernetes/connectedClusters/arc-cluster`;

export async function startArmEmulator(memberOids) {
  const readyFile = join(benchDir(), 'emulator.json');
  const child = startProcess(
    process.execPath,
    [CLI, 'emulator', '--https-port', '0', '--http-port', '0', '--ready-file', readyFile, '--log-level', 'warn'],
    {
      logFile: join(benchDir(), 'emulator.log'),
    },
  );
  const endpoints = await waitFor(
    'emulator',
    () => {
      if (child.exitCode !== null) throw new Error(`the emulator exited with ${child.exitCode}; see ${join(benchDir(), 'emulator.log')}`);
      try {
        return JSON.parse(readFileSync(readyFile, 'utf8'));
      } catch {
        return undefined;
      }
    },
    30_000,
  );
  const admin = async (method, path, body) => {
    const res = await fetch(`${endpoints.admin}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`emulator ${method} ${path}: ${res.status} ${text}`);
    return text === '' ? undefined : JSON.parse(text);
  };
  const assign = (principalId, roleName, principalType) =>
    admin('POST', '/role-assignments', { scope: CLUSTER_SCOPE, roleName, principalId, principalType });
  // Setup step 7, plus Reader so deny assignments are read as the sidecar's warning recommends.
  await assign(SEED.clusterPrincipalId, 'Cognitive Services OpenAI User', 'ServicePrincipal');
  await assign(SEED.clusterPrincipalId, 'Reader', 'ServicePrincipal');
  const group = await admin('POST', '/groups', { displayName: 'foundry-auth bench principals', members: memberOids });
  await assign(group.id, 'Cognitive Services OpenAI User', 'Group');

  return {
    endpoints,
    child,
    pids: () => [child.pid],
    /** The sidecar flags that make it ask this emulator's ARM as the cluster's identity. */
    sidecarFlags: {
      'rbac-scope': CLUSTER_SCOPE,
      'arm-endpoint': endpoints.armHttp,
      identity: 'msi-adapter',
      'msi-endpoint': endpoints.msiHttp,
    },
    resetCounters: () => admin('DELETE', '/counters'),
    /** ARM calls since the last reset: total, and role-assignment / deny-assignment / role-definition reads. */
    async armCalls() {
      const snapshot = await admin('GET', '/counters');
      const arm = snapshot.routes.filter((r) => r.family === 'arm');
      const sum = (re) => arm.filter((r) => re.test(r.route)).reduce((n, r) => n + r.count, 0);
      return {
        total: arm.reduce((n, r) => n + r.count, 0),
        roleAssignments: sum(/roleassignments/i),
        denyAssignments: sum(/denyassignments/i),
        roleDefinitions: sum(/roledefinitions/i),
        routes: arm.map((r) => ({ route: `${r.method} ${r.route}`, count: r.count })),
      };
    },
    addFault: (fault) => admin('POST', '/faults', fault),
    clearFaults: () => admin('DELETE', '/faults'),
    stop: () => child.stop(),
  };
}
