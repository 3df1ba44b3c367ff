import { describe, expect, it } from 'vitest';
import { auditLine, type RequestRecord } from '../../src/http/audit.js';

describe('the audit line', () => {
  it('is one JSON line with the request, principal, decision, timings and cache outcomes', () => {
    const record: RequestRecord = {
      requestId: '7f1c2d3e-0000-4000-8000-000000000001',
      method: 'POST',
      startedAt: 100,
      path: '/v1/chat/completions',
      route: 'POST /v1/chat/completions',
      plane: 'data',
      action: 'Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action',
      principal: {
        type: 'user',
        oid: '0b6c4d2e-8f1a-4b3c-9d5e-7f6a8b9c0d1e',
        tid: '72f988bf-86f1-41af-91ab-2d7cd011db47',
        appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
        name: 'alice',
      },
      decision: 'allow',
      decisionSource: 'arm',
      authMs: 0.01234,
      rbacMs: 1.5,
      upstreamFirstByteMs: 41.25,
      tokenCache: 'hit',
      rbacCache: 'miss',
      upstreamOutcome: 'ok',
    };
    const line = auditLine(record, 200, 2310.5, 1_764_130_000_000);
    expect(line.endsWith('}\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(JSON.parse(line)).toEqual({
      level: 30,
      time: 1_764_130_000_000,
      msg: 'request',
      requestId: record.requestId,
      method: 'POST',
      path: '/v1/chat/completions',
      route: 'POST /v1/chat/completions',
      plane: 'data',
      action: record.action,
      principal: { type: 'user', oid: record.principal!.oid, tid: record.principal!.tid, appid: record.principal!.appId },
      decision: 'allow',
      decisionSource: 'arm',
      status: 200,
      upstream: 'ok',
      timings: { authMs: 0.012, rbacMs: 1.5, upstreamFirstByteMs: 41.25, totalMs: 2210.5 },
      cache: { token: 'hit', rbac: 'miss' },
    });
  });

  it('escapes whatever came from the request and omits what was never learned', () => {
    const line = auditLine(
      { requestId: 'id', method: 'GET', startedAt: 0, path: '/a"b\\c\u2028', code: 'invalid_path', decision: 'rejected', reason: 'x"y' },
      400,
      1,
      0,
    );
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed).toEqual({
      level: 30,
      time: 0,
      msg: 'request',
      requestId: 'id',
      method: 'GET',
      path: '/a"b\\c\u2028',
      decision: 'rejected',
      status: 400,
      code: 'invalid_path',
      reason: 'x"y',
      timings: { totalMs: 1 },
      cache: {},
    });
  });

  it('names an API key principal without a tenant', () => {
    const line = auditLine({ requestId: 'id', method: 'GET', startedAt: 0, principal: { type: 'api-key', oid: 'key-3f9a1c2e', tid: '' } }, 200, 0, 0);
    expect((JSON.parse(line) as { principal: unknown }).principal).toEqual({ type: 'api-key', oid: 'key-3f9a1c2e' });
  });

  it('writes timings to the microsecond, rounded, as JSON numbers', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [0.0004, '0'],
      [0.0005, '0.001'],
      [0.007, '0.007'],
      [0.07, '0.070'],
      [0.7, '0.700'],
      [1, '1'],
      [1.0199, '1.020'],
      [41.25, '41.250'],
      [123456.789, '123456.789'],
    ];
    for (const [totalMs, text] of cases) {
      const line = auditLine({ requestId: 'id', method: 'GET', startedAt: 0 }, 200, totalMs, 0);
      expect(line).toContain(`"totalMs":${text}}`);
      expect((JSON.parse(line) as { timings: { totalMs: number } }).timings.totalMs).toBe(Number(text));
    }
  });
});
