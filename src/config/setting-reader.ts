import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { HostPort } from './config.js';
import { parseDuration } from './duration.js';
import { SERVE_OPTIONS, envName, fileKey, type OptionSpec, type ServeFlag } from './options.js';

/** Raw values as they arrive: flags and env are strings, a config file may hold numbers, booleans and arrays. */
export type RawValue = string | number | boolean | readonly (string | number)[];

export interface Sources {
  /** Flags given on the command line, keyed by flag name (`tenant-id`). */
  readonly flags: Readonly<Partial<Record<string, RawValue>>>;
  readonly env: Readonly<Record<string, string | undefined>>;
}

const guid = z.guid();
const BYTE_UNITS: Readonly<Record<string, number>> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
const SPECS = new Map<string, OptionSpec>(SERVE_OPTIONS.map((o) => [o.flag, o]));
const FILE_KEYS = new Set(SERVE_OPTIONS.map((o) => fileKey(o.flag)));

/**
 * Resolves each `serve` setting with precedence flag > env > file > default and parses it into its type.
 * A reader returns `undefined` for a bad value and records one error line naming the flag and its env variable,
 * so every problem is reported at once.
 */
export class SettingReader {
  readonly errors: string[] = [];
  private readonly file: Record<string, unknown> = {};

  constructor(private readonly sources: Sources) {
    const configPath = this.pick('config');
    if (typeof configPath !== 'string' || configPath === '') return;
    const loaded = readConfigFile(configPath);
    if (typeof loaded === 'string') {
      this.errors.push(`${label('config')}: ${loaded}`);
      return;
    }
    this.file = loaded;
    for (const key of Object.keys(loaded)) {
      if (!FILE_KEYS.has(key)) this.errors.push(`${label('config')}: unknown key "${key}" in ${configPath}`);
    }
  }

  fail(flag: ServeFlag, problem: string): undefined {
    this.errors.push(`${label(flag)}: ${problem}`);
    return undefined;
  }

  /** True when the setting has a value from a flag, env, the file or a default. */
  given(flag: ServeFlag): boolean {
    return this.pick(flag) !== undefined;
  }

  text(flag: ServeFlag): string | undefined {
    const value = this.pick(flag);
    if (value === undefined) return undefined;
    if (Array.isArray(value)) return value.join(',');
    return String(value);
  }

  list(flag: ServeFlag): string[] | undefined {
    const value = this.text(flag);
    if (value === undefined) return undefined;
    return value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  guid(flag: ServeFlag): string | undefined {
    const value = this.text(flag);
    if (value === undefined) return undefined;
    if (!guid.safeParse(value).success) return this.fail(flag, `must be a GUID such as 00000000-0000-0000-0000-000000000000 (got "${clip(value)}")`);
    return value.toLowerCase();
  }

  guidList(flag: ServeFlag): string[] | undefined {
    const values = this.list(flag);
    if (values === undefined) return undefined;
    const bad = values.filter((v) => !guid.safeParse(v).success);
    if (bad.length > 0) return this.fail(flag, `every entry must be a GUID (bad: ${bad.map((b) => `"${clip(b)}"`).join(', ')})`);
    return values.map((v) => v.toLowerCase());
  }

  url(flag: ServeFlag, opts: { loopbackHttpOnly?: boolean } = {}): URL | undefined {
    const value = this.text(flag);
    if (value === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      return this.fail(flag, `must be an absolute http(s) URL (got "${clip(value)}")`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      return this.fail(flag, `must use http:// or https:// (got "${parsed.protocol}")`);
    if (parsed.username !== '' || parsed.password !== '') return this.fail(flag, 'must not contain credentials');
    if (parsed.search !== '' || parsed.hash !== '') return this.fail(flag, 'must not contain a query or fragment');
    if (opts.loopbackHttpOnly && parsed.protocol === 'http:' && !LOOPBACK_HOSTS.has(parsed.hostname)) {
      return this.fail(flag, `http:// is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https:// for "${parsed.host}"`);
    }
    return parsed;
  }

  /** Milliseconds. */
  duration(flag: ServeFlag): number | undefined {
    const value = this.text(flag);
    if (value === undefined) return undefined;
    const ms = parseDuration(value);
    if (ms === undefined)
      return this.fail(flag, `must be a duration in seconds ("30") or with a unit ("250ms", "30s", "5m", "1h") (got "${clip(value)}")`);
    return ms;
  }

  /** Bytes: a positive integer, optionally with a binary unit. */
  bytes(flag: ServeFlag): number | undefined {
    const value = this.text(flag);
    if (value === undefined) return undefined;
    const match = /^\s*(\d{1,15})\s*(|B|KiB|MiB|GiB)\s*$/.exec(value);
    const size = match === null ? NaN : Number(match[1]) * BYTE_UNITS[match[2]!]!;
    if (!Number.isSafeInteger(size) || size < 1)
      return this.fail(
        flag,
        `must be a positive number of bytes, optionally with a unit ("1048576", "512KiB", "16MiB", "1GiB") (got "${clip(value)}")`,
      );
    return size;
  }

  bool(flag: ServeFlag): boolean | undefined {
    const value = this.pick(flag);
    if (value === undefined) return undefined;
    if (typeof value === 'boolean') return value;
    const s = String(value).trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(s)) return true;
    if (['false', '0', 'no', 'off'].includes(s)) return false;
    return this.fail(flag, `must be true or false (got "${clip(String(value))}")`);
  }

  choice<T extends string>(flag: ServeFlag): T | undefined {
    const value = this.text(flag);
    if (value === undefined) return undefined;
    const choices = SPECS.get(flag)?.choices ?? [];
    if (!choices.includes(value)) return this.fail(flag, `must be one of ${choices.join(', ')} (got "${clip(value)}")`);
    return value as T;
  }

  hostPort(flag: ServeFlag): HostPort | undefined {
    const value = this.text(flag);
    if (value === undefined) return undefined;
    const parsed = parseHostPort(value);
    if (!parsed) return this.fail(flag, `must be HOST:PORT such as 0.0.0.0:8080 or [::1]:8080 (got "${clip(value)}")`);
    return parsed;
  }

  /** A file path; an empty value counts as not set. */
  path(flag: ServeFlag): string | undefined {
    const value = this.text(flag);
    return value === undefined || value === '' ? undefined : value;
  }

  /** Every setting given by a flag, env or the file (defaults and `config` left out), by flag: what `manifests` renders. */
  explicitSettings(): Map<ServeFlag, RawValue> {
    const settings = new Map<ServeFlag, RawValue>();
    for (const { flag } of SERVE_OPTIONS) {
      const value = flag === 'config' ? undefined : this.explicit(flag);
      if (value !== undefined) settings.set(flag, value);
    }
    return settings;
  }

  private pick(flag: ServeFlag): RawValue | undefined {
    return this.explicit(flag) ?? SPECS.get(flag)?.default;
  }

  private explicit(flag: ServeFlag): RawValue | undefined {
    const fromFlag = this.sources.flags[flag];
    if (fromFlag !== undefined) return fromFlag;
    const fromEnv = this.sources.env[envName(flag)];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const fromFile = flag === 'config' ? undefined : this.file[fileKey(flag)];
    if (fromFile !== undefined && fromFile !== null) return fromFile as RawValue;
    return undefined;
  }
}

/** `--flag / FOUNDRY_AUTH_FLAG`, the prefix of every error line. */
export function label(flag: ServeFlag): string {
  return `--${flag} / ${envName(flag)}`;
}

/** A value quoted in an error line: control characters replaced, at most 80 characters. */
export function clip(value: string): string {
  const oneLine = value.replace(/[\u0000-\u001f\u007f]/g, '?');
  return oneLine.length > 80 ? `${oneLine.slice(0, 77)}...` : oneLine;
}

function readConfigFile(path: string): Record<string, unknown> | string {
  let body: string;
  try {
    body = readFileSync(path, 'utf8');
  } catch (err) {
    return `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(body) : parseYaml(body);
  } catch (err) {
    return `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`;
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return `${path} must hold a mapping of camelCase keys`;
  return parsed as Record<string, unknown>;
}

export function parseHostPort(value: string): HostPort | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(value.trim());
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port > 65535) return undefined;
  const rawHost = match[1]!;
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  if (rawHost.startsWith('[') && isIP(host) !== 6) return undefined;
  return { host, port };
}
