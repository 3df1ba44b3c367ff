import { z } from 'zod';

/**
 * Injected faults, per endpoint family: answer with a status (and body), add latency, answer 429
 * with `Retry-After`, or drop the connection; optionally only for the next `count` matching calls.
 */

export const FAMILIES = ['discovery', 'jwks', 'token', 'graph', 'arm', 'msi', 'k8s'] as const;
export type Family = (typeof FAMILIES)[number];

export const FaultInputSchema = z.strictObject({
  family: z.enum(FAMILIES),
  /** Answer with this status instead of handling the request. */
  status: z.number().int().min(100).max(599).optional(),
  /** Response body for `status` (JSON); a family-specific error body when absent. */
  body: z.unknown().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  /** Delay before answering (or before handling normally when no status/drop is set). */
  latencyMs: z.number().int().min(0).max(600_000).optional(),
  /** `Retry-After` seconds; defaults to 1 for status 429. */
  retryAfterSeconds: z.number().int().min(0).optional(),
  /** Destroy the connection without an answer. */
  drop: z.boolean().optional(),
  /** Only this many matching calls; unlimited when absent. */
  count: z.number().int().min(1).optional(),
  /** Only this method. */
  method: z.string().optional(),
  /** Only paths containing this text (case-insensitive). */
  pathContains: z.string().optional(),
});
export type FaultInput = z.infer<typeof FaultInputSchema>;

export interface Fault extends FaultInput {
  readonly id: number;
  remaining: number | undefined;
  hits: number;
}

export class Faults {
  private list: Fault[] = [];
  private nextId = 1;

  add(input: FaultInput): Fault {
    const fault: Fault = { ...input, id: this.nextId++, remaining: input.count, hits: 0 };
    this.list.push(fault);
    return fault;
  }

  remove(id: number): boolean {
    const before = this.list.length;
    this.list = this.list.filter((f) => f.id !== id);
    return this.list.length !== before;
  }

  clear(): void {
    this.list = [];
  }

  all(): readonly Fault[] {
    return this.list;
  }

  /** The first fault that applies to this call, consumed by one; undefined when none. */
  take(family: Family, method: string, path: string): Fault | undefined {
    const p = path.toLowerCase();
    const fault = this.list.find(
      (f) =>
        f.family === family &&
        (f.method === undefined || f.method.toUpperCase() === method) &&
        (f.pathContains === undefined || p.includes(f.pathContains.toLowerCase())),
    );
    if (fault === undefined) return undefined;
    fault.hits++;
    if (fault.remaining !== undefined) {
      fault.remaining--;
      if (fault.remaining <= 0) this.list = this.list.filter((f) => f !== fault);
    }
    return fault;
  }
}

/** Counts calls per family and per route pattern + method; GET/HEAD/OPTIONS are reads, everything else a write. */
export class CallCounters {
  private readonly routes = new Map<string, { family: Family | 'admin'; method: string; route: string; count: number }>();

  record(family: Family | 'admin', method: string, route: string): void {
    const key = `${family} ${method} ${route}`;
    const entry = this.routes.get(key);
    if (entry) entry.count++;
    else this.routes.set(key, { family, method, route, count: 1 });
  }

  reset(): void {
    this.routes.clear();
  }

  snapshot(): CountersSnapshot {
    const families: Record<string, { total: number; reads: number; writes: number }> = {};
    for (const f of FAMILIES) families[f] = { total: 0, reads: 0, writes: 0 };
    const routes: CountersSnapshot['routes'] = [];
    let total = 0;
    for (const r of this.routes.values()) {
      if (r.family === 'admin') continue;
      const write = !isRead(r.method);
      const fam = (families[r.family] ??= { total: 0, reads: 0, writes: 0 });
      fam.total += r.count;
      if (write) fam.writes += r.count;
      else fam.reads += r.count;
      total += r.count;
      routes.push({ family: r.family, method: r.method, route: r.route, write, count: r.count });
    }
    routes.sort((a, b) => a.family.localeCompare(b.family) || a.route.localeCompare(b.route) || a.method.localeCompare(b.method));
    return { total, families, routes };
  }
}

export interface CountersSnapshot {
  readonly total: number;
  readonly families: Record<string, { total: number; reads: number; writes: number }>;
  readonly routes: Array<{ family: string; method: string; route: string; write: boolean; count: number }>;
}

export function isRead(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}
