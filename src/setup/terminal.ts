import { styleText } from 'node:util';
import type { Reporter, StepOutcome, StepReport } from './report.js';

/**
 * Output for humans and scripts. Human lines go to stdout (stderr when `--json` owns stdout); a
 * progress indicator runs on stderr only when it is a terminal; color only on a terminal and never
 * with `NO_COLOR`. `--json` prints exactly one JSON document on stdout.
 */

type Style = Parameters<typeof styleText>[0];

export interface TerminalOptions {
  readonly json: boolean;
  readonly stdout?: NodeJS.WriteStream;
  readonly stderr?: NodeJS.WriteStream;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

const FRAMES = ['|', '/', '-', '\\'];

export class Terminal {
  readonly json: boolean;
  private readonly out: NodeJS.WriteStream;
  private readonly err: NodeJS.WriteStream;
  private readonly color: boolean;
  private readonly spin: boolean;
  private spinner: { timer: NodeJS.Timeout; label: string; frame: number } | undefined;

  constructor(opts: TerminalOptions) {
    this.json = opts.json;
    this.out = opts.stdout ?? process.stdout;
    this.err = opts.stderr ?? process.stderr;
    const env = opts.env ?? process.env;
    const noColor = env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '';
    const lines = this.json ? this.err : this.out;
    this.color = !noColor && env['TERM'] !== 'dumb' && lines.isTTY === true;
    this.spin = env['TERM'] !== 'dumb' && this.err.isTTY === true;
  }

  style(style: Style, text: string): string {
    return this.color ? styleText(style, text) : text;
  }

  /** A human line: stdout, or stderr when stdout carries the JSON document. */
  line(text = ''): void {
    this.clearSpinner();
    (this.json ? this.err : this.out).write(`${text}\n`);
  }

  /** A line that is not the command's result (warnings, errors): always stderr. */
  note(text: string): void {
    this.clearSpinner();
    this.err.write(`${text}\n`);
  }

  /** The one JSON document of `--json`. */
  document(value: unknown): void {
    this.clearSpinner();
    this.out.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  async waiting<T>(label: string, work: () => Promise<T>): Promise<T> {
    if (!this.spin) return work();
    this.startSpinner(label);
    try {
      return await work();
    } finally {
      this.clearSpinner();
    }
  }

  private startSpinner(label: string): void {
    this.clearSpinner();
    const spinner = { label, frame: 0, timer: setInterval(() => this.drawSpinner(), 80) };
    spinner.timer.unref();
    this.spinner = spinner;
    this.drawSpinner();
  }

  private drawSpinner(): void {
    const s = this.spinner;
    if (s === undefined) return;
    this.err.write(`\r\x1b[K${this.style('cyan', FRAMES[s.frame++ % FRAMES.length]!)} ${s.label}...`);
  }

  private clearSpinner(): void {
    if (this.spinner === undefined) return;
    clearInterval(this.spinner.timer);
    this.spinner = undefined;
    this.err.write('\r\x1b[K');
  }
}

const OUTCOME_STYLE: Record<StepOutcome, Style> = {
  created: 'green',
  updated: 'yellow',
  removed: 'yellow',
  unchanged: 'dim',
  'would create': 'cyan',
  'would update': 'cyan',
  'would remove': 'cyan',
};

/** One line per step: `created      [2] scope foundry_access  admin consent only, enabled`. */
export function stepLine(term: Terminal, r: StepReport): string {
  const outcome = term.style(OUTCOME_STYLE[r.outcome], r.outcome.padEnd(12));
  const seed = r.seedStep !== undefined ? `[${r.seedStep}] ` : '';
  return `${outcome} ${seed}${r.subject}${r.detail !== undefined ? term.style('dim', `  ${r.detail}`) : ''}`;
}

/** The Reporter the commands use: step lines as they happen, the spinner while waiting. */
export function terminalReporter(term: Terminal): Reporter {
  return {
    step: (r) => term.line(stepLine(term, r)),
    waiting: (label, work) => term.waiting(label, work),
  };
}
