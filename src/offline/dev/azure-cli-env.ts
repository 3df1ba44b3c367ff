import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shellQuote } from './banner.js';
import { CLI_PATH } from './child.js';
import type { EmulatorReady } from './emulator-client.js';
import type { StateLayout } from './layout.js';

/**
 * `.foundry-auth/az-env.sh`: the lines that point the Azure CLI at the emulator, sourced in a
 * POSIX shell. az gets its own configuration directory (the user's ~/.azure is untouched) with the
 * emulator registered as a cloud (`clouds.config`, what `az cloud register` writes), trusts the
 * emulator's CA only, and reaches login.microsoftonline.com through the emulator's loopback proxy
 * (MSAL asks it for instance discovery whatever the authority). The same script puts this
 * checkout's `foundry-auth` on PATH, so the commands the stack prints run as printed.
 */

export const AZ_CLOUD_NAME = 'FoundryAuthDev';

export function writeAzureCliEnv(layout: StateLayout, endpoints: EmulatorReady): void {
  mkdirSync(layout.azConfigDir, { recursive: true, mode: 0o700 });
  const cloud = [
    `[${AZ_CLOUD_NAME}]`,
    `endpoint_active_directory = ${endpoints.signIn}`,
    'endpoint_active_directory_resource_id = https://management.core.windows.net/',
    'endpoint_active_directory_graph_resource_id = https://graph.windows.net/',
    `endpoint_resource_manager = ${endpoints.arm}/`,
    'endpoint_management = https://management.core.windows.net/',
    `endpoint_microsoft_graph_resource_id = ${endpoints.graph}/`,
    'profile = latest',
    '',
  ];
  writeFileSync(join(layout.azConfigDir, 'clouds.config'), cloud.join('\n'));
  // MSAL's cache of discovery documents names the previous run's ports.
  rmSync(join(layout.azConfigDir, 'msal_http_cache.bin'), { force: true });

  const binDir = join(layout.dir, 'bin');
  mkdirSync(binDir, { recursive: true });
  const shim = join(binDir, 'foundry-auth');
  writeFileSync(shim, `#!/bin/sh\nexec ${shellQuote(process.execPath)} ${shellQuote(CLI_PATH)} "$@"\n`);
  chmodSync(shim, 0o755);

  const lines = [
    '# Written by foundry-auth dev while its stack runs. In bash, zsh or sh:  . ./.foundry-auth/az-env.sh',
    '# Points the Azure CLI (az) at the emulator, with its own config directory; puts foundry-auth on PATH.',
    "# It sends this shell's HTTPS through the emulator's loopback proxy (no NO_PROXY): open a new shell to undo it.",
    `export AZURE_CONFIG_DIR=${shellQuote(layout.azConfigDir)}`,
    `export AZURE_CLOUD_NAME=${AZ_CLOUD_NAME}`,
    'export AZURE_CORE_COLLECT_TELEMETRY=no',
    'export AZURE_CORE_SURVEY_MESSAGE=no',
    `export REQUESTS_CA_BUNDLE=${shellQuote(endpoints.caCert)}`,
    `export HTTPS_PROXY=${shellQuote(endpoints.http)}`,
    'export https_proxy="$HTTPS_PROXY"',
    'unset NO_PROXY no_proxy',
    `export PATH=${shellQuote(binDir)}:"$PATH"`,
    '',
  ];
  writeFileSync(layout.azEnv, lines.join('\n'), { mode: 0o644 });
}
