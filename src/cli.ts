#!/usr/bin/env node
/**
 * `foundry-auth <command>`: each command lives in `cli/<command>.ts` and is imported only when run,
 * so `serve` never loads the emulator or the setup code.
 */
import type { Command } from 'commander';

interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  readonly load: () => Promise<{ command(): Command }>;
}

const COMMANDS: readonly CommandEntry[] = [
  { name: 'serve', summary: 'the sidecar: authenticate, authorize and forward to Foundry Local', load: () => import('./cli/serve.js') },
  { name: 'dev', summary: 'local stack: emulator + sample backend + sidecar, demo tenant seeded', load: () => import('./cli/dev.js') },
  { name: 'emulator', summary: 'local Entra ID + Microsoft Graph + ARM + managed-identity endpoint', load: () => import('./cli/emulator.js') },
  {
    name: 'sample-backend',
    summary: 'a stand-in Foundry Local server (OpenAI-compatible, SSE, control plane)',
    load: () => import('./cli/sample-backend.js'),
  },
  { name: 'setup', summary: "the documentation's steps 1-5 and 7 against Microsoft Graph and ARM, idempotent", load: () => import('./cli/setup.js') },
  { name: 'grant', summary: 'give a user, group or managed identity inference or admin access (step 6)', load: () => import('./cli/grant.js') },
  { name: 'doctor', summary: 'check every setting the documentation names and print the fix', load: () => import('./cli/doctor.js') },
  { name: 'cache', summary: 'cache flush: drop cached RBAC decisions in every replica (after a revocation)', load: () => import('./cli/cache.js') },
  {
    name: 'manifests',
    summary: 'Kubernetes YAML (gateway, sidecar, forward-auth) from the same settings as serve',
    load: () => import('./cli/manifests.js'),
  },
  { name: 'token', summary: 'token inspect: explain what the sidecar would do with a token', load: () => import('./cli/token.js') },
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: foundry-auth <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'foundry-auth <command> --help' for a command's options.",
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<void> {
  const name = argv[2];
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    process.exitCode = name === undefined ? 2 : 0;
    return;
  }
  if (name === '--version' || name === '-V') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`foundry-auth: unknown command "${name}"\n\n${usage()}\n`);
    process.exitCode = 2;
    return;
  }
  const command = (await entry.load()).command();
  await command.parseAsync(argv.slice(3), { from: 'user' });
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`foundry-auth: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
