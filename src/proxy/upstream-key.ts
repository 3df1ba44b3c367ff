import type { Logger } from '../ops/log.js';
import { WatchedFile } from '../ops/watched-file.js';
import { apiKeyId, parseApiKeys } from '../authn/api-keys.js';

/**
 * The key of `--upstream-api-key-file`, sent to the upstream as `api-key` (a Foundry Local
 * deployment whose own API key is on). Re-read every 5 s like `--api-keys-file`, so a rotated
 * Secret takes effect without a restart; the first non-comment line is the key. Logs name the key
 * only by `apiKeyId`.
 */
export class UpstreamApiKey {
  private key: string | undefined;
  private readonly file: WatchedFile;

  constructor(path: string, log: Logger, reloadIntervalMs: number = 5_000) {
    this.file = new WatchedFile(
      path,
      {
        changed: (text, firstLoad) => {
          const key = parseApiKeys(text)[0];
          // An emptied file keeps the previous key: a half-written rotation must not strip the header.
          if (key === undefined) {
            log.warn(
              { file: path },
              this.key === undefined ? 'the upstream API key file holds no key' : 'the upstream API key file is empty: keeping the previous key',
            );
            return;
          }
          this.key = key;
          log.info({ file: path, key: apiKeyId(key) }, firstLoad ? 'upstream API key loaded' : 'upstream API key reloaded');
        },
        unreadable: (error, loaded) => {
          log.warn(
            { file: path, error },
            loaded ? 'could not re-read the upstream API key file: keeping the previous key' : 'could not read the upstream API key file',
          );
        },
      },
      reloadIntervalMs,
    );
  }

  /** The key to send, or undefined until one was read. */
  get value(): string | undefined {
    return this.key;
  }

  start(): Promise<void> {
    return this.file.start();
  }

  /** Re-reads the file now. False when it could not be read (the previous key stays in force). */
  reload(): Promise<boolean> {
    return this.file.reload();
  }

  /** Null once a key was read; otherwise why not (for `/readyz`). */
  readiness(): string | null {
    if (this.key !== undefined) return null;
    return this.file.readiness('the upstream API key file') ?? `the upstream API key file ${this.file.path} holds no key`;
  }

  close(): void {
    this.file.close();
  }
}
