// Scenario 4: authentication cost in-process, on one core: validations per second for a cached
// token and for an uncached one (signature verified). See lib/authn-cost.mjs.
import { join } from 'node:path';
import { pinned, pinnedCommand, progress, ROOT, runCommand } from '../lib/proc.mjs';
import { ScenarioResult } from '../lib/report.mjs';

export const SETTINGS = { seconds: 3 };

export async function authentication(ctx) {
  const result = new ScenarioResult('authn', '4 authentication (in-process)');
  const s = ctx.quick ? { seconds: 1 } : SETTINGS;
  const script = join(ROOT, 'bench', 'lib', 'authn-cost.mjs');
  const cpu = pinned(ctx.layout.proxy ?? '0');
  const [command, args] = pinnedCommand(cpu, process.execPath, [script, String(s.seconds)]);
  progress(
    `authn: Authenticator.authenticateRequest on ${cpu !== undefined ? `CPU ${cpu} only` : 'one thread'}, best of 5 trials in ${s.seconds} s per case`,
  );
  const run = await runCommand(command, args);
  const line = run.stdout.split('\n').find((l) => l.startsWith('{'));
  if (run.code !== 0 || line === undefined) throw new Error(`authn-cost.mjs failed (exit ${run.code}): ${run.stderr.slice(-1500)}`);
  const data = JSON.parse(line);
  progress(
    `  cached ${Math.round(data.cachedPerSecond).toLocaleString('en-US')}/s, uncached ${Math.round(data.uncachedPerSecond).toLocaleString('en-US')}/s`,
  );
  result.target(
    'cached token validations per second (one core)',
    Math.round(data.cachedPerSecond).toLocaleString('en-US'),
    '>= 200,000',
    data.cachedPerSecond >= 200_000,
  );
  result.measure('uncached validations per second, RS256 verified (one core)', Math.round(data.uncachedPerSecond).toLocaleString('en-US'));
  result.measure(
    'per validation: cached / uncached',
    `${(1e6 / data.cachedPerSecond).toFixed(2)} / ${(1e6 / data.uncachedPerSecond).toFixed(1)} µs (token ${data.tokenChars} characters)`,
  );
  result.data = { settings: s, ...data };
  return result;
}
