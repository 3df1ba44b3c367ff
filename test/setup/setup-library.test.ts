import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSetup } from '../../src/setup/setup.js';
import { collectingReporter } from '../../src/setup/report.js';
import { CLUSTER, startSetupEmulator, type SetupEmulator } from './helpers.js';

let emu: SetupEmulator;
beforeAll(async () => {
  emu = await startSetupEmulator();
});
afterAll(async () => {
  await emu?.close();
});

describe('runSetup (library, as dev calls it)', () => {
  it('creates everything, then a second run writes nothing', async () => {
    const clients = emu.clients();
    const first = await runSetup({ appName: 'lib-app', clusterId: CLUSTER }, clients, collectingReporter());
    expect(first.steps.map((s) => [s.step, s.outcome])).toEqual([
      ['app', 'created'],
      ['service_principal', 'created'],
      ['identifier_uri', 'created'],
      ['scope', 'created'],
      ['token_version', 'updated'],
      ['app_role', 'created'],
      ['preauthorized_client', 'created'],
      ['cluster_role', 'created'],
    ]);
    await emu.resetCounters();
    const second = await runSetup({ appName: 'lib-app', clusterId: CLUSTER }, clients);
    expect(second.steps.every((s) => s.outcome === 'unchanged')).toBe(true);
    const c = await emu.counters();
    expect(c.families['graph']?.writes).toBe(0);
    expect(c.families['arm']?.writes).toBe(0);
    expect(second.clientId).toBe(first.clientId);
  });
});
