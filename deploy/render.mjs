#!/usr/bin/env node
// Regenerates deploy/*.yaml from deploy/examples.json with the built CLI: npm run manifests:render
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (name) => fileURLToPath(new URL(name, import.meta.url));
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const { SERVE_OPTIONS } = await import(new URL('../dist/config/options.js', import.meta.url).href);
const forwardAuthMode = SERVE_OPTIONS.some((o) => o.flag === 'forward-auth-profile');
const { examples } = JSON.parse(readFileSync(here('examples.json'), 'utf8'));
for (const example of examples) {
  const args = forwardAuthMode || example.untilForwardAuthMode === undefined ? example.args : example.untilForwardAuthMode;
  // A clean environment: FOUNDRY_AUTH_* variables of the shell must not leak into the examples.
  const yaml = execFileSync(process.execPath, [cli, 'manifests', ...args], { env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' });
  writeFileSync(here(example.file), yaml);
  process.stdout.write(`deploy/${example.file}\n`);
}
