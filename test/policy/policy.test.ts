import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/contracts/principal.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { PolicyFile, PolicyFileError } from '../../src/policy/policy-file.js';
import { globPattern, parsePolicy, type Policy } from '../../src/policy/policy.js';

const TID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const ALICE = '0b6c4d2e-8f1a-4b3c-9d5e-7f6a8b9c0d1e';
const BOB = '1c7d5e3f-9a2b-4c4d-8e6f-8a7b9c0d1e2f';

function user(oid: string, roles?: string[]): Principal {
  return { type: 'user', oid, tid: TID, claims: roles ? { roles } : {} };
}

function policy(text: string): Policy {
  const parsed = parsePolicy(text, 'policy.yaml');
  if (!parsed.ok) throw new Error(parsed.errors.join('\n'));
  return parsed.policy;
}

const EXAMPLE = `
models:
  - match: "phi-4*"
    allow: { roles: [FoundryPhiUsers], principals: ["${ALICE.toUpperCase()}"] }
  - match: "phi-4-mini"
    allow: { roles: [Nobody] }
  - match: "llama-*-70b"
    allow: {}
limits:
  - for: { roles: [FoundryBatch] }
    tokensPerMinute: 20000
    requestsPerMinute: 60
    tokensPerDay: 2000000
  - for: { roles: [Small] }
    tokensPerMinute: 1000
  - for: { principals: ["key-3f9a1c2e"] }
    requestsPerMinute: 5
  - for: { default: true }
    tokensPerMinute: 5000
`;

describe('model rules', () => {
  const p = policy(EXAMPLE);

  it('allow a model by role from the token or by object ID; the first matching rule decides', () => {
    expect(p.hasModelRules).toBe(true);
    expect(p.modelAccess('phi-4-mini', user(BOB, ['FoundryPhiUsers'])).kind).toBe('allowed');
    expect(p.modelAccess('phi-4-mini', user(ALICE)).kind).toBe('allowed');
    const denied = p.modelAccess('phi-4-mini', user(BOB, ['Other']));
    expect(denied).toMatchObject({ kind: 'denied', rule: { match: 'phi-4*', roles: ['FoundryPhiUsers'] } });
  });

  it('match case-insensitively; a model no rule matches is left to RBAC; an empty allow refuses everyone', () => {
    expect(p.modelAccess('PHI-4-MINI', user(BOB)).kind).toBe('denied');
    expect(p.modelAccess('qwen2.5-0.5b', user(BOB)).kind).toBe('allowed');
    expect(p.modelAccess('llama-3-70b', user(ALICE, ['FoundryPhiUsers'])).kind).toBe('denied');
    expect(p.modelAccess('llama-3-8b', user(ALICE)).kind).toBe('allowed');
  });

  it('API keys have no roles: only their key ID can allow them', () => {
    const key: Principal = { type: 'api-key', oid: 'key-3f9a1c2e', tid: '' };
    expect(p.modelAccess('phi-4', key).kind).toBe('denied');
  });

  it('globs: * any run, ? one character, regex characters literal', () => {
    expect(globPattern('a.b?c*').test('a.bXc-anything')).toBe(true);
    expect(globPattern('a.b?c*').test('aXbXc')).toBe(false);
    expect(globPattern('(x)+').test('(x)+')).toBe(true);
  });
});

describe('limits', () => {
  const p = policy(EXAMPLE);

  it('every matching entry applies and the tightest value of each limit wins', () => {
    expect(p.limitsFor(user(BOB, ['FoundryBatch', 'Small']))).toEqual({ tokensPerMinute: 1000, requestsPerMinute: 60, tokensPerDay: 2_000_000 });
  });

  it('the default entry applies to principals no other entry matches', () => {
    expect(p.limitsFor(user(BOB))).toEqual({ tokensPerMinute: 5000 });
    expect(p.limitsFor(user(BOB, ['FoundryBatch']))).toEqual({ tokensPerMinute: 20000, requestsPerMinute: 60, tokensPerDay: 2_000_000 });
    expect(p.limitsFor({ type: 'api-key', oid: 'key-3f9a1c2e', tid: '' })).toEqual({ requestsPerMinute: 5 });
  });

  it('no limits entry: nobody is limited', () => {
    expect(policy('models: []\n').limitsFor(user(BOB))).toBeUndefined();
    expect(policy('').hasModelRules).toBe(false);
  });
});

describe('invalid policy files name the line', () => {
  const errors = (text: string): readonly string[] => {
    const parsed = parsePolicy(text, 'p.yaml');
    if (parsed.ok) throw new Error('expected errors');
    return parsed.errors;
  };

  it('a wrong value: the line of the setting', () => {
    expect(errors('models:\n  - match: "phi*"\n    allow: { roles: [A] }\nlimits:\n  - for: { roles: [A] }\n    tokensPerMinute: -5\n')).toEqual([
      expect.stringMatching(/^p\.yaml:6: limits\.0\.tokensPerMinute: /),
    ]);
  });

  it('an unknown key, a principal that is no object ID, a limit entry without a limit', () => {
    expect(errors('model:\n  - x\n')[0]).toMatch(/^p\.yaml:1: .*model/);
    expect(errors('models:\n  - match: a\n    allow:\n      principals: [alice]\n')[0]).toMatch(
      /^p\.yaml:4: models\.0\.allow\.principals\.0: an object ID/,
    );
    expect(errors('limits:\n  - for: { default: true }\n')[0]).toMatch(/^p\.yaml:2: limits\.0: a limit entry needs at least one/);
  });

  it('YAML syntax errors and duplicate keys; JSON files too', () => {
    expect(errors('models:\n  - match: a\n    match: b\n    allow: {}\n')[0]).toMatch(/^p\.yaml:3: Map keys must be unique/);
    expect(errors('models: [\n')[0]).toMatch(/^p\.yaml:\d+: /);
    expect(errors('{\n  "models": [\n    { "match": 3, "allow": {} }\n  ]\n}\n')[0]).toMatch(/^p\.yaml:3: models\.0\.match: /);
  });
});

describe('the policy file in force', () => {
  let dir: string;
  let file: string;
  const closers: (() => void)[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fa-policy-'));
    file = join(dir, 'policy.yaml');
  });
  afterEach(() => {
    for (const close of closers.splice(0)) close();
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (text: string): void => {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  };

  it('start: invalid or unreadable is a PolicyFileError naming the line', async () => {
    write('limits:\n  - for: { roles: [A] }\n    tokensPerDay: 1.5\n');
    const pf = new PolicyFile(file, silentLogger(), new Metrics({ defaultMetrics: false }));
    const failure = await pf.start().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(PolicyFileError);
    expect((failure as PolicyFileError).problems).toEqual([expect.stringContaining(`${file}:3: limits.0.tokensPerDay`)]);
    const missing = await new PolicyFile(join(dir, 'nope.yaml'), silentLogger(), new Metrics({ defaultMetrics: false }))
      .start()
      .catch((e: unknown) => e);
    expect((missing as PolicyFileError).problems[0]).toMatch(/cannot read .*ENOENT/);
  });

  it('reload: a valid change applies, an invalid one keeps the last good and counts it', async () => {
    write('models:\n  - match: a*\n    allow: { roles: [A] }\n');
    const metrics = new Metrics({ defaultMetrics: false });
    const pf = new PolicyFile(file, silentLogger(), metrics, 60_000);
    await pf.start();
    closers.push(() => pf.close());
    expect(pf.current.modelAccess('abc', user(BOB)).kind).toBe('denied');

    write('models:\n  - match: a*\n    allow: { roles: [A, B] }\n');
    expect(await pf.reload()).toBe(true);
    expect(pf.current.modelAccess('abc', user(BOB, ['B'])).kind).toBe('allowed');

    write('models:\n  - match: a*\n    allow: { roles: B }\n');
    expect(await pf.reload()).toBe(false);
    expect(pf.current.modelAccess('abc', user(BOB, ['B'])).kind).toBe('allowed');
    // The same invalid content is reported once, not on every poll.
    expect(await pf.reload()).toBe(true);
    const counted = await metrics.registry.getSingleMetricAsString('foundry_auth_policy_reloads_total');
    expect(counted).toContain('outcome="invalid"} 1');
    expect(counted).toContain('outcome="ok"} 1');
  });

  it('polls the file: a change applies within 2 s', async () => {
    write('models: []\n');
    const pf = new PolicyFile(file, silentLogger(), new Metrics({ defaultMetrics: false }));
    await pf.start();
    closers.push(() => pf.close());
    const written = Date.now();
    write('models:\n  - match: "*"\n    allow: {}\n');
    while (!pf.current.hasModelRules) {
      expect(Date.now() - written).toBeLessThan(2_000);
      await new Promise((r) => setTimeout(r, 50));
    }
  });
});
