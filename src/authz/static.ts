import { readFile, stat } from 'node:fs/promises';
import type { Principal } from '../contracts/principal.js';
import type { Logger } from '../ops/log.js';
import { parseRoleAssignmentsFile, type StaticModel } from './role-assignments-file.js';
import { sameScope, scopeCovers } from '../azure/scope.js';
import type { AccessSnapshot, AccessSource, EffectiveAssignment, EffectiveDenyAssignment } from './source.js';

/**
 * The `static` AccessSource (`--rbac static`): answers lookups from `--role-assignments-file` (format and
 * validation in role-assignments-file.ts), for sites that cannot reach ARM. An invalid file at start-up stops the
 * sidecar; an invalid file on reload is ignored (the last good one stays) with a warning.
 */

const DEFAULT_POLL_MS = 2_000;

/** The file could not be used at start-up; `problems` has one line per problem, each naming the file and entry. */
export class StaticFileError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'StaticFileError';
  }
}

/** The principal's object ID and every group it belongs to, directly or through nested groups (cycles are harmless). */
function identitiesOf(model: StaticModel, oid: string): Set<string> {
  const ids = new Set([oid]);
  const queue = [oid];
  for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
    for (const group of model.memberOf.get(id) ?? []) {
      if (!ids.has(group)) {
        ids.add(group);
        queue.push(group);
      }
    }
  }
  return ids;
}

function intersects(set: ReadonlySet<string>, ids: ReadonlySet<string>): boolean {
  for (const id of ids) if (set.has(id)) return true;
  return false;
}

export interface StaticAccessSourceOptions {
  readonly file: string;
  /** `--rbac-scope`; when absent the file's `scope` is used. */
  readonly scope?: string;
  readonly log: Logger;
  /** How often the file's mtime, size and inode are checked (default 2 s; 0 turns polling off). */
  readonly pollIntervalMs?: number;
}

export type ReloadResult = { readonly ok: true } | { readonly ok: false; readonly problems: readonly string[] };

interface FileStamp {
  readonly mtimeMs: number;
  readonly size: number;
  readonly ino: number;
}

function sameStamp(a: FileStamp | undefined, b: FileStamp): boolean {
  return a !== undefined && a.mtimeMs === b.mtimeMs && a.size === b.size && a.ino === b.ino;
}

export class StaticAccessSource implements AccessSource {
  readonly kind = 'static' as const;
  private timer: NodeJS.Timeout | undefined;
  private stamp: FileStamp | undefined;
  private reloading: Promise<ReloadResult> | undefined;
  private lastStatError: string | undefined;
  private readonly changeListeners: (() => void)[] = [];

  private constructor(
    private readonly opts: StaticAccessSourceOptions,
    private model: StaticModel,
    stamp: FileStamp,
  ) {
    this.stamp = stamp;
    const every = opts.pollIntervalMs ?? DEFAULT_POLL_MS;
    if (every > 0) {
      // A bug in a reload must never become an unhandled rejection that ends the process.
      this.timer = setInterval(() => {
        this.poll().catch((err: unknown) => opts.log.error({ err, file: opts.file }, 'role assignments file check failed'));
      }, every);
      this.timer.unref();
    }
  }

  /** Reads and validates the file; throws StaticFileError (one line per problem) when it cannot be used. */
  static async load(opts: StaticAccessSourceOptions): Promise<StaticAccessSource> {
    let stamp: FileStamp;
    let text: string;
    try {
      stamp = await stat(opts.file);
      text = await readFile(opts.file, 'utf8');
    } catch (err) {
      throw new StaticFileError([`${opts.file}: cannot read the role assignments file: ${describeIoError(err)}`]);
    }
    const result = parseRoleAssignmentsFile(text, opts.file, opts.scope);
    if (!result.ok) throw new StaticFileError(result.problems);
    const source = new StaticAccessSource(opts, result.model, stamp);
    const { fileScope } = result.model;
    if (opts.scope !== undefined && fileScope !== undefined && !sameScope(opts.scope, fileScope)) {
      opts.log.warn({ file: opts.file, fileScope, scope: opts.scope }, 'the file names another cluster scope; --rbac-scope wins');
    }
    opts.log.info({ file: opts.file, scope: result.model.scope, ...result.model.counts }, 'role assignments file loaded');
    return source;
  }

  /** The cluster scope decisions are made at: `--rbac-scope`, else the file's `scope`. */
  get scope(): string {
    return this.model.scope;
  }

  async lookup(principal: Principal, scope: string): Promise<AccessSnapshot> {
    const model = this.model;
    const ids = identitiesOf(model, principal.oid.toLowerCase());
    const assignments: EffectiveAssignment[] = [];
    for (const id of ids) {
      for (const a of model.assignments.get(id) ?? []) if (scopeCovers(a.scope, scope)) assignments.push(a);
    }
    const denyAssignments: EffectiveDenyAssignment[] = [];
    for (const d of model.denies) {
      const named = d.everyone || intersects(d.principals, ids);
      if (named && !intersects(d.exclude, ids) && scopeCovers(d.deny.scope, scope)) denyAssignments.push(d.deny);
    }
    return { assignments, denyAssignments };
  }

  /** Calls `listener` after each reload that applied a new file (the authorizer drops its cache then). */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  async readiness(): Promise<string | null> {
    return null;
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Re-reads the file now. A file that fails validation is not applied: the last good one stays, with a warning. */
  reload(): Promise<ReloadResult> {
    this.reloading ??= this.readAndApply().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  /** Reloads when the file's mtime, size or inode changed since it was last read. */
  async poll(): Promise<void> {
    let current: FileStamp;
    try {
      current = await stat(this.opts.file);
    } catch (err) {
      const why = describeIoError(err);
      if (why !== this.lastStatError)
        this.opts.log.warn({ file: this.opts.file, error: why }, 'role assignments file unreadable; keeping the last good one');
      this.lastStatError = why;
      return;
    }
    this.lastStatError = undefined;
    if (!sameStamp(this.stamp, current)) await this.reload();
  }

  private async readAndApply(): Promise<ReloadResult> {
    const file = this.opts.file;
    let text: string;
    try {
      this.stamp = await stat(file);
      text = await readFile(file, 'utf8');
    } catch (err) {
      const problems = [`${file}: cannot read the role assignments file: ${describeIoError(err)}`];
      this.opts.log.warn({ file, problems }, 'role assignments file not reloaded; keeping the last good one');
      return { ok: false, problems };
    }
    const result = parseRoleAssignmentsFile(text, file, this.opts.scope);
    let problems = result.ok ? [] : result.problems;
    if (result.ok && !sameScope(result.model.scope, this.model.scope)) {
      problems = [`${file}: scope changed from ${this.model.scope} to ${result.model.scope}; restart the sidecar to change the cluster scope`];
    }
    if (!result.ok || problems.length > 0) {
      this.opts.log.warn({ file, problems }, 'role assignments file not reloaded; keeping the last good one');
      return { ok: false, problems };
    }
    this.model = result.model;
    for (const listener of this.changeListeners) listener();
    this.opts.log.info({ file, scope: result.model.scope, ...result.model.counts }, 'role assignments file reloaded');
    return { ok: true };
  }
}

function describeIoError(err: unknown): string {
  if (err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string') {
    return err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code;
  }
  return err instanceof Error ? err.message : String(err);
}
