import { stringify } from 'yaml';
import { DEFAULT_ARM_ENDPOINT } from '../azure/arm-manage.js';
import { DEFAULT_AUTHORITY_HOST } from '../azure/client-credentials.js';

/** The `serve` settings for an app registration and cluster: environment lines and a `--config` file. */

export interface ServeSettingsInput {
  readonly tenantId: string;
  /** Null in a dry run that would create the app. */
  readonly clientId: string | null;
  readonly rbacScope?: string;
  readonly authority?: string;
  readonly armEndpoint?: string;
}

export interface ServeSettings {
  /** `FOUNDRY_AUTH_*=value` lines (comments start with `#`). */
  readonly env: readonly string[];
  /** The same as a YAML `--config` file (camelCase keys). */
  readonly config: Readonly<Record<string, string>>;
  readonly configYaml: string;
}

export function serveSettings(input: ServeSettingsInput): ServeSettings {
  const clientId = input.clientId ?? '<client ID of the app setup would create>';
  const config: Record<string, string> = { tenantId: input.tenantId, clientId };
  if (input.rbacScope !== undefined) config['rbacScope'] = input.rbacScope;
  const authority = input.authority?.replace(/\/+$/, '');
  if (authority !== undefined && authority !== DEFAULT_AUTHORITY_HOST) config['authority'] = authority;
  const arm = input.armEndpoint?.replace(/\/+$/, '');
  if (arm !== undefined && arm !== DEFAULT_ARM_ENDPOINT) config['armEndpoint'] = arm;
  const env = Object.entries(config).map(([key, value]) => `FOUNDRY_AUTH_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}=${value}`);
  if (input.rbacScope === undefined)
    env.push('# FOUNDRY_AUTH_RBAC_SCOPE=<ARM resource ID of the Arc connected cluster> (setup --cluster-id prints it)');
  return { env, config, configYaml: stringify(config) };
}
