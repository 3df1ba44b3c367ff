// What the scenarios share in one run: the identity provider, the ARM emulator (started on first
// use, with every benchmark principal in its group), the principal numbers each scenario uses,
// and where processes are pinned.
import { cpus } from 'node:os';
import { startArmEmulator, SEED } from './emulator.mjs';
import { principalOid, startIdp } from './idp.mjs';
import { startNginx, staticServer } from './nginx.mjs';
import { freePort, pinned, progress, startBenchServer } from './proc.mjs';

/** Disjoint principal numbers per scenario, so no scenario finds another's decisions cached. */
export const PRINCIPALS = {
  throughput: 0,
  streaming: 1,
  abuse: 2,
  authzWarm: 3,
  forwardAuth: 4,
  /** 1,000 distinct cold principals. */
  authzCold: range(1_000, 1_000),
  /** One cold principal, 1,000 concurrent requests. */
  authzSingle: 2_500,
  /** Steady state. */
  authzSteady: range(3_000, 100),
  /** 10,000 principals authorized in the memory scenario. */
  memory: range(10_000, 10_000),
  /** 1,000 principals shared by three replicas. */
  replicas: range(30_000, 1_000),
};

function range(start, count) {
  return Array.from({ length: count }, (_, i) => start + i);
}

function allPrincipals() {
  return Object.values(PRINCIPALS).flatMap((v) => (Array.isArray(v) ? v : [v]));
}

/**
 * Pinning on a 2-CPU machine: the proxy under test gets CPU 1 to itself; wrk and the upstream
 * share CPU 0. With more CPUs the same split leaves the rest idle. Without taskset nothing is pinned.
 */
export function cpuLayout(mode) {
  if (mode === 'none' || cpus().length < 2) return { mode: 'none', proxy: undefined, load: undefined, upstream: undefined };
  return { mode: 'split', proxy: pinned('1'), load: pinned('0'), upstream: pinned('0') };
}

export async function createContext(options, tools) {
  const idp = await startIdp(SEED.tenantId);
  progress(`identity provider (discovery + JWKS, RS256 key ${idp.kid.slice(0, 8)}...) at ${idp.authority}`);
  const layout = cpuLayout(options.pin);
  let upstream;
  return {
    ...options,
    tools,
    idp,
    principals: PRINCIPALS,
    layout,
    arm: undefined,
    /** A static JSON upstream shared by the scenarios that only need one: nginx, or a Node server without it. */
    async staticUpstream() {
      upstream ??=
        tools.nginx !== undefined
          ? await startNginx(tools.nginx, 'static-upstream', staticServer, { cpus: layout.upstream })
          : await startBenchServer('static-upstream', 'static-upstream.mjs', ['--listen', `127.0.0.1:${await freePort()}`], {
              cpus: layout.upstream,
            });
      return upstream;
    },
    async close() {
      await upstream?.stop();
      await this.arm?.stop();
      await idp.close();
    },
  };
}

export async function startArmForRun(ctx) {
  if (ctx.arm === undefined) {
    const members = allPrincipals().map(principalOid);
    ctx.arm = await startArmEmulator(members);
    progress(
      `ARM emulator at ${ctx.arm.endpoints.armHttp} (${members.length.toLocaleString('en-US')} principals in a group with Cognitive Services OpenAI User at the cluster)`,
    );
  }
  return ctx.arm;
}
