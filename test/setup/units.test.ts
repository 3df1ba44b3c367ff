/** The pure parts of setup/grant/doctor: flag validation, printed commands, deterministic names, plans, settings. */
import { describe, expect, it } from 'vitest';
import { clusterFlag, commonArgs, commonSettings, shellLine, UsageError } from '../../src/setup/command-line.js';
import { roleAssignmentName } from '../../src/setup/names.js';
import { serveSettings } from '../../src/setup/serve-settings.js';
import { planAppRole, planPreAuthorization, planScope } from '../../src/setup/setup.js';

const CLUSTER = '/subscriptions/c0ffee00-0000-4000-8000-000000000002/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/edge-1';

describe('flags', () => {
  it('endpoints: https, http only on loopback, no credentials or query; named in the error', () => {
    expect(commonSettings({ graphEndpoint: 'https://graph.microsoft.us/' }).graphEndpoint).toBe('https://graph.microsoft.us');
    expect(commonSettings({ armEndpoint: 'http://127.0.0.1:8444/arm' }).armEndpoint).toBe('http://127.0.0.1:8444/arm');
    expect(() => commonSettings({ graphEndpoint: 'http://graph.example.com' })).toThrow(
      /--graph-endpoint: http:\/\/ is allowed only for loopback hosts/,
    );
    expect(() => commonSettings({ authority: 'https://user:pw@login.example.com' })).toThrow(/--authority must not contain credentials/);
    expect(() => commonSettings({ armEndpoint: 'https://management.azure.com/?x=1' })).toThrow(/--arm-endpoint must not contain a query/);
    expect(() => commonSettings({ tenantId: 'contoso.com' })).toThrow(UsageError);
  });

  it('--cluster-id must be a connected cluster resource ID', () => {
    expect(clusterFlag(`${CLUSTER}/`)).toBe(CLUSTER);
    expect(() => clusterFlag('/subscriptions/c0ffee00-0000-4000-8000-000000000002/resourceGroups/rg')).toThrow(
      /--cluster-id must be the ARM resource ID of an Arc connected cluster/,
    );
    expect(() => clusterFlag(`${CLUSTER}/../../x`)).toThrow(UsageError);
  });

  it('printed commands carry only the non-default common flags, quoted for a POSIX shell', () => {
    const settings = commonSettings({
      tenantId: 'C0FFEE00-0000-4000-8000-000000000001',
      graphEndpoint: 'https://graph.microsoft.com',
      armEndpoint: 'https://management.usgovcloudapi.net',
      credential: 'environment',
    });
    expect(commonArgs(settings)).toEqual([
      '--tenant-id',
      'c0ffee00-0000-4000-8000-000000000001',
      '--arm-endpoint',
      'https://management.usgovcloudapi.net',
      '--credential',
      'environment',
    ]);
    expect(shellLine(['foundry-auth', 'setup', '--app-name', "Bob's app", '--x', 'a b'])).toBe(
      `foundry-auth setup --app-name 'Bob'\\''s app' --x 'a b'`,
    );
  });
});

describe('role assignment names', () => {
  it('are version-5 GUIDs, the same for the same scope (any case), principal and role, different otherwise', () => {
    const a = roleAssignmentName(CLUSTER, 'c0ffee00-0000-4000-8000-00000000000c', '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(roleAssignmentName(CLUSTER.toUpperCase(), 'C0FFEE00-0000-4000-8000-00000000000C', '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd')).toBe(a);
    expect(roleAssignmentName(CLUSTER, 'c0ffee00-0000-4000-8000-00000000000c', '25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68')).not.toBe(a);
  });
});

describe('plans', () => {
  it('an enabled scope that must change is disabled first; a disabled one is changed in one write', () => {
    const enabled = planScope([
      { id: 's1', value: 'foundry_access', type: 'User', isEnabled: true, adminConsentDisplayName: 'x', adminConsentDescription: 'y' },
    ]);
    expect(enabled.outcome).toBe('updated');
    expect(enabled.disableFirst).toEqual([
      { id: 's1', value: 'foundry_access', type: 'User', isEnabled: false, adminConsentDisplayName: 'x', adminConsentDescription: 'y' },
    ]);
    expect(enabled.list[0]).toMatchObject({ type: 'Admin', isEnabled: true });
    const disabled = planScope([
      { id: 's1', value: 'foundry_access', type: 'Admin', isEnabled: false, adminConsentDisplayName: 'x', adminConsentDescription: 'y' },
    ]);
    expect(disabled).toMatchObject({ outcome: 'updated', detail: 'enabled' });
    expect(disabled.disableFirst).toBeUndefined();
    expect(planScope(disabled.list).outcome).toBe('unchanged');
  });

  it('an app role and pre-authorization are added next to what exists', () => {
    const roles = planAppRole([{ id: 'r0', value: 'Other', allowedMemberTypes: ['User'], isEnabled: true }]);
    expect(roles.list.map((r) => r.value)).toEqual(['Other', 'FoundryInferenceAccess']);
    const pre = planPreAuthorization([{ appId: '04B07795-8DDB-461A-BBEE-02F9E1BF7B46', delegatedPermissionIds: ['other'] }], 's1');
    expect(pre).toEqual({ outcome: 'updated', list: [{ appId: '04B07795-8DDB-461A-BBEE-02F9E1BF7B46', delegatedPermissionIds: ['other', 's1'] }] });
  });
});

describe('serve settings', () => {
  it('defaults are left out; without a cluster the scope line is a comment', () => {
    const s = serveSettings({
      tenantId: 't',
      clientId: 'c',
      authority: 'https://login.microsoftonline.com/',
      armEndpoint: 'https://management.azure.com',
    });
    expect(s.env).toEqual(['FOUNDRY_AUTH_TENANT_ID=t', 'FOUNDRY_AUTH_CLIENT_ID=c', expect.stringMatching(/^# FOUNDRY_AUTH_RBAC_SCOPE=/)]);
    expect(s.configYaml).toBe('tenantId: t\nclientId: c\n');
  });
});
