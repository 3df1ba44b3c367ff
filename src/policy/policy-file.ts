import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { WatchedFile } from '../ops/watched-file.js';
import { parsePolicy, type Policy } from './policy.js';

/** A policy file that cannot be used at start-up: `serve` exits 2 with these lines. */
export class PolicyFileError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'PolicyFileError';
  }
}

/** How often the file is re-read: a change applies within 2 s. */
export const POLICY_RELOAD_MS = 1_000;

/**
 * `--policy-file`, in force. Read once at start (unreadable or invalid: PolicyFileError), then
 * re-read every second; a valid change replaces the policy at once, an invalid or unreadable one
 * keeps the last good policy, logs a warning naming the line and counts
 * `foundry_auth_policy_reloads_total{outcome="invalid"|"unreadable"}`.
 */
export class PolicyFile {
  private policy: Policy | undefined;
  private readonly source: WatchedFile;
  /** Problems of the text handled last (empty when it was valid); read at start and by reload(). */
  private problems: readonly string[] = [];

  constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    reloadIntervalMs: number = POLICY_RELOAD_MS,
  ) {
    this.source = new WatchedFile(
      path,
      { changed: (text, firstLoad) => this.changed(text, firstLoad), unreadable: (error, loaded) => this.unreadable(error, loaded) },
      reloadIntervalMs,
    );
  }

  /** The policy now in force. */
  get current(): Policy {
    if (this.policy === undefined) throw new Error('PolicyFile.current before a successful start()');
    return this.policy;
  }

  async start(): Promise<void> {
    await this.source.start();
    if (this.policy === undefined) {
      this.source.close();
      throw new PolicyFileError(this.problems.length > 0 ? this.problems : [`cannot read ${this.path}`]);
    }
  }

  /** Re-reads the file now; false when this read found it unreadable or a new invalid content (the last good policy stays in force). */
  async reload(): Promise<boolean> {
    this.problems = [];
    const read = await this.source.reload();
    return read && this.problems.length === 0;
  }

  close(): void {
    this.source.close();
  }

  private changed(text: string, firstLoad: boolean): void {
    const parsed = parsePolicy(text, this.path);
    if (!parsed.ok) {
      this.problems = parsed.errors;
      if (firstLoad) return;
      this.metrics.policyReloads.inc({ outcome: 'invalid' });
      this.log.warn({ file: this.path, problems: parsed.errors }, 'the changed policy file is invalid: keeping the last good policy');
      return;
    }
    this.problems = [];
    this.policy = parsed.policy;
    if (!firstLoad) this.metrics.policyReloads.inc({ outcome: 'ok' });
    this.log.info({ file: this.path, ...this.summary(parsed.policy) }, firstLoad ? 'policy file loaded' : 'policy file reloaded');
  }

  private unreadable(error: string, loaded: boolean): void {
    if (!loaded) {
      this.problems = [`cannot read ${this.path}: ${error}`];
      return;
    }
    this.metrics.policyReloads.inc({ outcome: 'unreadable' });
    this.log.warn({ file: this.path, error }, 'could not re-read the policy file: keeping the last good policy');
  }

  private summary(policy: Policy): { modelRules: number; limits: number } {
    return { modelRules: policy.models.length, limits: policy.limits.length };
  }
}
