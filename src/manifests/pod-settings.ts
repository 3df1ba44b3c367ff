import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { RawValue } from '../config/load.js';
import { envName, type OptionSpec } from '../config/options.js';

/** Where mounted files appear in the pod. */
export const FILES_DIR = '/etc/foundry-auth/files';
export const SECRETS_DIR = '/var/run/secrets/foundry-auth';

/**
 * How the pod receives the `serve` settings, derived from the options table so a new flag needs no
 * change here:
 * - a plain value becomes `FOUNDRY_AUTH_<FLAG>` in the settings ConfigMap (read with `envFrom`);
 * - a file setting that is not secret is read now and shipped in the files ConfigMap, mounted
 *   read-only, its variable pointing at the mounted copy;
 * - a secret (a secret file, or a value that is secret or carries URL credentials) is never read or
 *   printed: it is mounted or referenced from a Kubernetes Secret the operator creates.
 */
export interface PodSettings {
  /** Data of the settings ConfigMap: variable name -> value. */
  readonly env: Readonly<Record<string, string>>;
  /** Data of the files ConfigMap: key -> file text. */
  readonly files: Readonly<Record<string, string>>;
  /** Variables read from Secrets (secret values). */
  readonly secretEnv: readonly IEnvVar[];
  readonly volumes: readonly IVolume[];
  readonly mounts: readonly IVolumeMount[];
  /** The Secrets the pod needs, for the documentation comment and the NOTES. */
  readonly secrets: readonly SecretUse[];
}

export interface SecretUse {
  readonly flag: string;
  readonly secret: string;
  readonly key: string;
}

export interface PodSettingsInput {
  readonly given: ReadonlyMap<string, RawValue>;
  /** Values the topology fixes (listen addresses, identity), by flag; they win over `given`. */
  readonly fixed: ReadonlyMap<string, string>;
  /** Secret name per flag (`--secret-name FLAG=NAME`); default `<name>-<flag without -file>`. */
  readonly secretNames: ReadonlyMap<string, string>;
  /** Prefix of generated object names. */
  readonly name: string;
  /** The options table describing `given` (`SERVE_OPTIONS`). */
  readonly options: readonly OptionSpec[];
}

export type PodSettingsResult = { readonly ok: true; readonly pod: PodSettings } | { readonly ok: false; readonly errors: readonly string[] };

/**
 * A setting whose value or file must never land in a ConfigMap: declared secret, or a file named
 * like one (the safety net for new flags: a misjudged file is only mounted from a Secret).
 */
export function isSecretSetting(spec: OptionSpec): boolean {
  return spec.secret === true || (spec.kind === 'path' && /password|secret|key|token|credential/.test(spec.flag));
}

export function podSettings(input: PodSettingsInput): PodSettingsResult {
  const env: Record<string, string> = {};
  const files: Record<string, string> = {};
  const secretEnv: IEnvVar[] = [];
  const volumes: IVolume[] = [];
  const mounts: IVolumeMount[] = [];
  const secrets: SecretUse[] = [];
  const errors: string[] = [];
  for (const spec of input.options) {
    if (spec.flag === 'config') continue;
    const fixed = input.fixed.get(spec.flag);
    if (fixed !== undefined) {
      env[envName(spec.flag)] = fixed;
      continue;
    }
    const raw = input.given.get(spec.flag);
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(',') : String(raw);
    const secretName = input.secretNames.get(spec.flag) ?? `${input.name}-${spec.flag.replace(/-file$/, '')}`;
    if (spec.kind === 'path') {
      if (isSecretSetting(spec)) {
        // The Secret's key is the file's base name: `--upstream-api-key-file primary` mounts key `primary`.
        const key = basename(value);
        const dir = `${SECRETS_DIR}/${spec.flag}`;
        volumes.push({ name: spec.flag, secret: { secretName, items: [{ key, path: key }] } });
        mounts.push({ name: spec.flag, mountPath: dir, readOnly: true });
        env[envName(spec.flag)] = `${dir}/${key}`;
        secrets.push({ flag: spec.flag, secret: secretName, key });
      } else {
        const key = `${spec.flag}${extname(value)}`;
        try {
          files[key] = readFileSync(value, 'utf8');
        } catch (err) {
          errors.push(
            `--${spec.flag} / ${envName(spec.flag)}: cannot read ${value} to ship it in a ConfigMap: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
          );
          continue;
        }
        env[envName(spec.flag)] = `${FILES_DIR}/${key}`;
      }
    } else if (isSecretSetting(spec) || hasUrlCredentials(value)) {
      secretEnv.push({ name: envName(spec.flag), valueFrom: { secretKeyRef: { name: secretName, key: 'value' } } });
      secrets.push({ flag: spec.flag, secret: secretName, key: 'value' });
    } else {
      env[envName(spec.flag)] = value;
    }
  }
  if (Object.keys(files).length > 0) {
    volumes.push({ name: 'files', configMap: { name: `${input.name}-files` } });
    mounts.push({ name: 'files', mountPath: FILES_DIR, readOnly: true });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, pod: { env, files, secretEnv, volumes, mounts, secrets } };
}

function hasUrlCredentials(value: string): boolean {
  try {
    const url = new URL(value);
    return url.username !== '' || url.password !== '';
  } catch {
    return false;
  }
}
