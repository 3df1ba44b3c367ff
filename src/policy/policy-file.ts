import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { PolledFile } from '../ops/polled-file.js';
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
  private policy!: Policy;
  private readonly source: PolledFile;

  constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    reloadIntervalMs: number = POLICY_RELOAD_MS,
  ) {
    this.source = new PolledFile(path, reloadIntervalMs);
  }

  /** The policy now in force. */
  get current(): Policy {
    return this.policy;
  }

  async start(): Promise<void> {
    const read = await this.source.read();
    if (read.kind === 'unreadable') throw new PolicyFileError([`cannot read ${this.path}: ${read.error}`]);
    if (read.kind === 'changed') {
      const parsed = parsePolicy(read.text, this.path);
      if (!parsed.ok) throw new PolicyFileError(parsed.errors);
      this.policy = parsed.policy;
        this.log.info({ file: this.path, ...this.summary() }, 'policy file loaded');
    }
    this.source.every(() => this.reload());
  }

  /** Re-reads the file now; true when the policy in force is the file's current content. */
  async reload(): Promise<boolean> {
    const read = await this.source.read();
    if (read.kind === 'unchanged') return true;
    if (read.kind === 'unreadable') {
      this.metrics.policyReloads.inc({ outcome: 'unreadable' });
      this.log.warn({ file: this.path, error: read.error }, 'could not re-read the policy file: keeping the last good policy');
      return false;
    }
    const parsed = parsePolicy(read.text, this.path);
    if (!parsed.ok) {
      this.metrics.policyReloads.inc({ outcome: 'invalid' });
      this.log.warn({ file: this.path, problems: parsed.errors }, 'the changed policy file is invalid: keeping the last good policy');
      return false;
    }
    this.policy = parsed.policy;
    this.metrics.policyReloads.inc({ outcome: 'ok' });
    this.log.info({ file: this.path, ...this.summary() }, 'policy file reloaded');
    return true;
  }

  close(): void {
    this.source.close();
  }

  private summary(): { modelRules: number; limits: number } {
    return { modelRules: this.policy.models.length, limits: this.policy.limits.length };
  }
}
