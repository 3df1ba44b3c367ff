/**
 * What `setup` and `grant` report per step, and the reporter they report to: the CLI prints one
 * line per step (and a progress indicator while waiting on the network), `dev` and tests collect
 * them. The library never writes to the terminal itself.
 */

export type StepOutcome = 'created' | 'updated' | 'unchanged' | 'removed' | 'would create' | 'would update' | 'would remove';

export interface StepReport {
  /** Stable identifier, e.g. `app`, `scope`, `cluster_role`, `role_assignment`, `app_role_assignment`. */
  readonly step: string;
  /** The documentation's step number (1-7), when the step is one of them. */
  readonly seedStep?: number;
  /** What the step is about, for humans: `scope foundry_access`. */
  readonly subject: string;
  readonly outcome: StepOutcome;
  /** What changed, or why nothing did. */
  readonly detail?: string;
}

export interface Reporter {
  step(report: StepReport): void;
  /** Runs `work` while saying what is being waited for (a spinner on a terminal). */
  waiting<T>(label: string, work: () => Promise<T>): Promise<T>;
}

/** Collects reports and shows nothing: for `dev`, tests and other library callers. */
export function collectingReporter(): Reporter & { readonly steps: StepReport[] } {
  const steps: StepReport[] = [];
  return {
    steps,
    step: (r) => steps.push(r),
    waiting: (_label, work) => work(),
  };
}

/** True when the outcome changed (or would change) something in Azure. */
export function isChange(outcome: StepOutcome): boolean {
  return outcome !== 'unchanged';
}

/** `created` -> `would create` for a dry run. */
export function planned(outcome: 'created' | 'updated' | 'removed', dryRun: boolean): StepOutcome {
  if (!dryRun) return outcome;
  return outcome === 'created' ? 'would create' : outcome === 'updated' ? 'would update' : 'would remove';
}
