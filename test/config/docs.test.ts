import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVE_OPTIONS, envName } from '../../src/config/options.js';

/** docs/CONFIGURATION.md must stay true to the one option table. */
describe('docs/CONFIGURATION.md', () => {
  const doc = readFileSync(new URL('../../docs/CONFIGURATION.md', import.meta.url), 'utf8');
  it.each(SERVE_OPTIONS.map((o) => [o.flag, o] as const))('documents --%s with its env variable and default', (flag, option) => {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`--${flag}\` |`));
    expect(row, `no table row for --${flag}`).toBeDefined();
    expect(row).toContain(`\`${envName(flag)}\``);
    expect(row).toContain('default' in option ? `\`${option.default}\`` : '| — |');
  });
});
