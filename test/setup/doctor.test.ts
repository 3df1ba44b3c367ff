/**
 * `foundry-auth doctor` end to end: after setup every check passes; each setting the
 * documentation names is then broken the way someone in the portal would break it (through the
 * emulator's Graph and ARM), doctor names exactly that check, prints a fix, exits 1, and running
 * the printed command makes doctor pass again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor, type DoctorCheck } from '../../src/setup/doctor.js';
import { runSetup } from '../../src/setup/setup.js';
import { AZURE_CLI, CLUSTER, CLUSTER_PRINCIPAL, jsonOut, startSetupEmulator, type SetupEmulator } from './helpers.js';

let emu: SetupEmulator;
let clientId: string;
let objectId: string;

beforeAll(async () => {
  emu = await startSetupEmulator();
  const result = await runSetup({ appName: 'doctor-app', clusterId: CLUSTER }, emu.clients());
  clientId = result.clientId!;
  objectId = result.applicationObjectId!;
});

afterAll(async () => {
  await emu?.close();
});

interface App {
  api: {
    oauth2PermissionScopes: Array<Record<string, unknown>>;
    preAuthorizedApplications: Array<{ appId: string; delegatedPermissionIds: string[] }>;
  };
  appRoles: Array<Record<string, unknown>>;
}

async function app(): Promise<App> {
  return (await emu.application(clientId)) as unknown as App;
}

async function patch(body: unknown): Promise<void> {
  const r = await emu.graph('PATCH', `/applications/${objectId}`, body);
  if (r.status !== 204) throw new Error(r.text);
}

async function doctorLibrary(): Promise<readonly DoctorCheck[]> {
  return (await runDoctor({ clientId, clusterId: CLUSTER, authority: emu.endpoints.authority }, emu.clients())).checks;
}

const failing = (checks: readonly DoctorCheck[]): string[] => checks.filter((c) => c.status === 'fail').map((c) => c.name);

describe('doctor after setup', () => {
  it('passes every check (one warning: the minimal role cannot read deny assignments) and exits 0', async () => {
    const out = await emu.cli(['doctor', '--client-id', clientId, '--cluster-id', CLUSTER, ...emu.flags]);
    expect(out.code, out.stdout + out.stderr).toBe(0);
    for (const name of [
      'app_registration',
      'identifier_uri',
      'scope',
      'token_version',
      'app_role',
      'azure_cli_preauthorized',
      'service_principal',
      'cluster_identity',
    ]) {
      expect(out.stdout).toMatch(new RegExp(`^PASS  ${name} `, 'm'));
    }
    expect(out.stdout).toMatch(/^WARN {2}cluster_identity_role /m);
    expect(out.stdout).toContain('All checks pass (1 warning).');
  });
});

/** Each way to break a setting, and the one check that must name it. */
const BREAKS: Array<{ what: string; check: string; detail: string; breakIt: () => Promise<void> }> = [
  {
    what: 'token version back to null',
    check: 'token_version',
    detail: 'requestedAccessTokenVersion is null',
    breakIt: () => patch({ api: { requestedAccessTokenVersion: null } }),
  },
  {
    what: 'scope disabled',
    check: 'scope',
    detail: 'the scope is disabled',
    breakIt: async () => {
      const scopes = (await app()).api.oauth2PermissionScopes;
      await patch({ api: { oauth2PermissionScopes: scopes.map((s) => ({ ...s, isEnabled: false })) } });
    },
  },
  {
    what: 'scope removed',
    check: 'scope',
    detail: 'the app exposes no scope foundry_access',
    breakIt: async () => {
      const current = await app();
      // Graph requires an enabled scope to be disabled first, and no pre-authorization may point at a removed scope.
      await patch({ api: { oauth2PermissionScopes: current.api.oauth2PermissionScopes.map((s) => ({ ...s, isEnabled: false })) } });
      await patch({ api: { oauth2PermissionScopes: [], preAuthorizedApplications: [] } });
    },
  },
  {
    what: 'app role removed',
    check: 'app_role',
    detail: 'the app defines no app role FoundryInferenceAccess',
    breakIt: async () => {
      const roles = (await app()).appRoles;
      await patch({ appRoles: roles.map((r) => ({ ...r, isEnabled: false })) });
      await patch({ appRoles: [] });
    },
  },
  {
    what: 'Azure CLI pre-authorization removed',
    check: 'azure_cli_preauthorized',
    detail: `the Azure CLI (${AZURE_CLI}) is not a pre-authorized client`,
    breakIt: () => patch({ api: { preAuthorizedApplications: [] } }),
  },
  {
    what: "the Arc identity's role removed",
    check: 'cluster_identity_role',
    detail: 'the identity holds no role at or above the cluster',
    breakIt: async () => {
      const list = await emu.arm('GET', `${CLUSTER}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '${CLUSTER_PRINCIPAL}'`);
      for (const a of list.json['value'] as Array<{ id: string }>) {
        const r = await emu.arm('DELETE', a.id);
        if (r.status !== 200) throw new Error(r.text);
      }
    },
  },
];

describe.each(BREAKS)('$what', ({ check, detail, breakIt }) => {
  it(`doctor fails exactly ${check}, prints the fix, and the fix makes it pass again`, async () => {
    await breakIt();
    const out = await emu.cli(['doctor', '--client-id', clientId, '--cluster-id', CLUSTER, '--json', ...emu.flags]);
    expect(out.code, out.stderr).toBe(1);
    const doc = jsonOut(out);
    const checks = doc['checks'] as DoctorCheck[];
    expect(failing(checks)).toEqual([check]);
    const broken = checks.find((c) => c.name === check)!;
    expect(broken.detail).toContain(detail);
    expect(broken.fix).toMatch(/^foundry-auth setup --app-name doctor-app --client-id /);
    expect(broken.fixArgv).toBeDefined();
    expect(broken.alternative).toBeDefined();

    const fix = await emu.cli(broken.fixArgv!.slice(1));
    expect(fix.code, fix.stderr).toBe(0);
    expect(fix.stdout).toMatch(/^(created|updated) /m);
    expect(failing(await doctorLibrary())).toEqual([]);
  });
});

describe('what doctor shows a person', () => {
  it('names the failed check, what was found, the fix and the portal way; exit 1', async () => {
    await patch({ api: { requestedAccessTokenVersion: 1 } });
    const out = await emu.cli(['doctor', '--client-id', clientId, ...emu.flags]);
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(/^FAIL {2}token_version /m);
    expect(out.stdout).toContain('requestedAccessTokenVersion is 1: tokens are v1.0 and the sidecar rejects them');
    expect(out.stdout).toContain(
      `fix: foundry-auth setup --app-name doctor-app --client-id ${clientId} --authority ${emu.endpoints.authority} --graph-endpoint ${emu.endpoints.graph} --arm-endpoint ${emu.endpoints.arm}`,
    );
    expect(out.stdout).toContain('"accessTokenAcceptedVersion": 2');
    expect(out.stdout).toContain('1 check failed.');
    await runSetup({ appName: 'doctor-app', clientId }, emu.clients());
  });

  it('an unknown client ID: the app check fails and the others are skipped', async () => {
    const checks = (await runDoctor({ clientId: '0badc0de-0000-4000-8000-000000000000', authority: emu.endpoints.authority }, emu.clients())).checks;
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ['app_registration', 'fail'],
      ['identifier_uri', 'skip'],
      ['scope', 'skip'],
      ['token_version', 'skip'],
      ['app_role', 'skip'],
      ['azure_cli_preauthorized', 'skip'],
      ['service_principal', 'skip'],
    ]);
  });

  it('with a signing-in identity that may not read the directory: exit 1 with the code and what to do', async () => {
    // The cluster's Arc identity through the emulator's IMDS endpoint: --credential managed-identity.
    const out = await emu.cli([
      'doctor',
      '--client-id',
      clientId,
      '--credential',
      'managed-identity',
      '--msi-endpoint',
      emu.endpoints.msiHttp,
      ...emu.flags,
    ]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('Authorization_RequestDenied');
    expect(out.stderr).toContain('Directory.Read.All');
  });
});
