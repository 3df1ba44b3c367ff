import { createServer } from 'node:net';

/** Which flag moves which port, so a port conflict names the way out. */
export interface PortUse {
  readonly port: number;
  /** What listens there, e.g. `the sidecar`. */
  readonly what: string;
  readonly flag: string;
}

export class PortInUseError extends Error {
  constructor(readonly use: PortUse) {
    super(portInUseMessage(use));
    this.name = 'PortInUseError';
  }
}

function portInUseMessage(use: PortUse): string {
  return `port ${use.port} on 127.0.0.1 (${use.what}) is already in use: choose another with ${use.flag} <port>, or ${use.flag} 0 for any free port`;
}

/** Resolves when 127.0.0.1:port can be bound now (port 0 always can); throws PortInUseError otherwise. */
export async function checkPortFree(use: PortUse): Promise<void> {
  if (use.port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new PortInUseError(use));
      else if (err.code === 'EACCES')
        reject(
          new Error(`port ${use.port} (${use.what}) needs privileges this user does not have: choose a port above 1023 with ${use.flag} <port>`),
        );
      else reject(err);
    });
    probe.listen({ port: use.port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** Every port at once, so one run reports every conflict rather than one per attempt. */
export async function checkPortsFree(uses: readonly PortUse[]): Promise<void> {
  const seen = new Map<number, PortUse>();
  const problems: string[] = [];
  for (const use of uses) {
    const other = use.port === 0 ? undefined : seen.get(use.port);
    if (other !== undefined) problems.push(`${use.flag} and ${other.flag} are both ${use.port}: give them different ports`);
    seen.set(use.port, use);
  }
  const results = await Promise.allSettled(uses.map((u) => checkPortFree(u)));
  for (const r of results) if (r.status === 'rejected') problems.push(r.reason instanceof Error ? r.reason.message : String(r.reason));
  if (problems.length > 0) throw new PortsUnavailableError(problems);
}

export class PortsUnavailableError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'PortsUnavailableError';
  }
}
