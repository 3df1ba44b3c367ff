import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Authenticator } from './authn/authenticate.js';
import { createArmSource } from './authz/arm.js';
import { createAuthorizer, createStaticAuthorizer, type CachingAuthorizer } from './authz/authorizer.js';
import { LocalReadBudget } from './authz/read-budget.js';
import { StaticFileError } from './authz/static.js';
import { IdentityConfigError } from './azure/token-provider.js';
import type { ServeConfig } from './config/config.js';
import { ForwardAuthServer } from './forward-auth/server.js';
import { Gateway } from './http/gateway.js';
import { DecisionCore } from './pipeline/decide.js';
import { DEFAULT_ROUTES, RouteTable, loadRoutesFile } from './pipeline/routes.js';
import { AdminServer, type CacheFlush, type ReadinessCheck } from './ops/admin.js';
import { systemClock, type Clock } from './ops/clock.js';
import { createLogger, type Logger } from './ops/log.js';
import { Metrics } from './ops/metrics.js';
import { PolicyStage } from './policy/enforce.js';
import { Limiter } from './policy/limiter.js';
import { PolicyFile, PolicyFileError } from './policy/policy-file.js';
import { InProcessWindows, SharedCounterWindows, SharedWindows, type SharedCounter } from './policy/windows.js';
import { Forwarder } from './proxy/forward.js';
import { openSharedCache, SharedConnection, type SharedCache } from './shared-cache/index.js';
import { UpstreamApiKey } from './proxy/upstream-key.js';

/** A configuration problem found while building the stages (files, identity environment): exit 2. */
export class StartupError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'StartupError';
  }
}

export interface Sidecar {
  /** `http://host:port` of the client listener and the admin listener, as bound. */
  readonly url: string;
  readonly adminUrl: string;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Drain and stop: readiness 503, no new connections, in-flight requests finish within `--shutdown-grace`. */
  shutdown(): Promise<void>;
}

export interface SidecarOverrides {
  readonly clock?: Clock;
  readonly log?: Logger;
}

/**
 * The composition root: builds each stage from the validated configuration, declares the chain
 * (gateway -> authn -> authz -> forwarder), binds both listeners. Used by `serve` and by tests.
 */
export async function startSidecar(config: ServeConfig, overrides: SidecarOverrides = {}): Promise<Sidecar> {
  const clock = overrides.clock ?? systemClock;
  const log = overrides.log ?? createLogger({ level: config.logLevel, format: config.logFormat });
  // Forward-auth series carry mode="forward-auth"; proxy mode's keep their labels as they were (mode="" in PromQL).
  const metrics = new Metrics(config.mode === 'forward-auth' ? { mode: config.mode } : {});

  const routes = buildRoutes(config);
  const authn = new Authenticator({
    ...(config.entra ? { entra: config.entra } : {}),
    ...(config.apiKeysFile !== undefined ? { apiKeysFile: config.apiKeysFile } : {}),
    clock,
    log,
    metrics,
  });
  const { authz, flush, shared } = await buildAuthorizer(config, { clock, log, metrics });
  const decider = new DecisionCore({ routes, publicPaths: config.publicPaths, authn, authz });
  const policy = await buildPolicy(config, { clock, log, metrics }, shared?.connection);
  // Proxy mode forwards; forward-auth mode answers the checks of a proxy that forwards itself.
  let forwarder: Forwarder | undefined;
  let upstreamApiKey: UpstreamApiKey | undefined;
  let gateway: Gateway | ForwardAuthServer;
  if (config.mode === 'proxy') {
    if (config.upstreamApiKeyFile !== undefined) upstreamApiKey = new UpstreamApiKey(config.upstreamApiKeyFile, log);
    forwarder = Forwarder.fromConfig(config, metrics, upstreamApiKey);
    gateway = new Gateway({
      decider,
      forwarder,
      log,
      metrics,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      ...(policy ? { policy: policy.stage } : {}),
    });
  } else {
    const { forwardAuth, forwardAuthorization } = config;
    gateway = new ForwardAuthServer({
      decider,
      forwardAuth,
      forwardAuthorization,
      clock,
      denyTtlMs: config.rbac.denyTtlMs,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      log,
      metrics,
    });
  }

  const checks: ReadinessCheck[] = [];
  if (config.entra) checks.push({ name: 'signingKeys', check: () => authn.readiness() });
  checks.push({ name: config.rbac.mode === 'arm' ? 'armToken' : 'roleAssignments', check: () => authz.readiness() });
  const upstreamKey = upstreamApiKey;
  if (upstreamKey) checks.push({ name: 'upstreamApiKey', check: () => upstreamKey.readiness() });
  const admin = new AdminServer(metrics, checks, flush);

  await authn.start();
  await upstreamApiKey?.start();
  const socket = config.mode === 'forward-auth' ? config.forwardAuth.socket : undefined;
  const url = socket !== undefined ? await listenUnix(gateway.server, socket) : await listen(gateway.server, config.listen.host, config.listen.port);
  const adminUrl = await listen(admin.server, config.adminListen.host, config.adminListen.port);
  log.info(
    {
      listen: url,
      admin: adminUrl,
      mode: config.mode,
      ...(config.mode === 'proxy'
        ? { upstream: config.upstream.href, controlUpstream: config.controlUpstream.href }
        : {
            profile: config.forwardAuth.profile,
            trustedProxies:
              config.forwardAuth.socket !== undefined ? ['unix'] : config.forwardAuth.trustedProxies.map((p) => `${p.address}/${p.prefix}`),
          }),
      entra: config.entra ? { tenantId: config.entra.tenantId, clientId: config.entra.clientId, authority: config.entra.authority } : undefined,
      apiKeys: config.apiKeysFile !== undefined,
      rbac: config.rbac.mode,
      scope: config.rbac.scope,
      sharedCache: shared === undefined ? undefined : { available: shared.connection.available },
    },
    'foundry-auth serve listening',
  );

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> =>
    (stopping ??= (async () => {
      log.info({ graceMs: config.shutdownGraceMs }, 'shutting down: draining in-flight requests');
      admin.startDraining();
      gateway.startDraining();
      await drain(gateway.server, config.shutdownGraceMs, log);
      upstreamApiKey?.close();
      await Promise.allSettled([policy?.close(), forwarder?.close(), authz.close(), authn.close()]);
      await shared?.close();
      await close(admin.server);
      log.info('stopped');
      // The log is buffered (batched writer, or the pretty transport's thread): write out what is pending before the process exits.
      await new Promise<void>((resolve) => log.flush(() => resolve()));
    })());

  return { url, adminUrl, log, metrics, shutdown };
}

/** `serve`: start, then stop cleanly on SIGTERM/SIGINT with exit code 0; configuration problems exit 2. */
export async function runSidecar(config: ServeConfig): Promise<void> {
  let sidecar: Sidecar;
  try {
    sidecar = await startSidecar(config);
  } catch (err) {
    if (err instanceof StartupError) {
      for (const line of err.problems) process.stderr.write(`foundry-auth serve: ${line}\n`);
      process.exit(2);
    }
    throw err;
  }
  const stop = (signal: NodeJS.Signals): void => {
    sidecar.log.info({ signal }, 'signal received');
    void sidecar.shutdown().then(() => process.exit(0));
  };
  // `on`, not `once`: a second signal while draining must not take the default action (exit 143) and cut in-flight streams.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function buildRoutes(config: ServeConfig): RouteTable {
  if (config.routesFile === undefined) return new RouteTable(DEFAULT_ROUTES);
  const loaded = loadRoutesFile(config.routesFile);
  if (!loaded.ok) throw new StartupError(loaded.errors.map((e) => `--routes-file / FOUNDRY_AUTH_ROUTES_FILE: ${e}`));
  return new RouteTable(loaded.routes);
}

/** What the grant command in a 403 needs besides the cluster and the assignee, so it runs as printed. */
function grantArgs(config: ServeConfig): string[] {
  return [
    ...(config.devStateDir !== undefined ? ['--dev', config.devStateDir] : []),
    ...(config.entra !== undefined ? ['--client-id', config.entra.clientId] : []),
  ];
}

/**
 * `--policy-file`: read now (invalid = exit 2); limit windows in the shared cache when there is one (per process while it fails), else per process.
 * `shared` is the authorizer's connection (`--rbac arm`); in the other modes `--shared-cache` opens one for the windows alone, which `close` ends.
 */
async function buildPolicy(
  config: ServeConfig,
  deps: { clock: Clock; log: Logger; metrics: Metrics },
  shared: SharedCounter | undefined,
): Promise<{ file: PolicyFile; stage: PolicyStage; close(): Promise<void> } | undefined> {
  if (config.policyFile === undefined) return undefined;
  const file = new PolicyFile(config.policyFile, deps.log, deps.metrics);
  try {
    await file.start();
  } catch (err) {
    if (err instanceof PolicyFileError) throw new StartupError(err.problems.map((p) => `--policy-file / FOUNDRY_AUTH_POLICY_FILE: ${p}`));
    throw err;
  }
  const own =
    shared === undefined && config.sharedCache !== undefined ? await SharedConnection.open({ config: config.sharedCache, ...deps }) : undefined;
  const counter = shared ?? own;
  const local = new InProcessWindows(deps.clock);
  const windows = counter === undefined ? local : new SharedWindows(new SharedCounterWindows(counter), local, deps.clock, deps.log, deps.metrics);
  const limiter = new Limiter(windows, deps.clock);
  return {
    file,
    stage: new PolicyStage({ file, limiter, metrics: deps.metrics, log: deps.log, maxBodyBytes: config.maxBodyBytes }),
    close: async () => {
      file.close();
      await own?.close();
    },
  };
}

interface BuiltAuthorizer {
  readonly authz: CachingAuthorizer;
  readonly flush: CacheFlush;
  readonly shared?: SharedCache;
}

/** `POST /cache/flush` for an authorizer: this process's memory, and through the shared cache every replica's. */
function flushOf(authz: CachingAuthorizer, config: ServeConfig, shared?: SharedCache): CacheFlush {
  const tenants = config.entra?.allowedTenants ?? [];
  return async (oid) => {
    if (oid === undefined) authz.clearCache();
    else authz.dropPrincipal(oid);
    if (shared === undefined) return { reach: 'local', sharedUnavailable: false };
    const reached = await shared.decisions.flush(oid === undefined ? undefined : { oid, tenants });
    return { reach: reached ? 'shared' : 'local', sharedUnavailable: !reached };
  };
}

async function buildAuthorizer(config: ServeConfig, deps: { clock: Clock; log: Logger; metrics: Metrics }): Promise<BuiltAuthorizer> {
  const built = await buildAuthorizerOnly(config, deps);
  return { ...built, flush: flushOf(built.authz, config, built.shared) };
}

async function buildAuthorizerOnly(
  config: ServeConfig,
  deps: { clock: Clock; log: Logger; metrics: Metrics },
): Promise<Omit<BuiltAuthorizer, 'flush'>> {
  const { rbac } = config;
  if (rbac.mode === 'static') {
    if (config.sharedCache !== undefined)
      deps.log.warn(
        { sharedLimitWindows: config.policyFile !== undefined },
        "--shared-cache is not used for RBAC with --rbac static: decisions come from the local file, with no ARM reads to share (a policy file's limit windows are still shared)",
      );
    try {
      return { authz: await createStaticAuthorizer(rbac, deps) };
    } catch (err) {
      if (err instanceof StaticFileError)
        throw new StartupError(err.problems.map((p) => `--role-assignments-file / FOUNDRY_AUTH_ROLE_ASSIGNMENTS_FILE: ${p}`));
      throw err;
    }
  }
  if (rbac.scope === undefined) {
    // API keys only: no principal ever reaches RBAC except api-key ones, which the authorizer handles without a source.
    return { authz: createAuthorizer({ rbac, source: NO_SOURCE, scope: '/', ...deps }) };
  }
  const scope = rbac.scope;
  const shared =
    config.sharedCache === undefined
      ? undefined
      : await openSharedCache({ config: config.sharedCache, rbac: { ...rbac, scope }, ...(config.entra ? { entra: config.entra } : {}), ...deps });
  try {
    const budget = shared?.budget ?? new LocalReadBudget({ rate: rbac.armReadRate, clock: deps.clock, metrics: deps.metrics });
    const source = createArmSource({ rbac, scope, budget, ...deps });
    source.start();
    const authz = createAuthorizer({
      rbac,
      source,
      scope,
      ...deps,
      grantArgs: grantArgs(config),
      ...(shared !== undefined ? { shared: shared.decisions } : {}),
    });
    shared?.decisions.onFlush((flushed) => (flushed.kind === 'all' ? authz.clearCache() : authz.dropShared(flushed.keys)));
    return { authz, ...(shared !== undefined ? { shared } : {}) };
  } catch (err) {
    await shared?.close();
    if (err instanceof IdentityConfigError) throw new StartupError([`--identity / FOUNDRY_AUTH_IDENTITY: ${err.message}`]);
    throw err;
  }
}

/** The source used when only API keys are configured: API-key principals never consult it. */
const NO_SOURCE = {
  kind: 'static' as const,
  lookup: (): never => {
    throw new Error('no authorization source: only API keys are configured');
  },
  readiness: async (): Promise<string | null> => null,
  close: async (): Promise<void> => {},
};

async function listen(server: Server, host: string, port: number): Promise<string> {
  await listening(
    server,
    (done) => server.listen(port, host, done),
    (err) =>
      err.code === 'EADDRINUSE' ? new StartupError([`${host}:${port} is already in use: choose another port with --listen / --admin-listen`]) : err,
  );
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${shown}:${address.port}`;
}

/** Starts listening; a listen error (port in use, no permission) becomes what `failure` makes of it. */
function listening(server: Server, start: (done: () => void) => void, failure: (err: NodeJS.ErrnoException) => Error): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(failure(err));
    server.once('error', onError);
    start(() => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * `--forward-auth-socket`: listen on a Unix socket. A socket file left by a process that is gone
 * is replaced; a socket another process still answers on, or a file that is not a socket, stops
 * start-up. The socket is made connectable for every user (0666): who can reach it is decided by
 * the permissions of the directory it is in.
 */
async function listenUnix(server: Server, path: string): Promise<string> {
  let isSocket: boolean | undefined;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StartupError([`--forward-auth-socket: cannot use ${path}: ${String(err)}`]);
  }
  if (isSocket === false) throw new StartupError([`--forward-auth-socket: ${path} exists and is not a socket: remove it or choose another path`]);
  if (isSocket === true) {
    if (await answers(path)) throw new StartupError([`--forward-auth-socket: ${path} is in use by another process`]);
    unlinkSync(path);
  }
  await listening(
    server,
    (done) => server.listen(path, done),
    (err) => new StartupError([`--forward-auth-socket: cannot listen on ${path}: ${err.code ?? err.message}`]),
  );
  chmodSync(path, 0o666);
  return `unix:${path}`;
}

/** Whether something accepts connections on the Unix socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Stop accepting, let in-flight requests (streams too) finish, and cut whatever is left when the grace ends. */
async function drain(server: Server, graceMs: number, log: Logger): Promise<void> {
  const closed = close(server);
  const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  const outcome = await Promise.race([closed.then(() => 'drained' as const), graceOver]);
  clearInterval(idleSweep);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    log.warn({ graceMs }, 'shutdown grace ended with requests still in flight; closing their connections');
    server.closeAllConnections();
    await closed;
  }
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
