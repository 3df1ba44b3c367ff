import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAuthorizer, createStaticAuthorizer } from '../../src/authz/authorizer.js';
import { parseRoleAssignmentsFile } from '../../src/authz/role-assignments-file.js';
import { StaticAccessSource, StaticFileError } from '../../src/authz/static.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { CLUSTER, RG, ROUTES, capturingLogger, oid, rbacConfig, tempDir, user } from './helpers.js';

const dir = tempDir();
afterAll(() => dir.cleanup());

const ME = oid(1);
const F = '/etc/foundry-auth/assignments.yaml';

function problemsOf(text: string, scope?: string): readonly string[] {
  const result = parseRoleAssignmentsFile(text, F, scope);
  if (result.ok) throw new Error('expected the file to be rejected');
  return result.problems;
}

describe('role assignments file: validation', () => {
  it('accepts the documented YAML format', () => {
    const text = `
scope: ${CLUSTER}
roleDefinitions:
  - id: ${oid(0xc1)}
    roleName: Chat Only
    permissions:
      - dataActions: [Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action]
groups:
  - id: ${oid(0xa1)}
    displayName: inference-users
    members: [${ME}]
roleAssignments:
  - principalId: ${oid(0xa1)}
    role: Cognitive Services OpenAI User
  - principalId: ${ME}
    role: Chat Only
    scope: ${RG}
  - principalId: ${oid(2)}
    role: Reader
    condition: "@Resource[x] StringEquals 'y'"
    conditionVersion: "2.0"
denyAssignments:
  - name: nobody-deletes
    principals: [Everyone]
    excludePrincipals: [${oid(3)}]
    doNotApplyToChildScopes: false
    permissions: [{ actions: ["*/delete"] }]
`;
    const result = parseRoleAssignmentsFile(text, F);
    expect(result.ok).toBe(true);
  });

  it('names the file, the entry and its line for an unknown role', () => {
    const problems = problemsOf(`scope: ${CLUSTER}
roleAssignments:
  - principalId: ${ME}
    role: Reader
  - principalId: ${ME}
    role: Cognitive Services OpenAI Usr
`);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${F}: roleAssignments\\[1\\]\\.role \\(line 6\\): unknown role "Cognitive Services OpenAI Usr"`));
  });

  it('rejects an unknown role definition GUID or ID', () => {
    const problems = problemsOf(JSON.stringify({ scope: CLUSTER, roleAssignments: [{ principalId: ME, role: oid(0xdead) }] }));
    expect(problems[0]).toContain('roleAssignments[0].role');
    expect(problems[0]).toContain('unknown role');
  });

  it('reports every problem, one line each', () => {
    const problems = problemsOf(`scope: ${CLUSTER}
roleAssignments:
  - principalId: not-a-guid
    role: Reader
  - principalId: ${ME}
    role: Reader
    scope: /subscriptions/x/resourceGroups/rg
  - principalId: ${ME}
denyAssignments:
  - name: d
    principals: [someone]
    permissions: []
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining('roleAssignments[0].principalId (line 3): must be a GUID'),
        expect.stringContaining('roleAssignments[1].scope (line 7): must be an ARM scope'),
        expect.stringContaining('roleAssignments[2].role'),
        expect.stringContaining('denyAssignments[0].principals[0] (line 11): must be a GUID or "Everyone"'),
        expect.stringContaining('denyAssignments[0].permissions (line 12): needs at least one permission block'),
      ]),
    );
    expect(problems.every((p) => p.startsWith(`${F}: `))).toBe(true);
  });

  it('rejects unknown keys, so a typo can never widen access silently', () => {
    const problems = problemsOf(`scope: ${CLUSTER}
roleDefinitions:
  - id: ${oid(0xc1)}
    roleName: Almost Everything
    permissions:
      - dataActions: ["*"]
        notDataAction: [Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action]
roleAsignments: []
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/roleDefinitions\[0\]\.permissions\[0\] \(line 6\): Unrecognized key: "notDataAction"/),
        expect.stringMatching(/Unrecognized key: "roleAsignments"/),
      ]),
    );
  });

  it('names the line and column of a YAML syntax error', () => {
    const problems = problemsOf(`scope: ${CLUSTER}\nroleAssignments:\n  - principalId: [unclosed\n`);
    expect(problems[0]).toMatch(new RegExp(`^${F}: line \\d+, column \\d+: `));
  });

  it('rejects duplicate keys', () => {
    const problems = problemsOf(`scope: ${CLUSTER}\nscope: ${RG}/providers/Microsoft.Kubernetes/connectedClusters/c2\n`);
    expect(problems[0]).toBe(`${F}: line 2, column 1: Map keys must be unique`);
  });

  it('names a JSON syntax error', () => {
    const problems = problemsOf('{"scope": "x",');
    expect(problems[0]).toMatch(new RegExp(`^${F}: line \\d+, column \\d+: `));
  });

  it('needs a cluster scope from --rbac-scope or the file', () => {
    expect(problemsOf('roleAssignments: []')[0]).toContain('no cluster scope: set --rbac-scope');
    expect(parseRoleAssignmentsFile('roleAssignments: []', F, CLUSTER).ok).toBe(true);
    expect(problemsOf('scope: /subscriptions/not-a-guid/resourceGroups/rg')[0]).toContain('scope (line 1): must be the ARM resource ID');
  });

  it('lets --rbac-scope win over the file scope', () => {
    const result = parseRoleAssignmentsFile(`scope: ${CLUSTER}`, F, `${RG}/providers/Microsoft.Kubernetes/connectedClusters/c2`);
    expect(result.ok && result.model.scope).toBe(`${RG}/providers/Microsoft.Kubernetes/connectedClusters/c2`);
  });

  it('rejects custom roles that collide with built-in roles or each other', () => {
    const problems = problemsOf(
      JSON.stringify({
        scope: CLUSTER,
        roleDefinitions: [
          { id: oid(0xc1), roleName: 'reader', permissions: [{ actions: ['*'] }] },
          { id: 'acdd72a7-3385-48ef-bd42-f606fba81ae7', roleName: 'Mine', permissions: [{ actions: ['*'] }] },
          { id: oid(0xc2), roleName: 'Twin', permissions: [{ actions: ['*'] }] },
          { id: oid(0xc3), roleName: 'twin', permissions: [{ actions: ['*'] }] },
        ],
      }),
    );
    expect(problems).toEqual([
      expect.stringContaining('roleDefinitions[0] (line 1): collides with the built-in role "Reader"'),
      expect.stringContaining('roleDefinitions[1] (line 1): collides with the built-in role "Reader"'),
      expect.stringContaining('roleDefinitions[3].roleName (line 1): duplicate role name "twin"'),
    ]);
  });

  it('rejects a top level that is not a mapping', () => {
    expect(problemsOf('- a\n- b\n')[0]).toContain(`${F}: `);
  });
});

describe('role assignments file: loading and reload', () => {
  const deps = () => ({ clock: new ManualClock(), log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), pollIntervalMs: 0 });

  it('fails start-up with StaticFileError naming the file when it is missing or invalid', async () => {
    const missing = join(dir.dir, 'missing.yaml');
    await expect(createStaticAuthorizer(rbacConfig({ roleAssignmentsFile: missing }), deps())).rejects.toThrow(StaticFileError);
    await expect(createStaticAuthorizer(rbacConfig({ roleAssignmentsFile: missing }), deps())).rejects.toThrow(
      `${missing}: cannot read the role assignments file: no such file`,
    );
    const bad = dir.file('bad.yaml', `scope: ${CLUSTER}\nroleAssignments:\n  - principalId: ${ME}\n    role: Nope\n`);
    await expect(createStaticAuthorizer(rbacConfig({ roleAssignmentsFile: bad }), deps())).rejects.toThrow(
      `${bad}: roleAssignments[0].role (line 4): unknown role "Nope"`,
    );
    await expect(createStaticAuthorizer(rbacConfig(), deps())).rejects.toThrow('--role-assignments-file is required');
  });

  it('applies a new assignment on reload, and keeps the last good file when the new one is broken', async () => {
    const file = dir.file('reload.yaml', `scope: ${CLUSTER}\nroleAssignments: []\n`);
    const logged = capturingLogger();
    const source = await StaticAccessSource.load({ file, log: logged.log, pollIntervalMs: 0 });
    try {
      expect((await source.lookup(user(ME), CLUSTER)).assignments).toHaveLength(0);

      writeFileSync(file, `scope: ${CLUSTER}\nroleAssignments:\n  - principalId: ${ME}\n    role: Cognitive Services OpenAI User\n`);
      expect(await source.reload()).toEqual({ ok: true });
      expect((await source.lookup(user(ME), CLUSTER)).assignments).toHaveLength(1);

      writeFileSync(file, `scope: ${CLUSTER}\nroleAssignments:\n  - principalId: ${ME}\n    role: Reader\n  - {}\n`);
      const broken = await source.reload();
      expect(broken.ok).toBe(false);
      expect(!broken.ok && broken.problems.join('\n')).toContain(`${file}: roleAssignments[1].principalId (line 5)`);
      expect((await source.lookup(user(ME), CLUSTER)).assignments.map((a) => a.roleName)).toEqual(['Cognitive Services OpenAI User']);
      expect(logged.lines.some((l) => l.msg === 'role assignments file not reloaded; keeping the last good one' && l.level === 40)).toBe(true);
    } finally {
      await source.close();
    }
  });

  it('drops cached decisions when the file changes, so an edit applies without waiting for a TTL', async () => {
    const file = dir.file('cache.yaml', `scope: ${CLUSTER}\nroleAssignments: []\n`);
    const source = await StaticAccessSource.load({ file, log: silentLogger(), pollIntervalMs: 0 });
    const authorizer = createAuthorizer({
      rbac: rbacConfig(),
      source,
      scope: source.scope,
      clock: new ManualClock(),
      log: silentLogger(),
      metrics: new Metrics({ defaultMetrics: false }),
    });
    source.onChange(() => authorizer.clearCache());
    try {
      expect(await authorizer.authorize(user(ME), ROUTES.chat)).toMatchObject({ kind: 'deny', cache: 'miss' });
      expect(await authorizer.authorize(user(ME), ROUTES.chat)).toMatchObject({ kind: 'deny', cache: 'hit' });
      writeFileSync(file, `scope: ${CLUSTER}\nroleAssignments:\n  - principalId: ${ME}\n    role: Cognitive Services OpenAI User\n`);
      await source.reload();
      expect(await authorizer.authorize(user(ME), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'miss' });
      // A broken edit changes nothing, including the cache.
      writeFileSync(file, 'roleAssignments: nope\n');
      await source.reload();
      expect(await authorizer.authorize(user(ME), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'hit' });
    } finally {
      await authorizer.close();
    }
  });

  it('notices a replaced file when polled, and ignores an unchanged one', async () => {
    const file = dir.file('poll.yaml', `scope: ${CLUSTER}\nroleAssignments: []\n`);
    const logged = capturingLogger();
    const source = await StaticAccessSource.load({ file, log: logged.log, pollIntervalMs: 0 });
    try {
      await source.poll();
      expect(logged.lines.filter((l) => l.msg === 'role assignments file reloaded')).toHaveLength(0);
      // Atomic replace (write + rename), as editors and Kubernetes ConfigMap updates do.
      const next = join(dir.dir, 'poll.yaml.tmp');
      writeFileSync(next, `scope: ${CLUSTER}\nroleAssignments:\n  - principalId: ${ME}\n    role: Reader\n`);
      renameSync(next, file);
      await source.poll();
      expect(logged.lines.filter((l) => l.msg === 'role assignments file reloaded')).toHaveLength(1);
      expect((await source.lookup(user(ME), CLUSTER)).assignments.map((a) => a.roleName)).toEqual(['Reader']);
      // A deleted file keeps the last good one, with one warning however often it is polled.
      rmSync(file);
      await source.poll();
      await source.poll();
      expect(logged.lines.filter((l) => l.msg === 'role assignments file unreadable; keeping the last good one')).toHaveLength(1);
      expect((await source.lookup(user(ME), CLUSTER)).assignments).toHaveLength(1);
    } finally {
      await source.close();
    }
  });

  it('polls on its own timer', async () => {
    const file = dir.file('timer.yaml', `scope: ${CLUSTER}\nroleAssignments: []\n`);
    const authorizer = await createStaticAuthorizer(rbacConfig({ roleAssignmentsFile: file }), { ...deps(), pollIntervalMs: 20 });
    try {
      expect(await authorizer.authorize(user(ME), ROUTES.chat)).toMatchObject({ kind: 'deny' });
      const next = join(dir.dir, 'timer.yaml.tmp');
      writeFileSync(next, `scope: ${CLUSTER}\nroleAssignments:\n  - principalId: ${ME}\n    role: Cognitive Services OpenAI User\n`);
      renameSync(next, file);
      const deadline = Date.now() + 5_000;
      let decision = await authorizer.authorize(user(ME), ROUTES.chat);
      while (decision.kind !== 'allow' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
        decision = await authorizer.authorize(user(ME), ROUTES.chat);
      }
      expect(decision.kind).toBe('allow');
    } finally {
      await authorizer.close();
    }
  });

  it('refuses a reload that changes the cluster scope', async () => {
    const file = dir.file('scope.yaml', `scope: ${CLUSTER}\n`);
    const source = await StaticAccessSource.load({ file, log: silentLogger(), pollIntervalMs: 0 });
    try {
      writeFileSync(file, `scope: ${RG}/providers/Microsoft.Kubernetes/connectedClusters/c2\n`);
      const result = await source.reload();
      expect(!result.ok && result.problems[0]).toContain('restart the sidecar to change the cluster scope');
      expect(source.scope).toBe(CLUSTER);
    } finally {
      await source.close();
    }
  });

  it('reads JSON files too, and looks principals up by object ID in any tenant and case', async () => {
    const file = dir.file('a.json', JSON.stringify({ scope: CLUSTER, roleAssignments: [{ principalId: ME.toUpperCase(), role: 'Reader' }] }));
    const source = await StaticAccessSource.load({ file, log: silentLogger(), pollIntervalMs: 0 });
    try {
      expect((await source.lookup(user(ME, oid(77)), CLUSTER)).assignments).toHaveLength(1);
      expect((await source.lookup(user(ME.toUpperCase()), CLUSTER)).assignments).toHaveLength(1);
      expect((await source.lookup(user(oid(2)), CLUSTER)).assignments).toHaveLength(0);
    } finally {
      await source.close();
    }
  });
});
