import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../ops/log.js';
import { WatchedFile } from '../ops/watched-file.js';
import { API_KEY_PREFIXES } from './credentials.js';
import type { Principal } from '../contracts/principal.js';

/** A configured key, kept only as its SHA-256 digest. */
interface StoredKey {
  readonly digest: Buffer;
  readonly principal: Principal;
}

/** `key-` and the first 8 hex digits of SHA-256(key): names a key in logs and upstream headers without revealing it. */
export function apiKeyId(key: string): string {
  return `key-${createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 8)}`;
}

/** Reads an API keys file: one key per line, `#` starts a comment line, blank lines ignored, whitespace trimmed. */
export function parseApiKeys(text: string): string[] {
  const keys: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const key = line.trim();
    if (key === '' || key.startsWith('#')) continue;
    keys.push(key);
  }
  return keys;
}

/**
 * The API keys of `--api-keys-file`, re-read every 5 s so keys rotate without a restart. A file
 * that cannot be read keeps the last good set. Comparison is constant-time: the candidate and every
 * key are compared as SHA-256 digests with `timingSafeEqual`, and every key is compared.
 */
export class ApiKeys {
  private keys: readonly StoredKey[] = [];
  private readonly file: WatchedFile;

  constructor(file: string, log: Logger, reloadIntervalMs: number = 5_000) {
    this.file = new WatchedFile(
      file,
      {
        changed: (text, firstLoad) => {
          const keys = parseApiKeys(text);
          this.keys = keys.map((key) => ({
            digest: createHash('sha256').update(key, 'utf8').digest(),
            principal: { type: 'api-key', oid: apiKeyId(key), tid: '' } satisfies Principal,
          }));
          const bearerless = keys.filter((k) => !k.startsWith(API_KEY_PREFIXES[0]) && !k.startsWith(API_KEY_PREFIXES[1])).map(apiKeyId);
          log.info({ file, keys: this.keys.map((k) => k.principal.oid) }, firstLoad ? 'API keys loaded' : 'API keys reloaded');
          if (bearerless.length > 0) {
            log.warn(
              { keys: bearerless },
              'these API keys do not start with fndry-sk- or fndry-pk-: they work only in the api-key header, not as Authorization: Bearer',
            );
          }
        },
        unreadable: (error, loaded) => {
          log.warn(
            { file, error, keys: this.keys.length },
            loaded
              ? 'could not re-read the API keys file: keeping the previous keys'
              : 'could not read the API keys file: no API key is accepted until it can be read',
          );
        },
      },
      reloadIntervalMs,
    );
  }

  /** Reads the file once and starts the periodic re-read. */
  start(): Promise<void> {
    return this.file.start();
  }

  /** Re-reads the file now. False when it could not be read (the previous keys stay in force). */
  reload(): Promise<boolean> {
    return this.file.reload();
  }

  /** Null once the file was read; otherwise why not (for `/readyz`). */
  readiness(): string | null {
    return this.file.readiness('the API keys file');
  }

  get count(): number {
    return this.keys.length;
  }

  /** The key's principal, or undefined. Takes the same time whichever key matches, or none. */
  verify(candidate: string): Principal | undefined {
    const digest = createHash('sha256').update(candidate, 'utf8').digest();
    let match: Principal | undefined;
    for (const key of this.keys) {
      // No early exit: every key is compared.
      if (timingSafeEqual(digest, key.digest) && match === undefined) match = key.principal;
    }
    return match;
  }

  close(): void {
    this.file.close();
  }
}
