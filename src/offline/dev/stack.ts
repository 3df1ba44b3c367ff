import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { request } from 'undici';
import { z } from 'zod';
import { clusterResourceId } from '../emulator/state.js';
import { writeAzureCliEnv } from './azure-cli-env.js';
import { bannerText, demoCommands, type BannerInput } from './banner.js';
import { demoPasswords, seedDemoPrincipals, type DemoUser, type DemoUserName } from './demo-principals.js';
import { demoTokens, type DemoTokens } from './demo-tokens.js';
import { EmulatorClient, EmulatorReadySchema, type EmulatorReady } from './emulator-client.js';
import { findLogLine, readJsonFile, writePrivate } from './files.js';
import { stateLayout, type StateLayout } from './layout.js';
import { checkPortsFree, PortsUnavailableError, type PortUse } from './ports.js';
import { deathMessage, Processes, startupDeathMessage } from './processes.js';
import { setUpPolicyDemo } from './policy-demo.js';
import { EMULATOR_ADMIN, registerAndGrant } from './registration.js';
import { lockStateDir, writeRunningFile } from './running.js';
import { ChildDiedError, StartupAborted, waitFor } from './wait.js';

/**
 * `foundry-auth dev`: the emulator, the sample backend and the sidecar as child processes on
 * loopback; the demo app registered through setup's code and the demo principals granted their
 * access; dev.json written and a banner of copy-paste commands printed; Ctrl-C stops everything.
 */

export interface DevOptions {
  readonly stateDir: string;
  readonly sidecarPort: number;
  readonly adminPort: number;
  readonly backendPort: number;
  readonly emulatorHttpsPort: number;
  readonly emulatorHttpPort: number;
  readonly tokenRate?: number;
  readonly fresh: boolean;
}

export interface DevOutput {
  out(text: string): void;
  err(text: string): void;
}

/** The sidecar's own drain time, shorter than the stop grace so it always exits by itself. */
const SIDECAR_SHUTDOWN_GRACE = '5s';
/** How long dev's sidecar caches a deny (the default is 30 s). */
const DEV_DENY_TTL = '2s';
/** Per process; a cold start on two cores takes a few seconds. */
const STARTUP_DEADLINE_MS = 60_000;
/** User tokens live about 80 minutes: dev.json is renewed well before. */
const TOKEN_RENEWAL_MS = 30 * 60_000;
/** Two interrupts closer than this are one Ctrl-C delivered twice. */
const DUPLICATE_SIGNAL_MS = 1000;
/** The deployment `dev` creates in the sample backend, so the control-plane example has something to change. */
const DEMO_DEPLOYMENT = { namespace: 'default', name: 'phi-4-mini' } as const;

const BackendReady = z.object({ url: z.string() });
const SidecarListening = z.object({ msg: z.literal('foundry-auth serve listening'), listen: z.string(), admin: z.string() });
const ClusterView = z.object({
  clusters: z.array(z.object({ name: z.string(), subscriptionId: z.string(), resourceGroup: z.string(), isDefault: z.boolean() })),
});

/** Everything known once the stack is up. */
interface RunningStack {
  readonly emulator: EmulatorClient;
  readonly endpoints: EmulatorReady;
  readonly backendUrl: string;
  readonly sidecar: { readonly listen: string; readonly admin: string };
  readonly clientId: string;
  readonly clusterId: string;
  readonly users: Readonly<Record<DemoUserName, DemoUser>>;
  readonly issued: DemoTokens;
}

/** Runs until Ctrl-C/SIGTERM (exit code 0) or a child's death (1); start-up problems also end in 1. */
export async function runDev(opts: DevOptions, output: DevOutput): Promise<number> {
  const startedAt = performance.now();
  const layout = stateLayout(resolve(opts.stateDir));
  let unlock: () => void;
  try {
    mkdirSync(layout.runDir, { recursive: true, mode: 0o700 });
    unlock = lockStateDir(layout);
  } catch (err) {
    output.err(`foundry-auth dev: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const processes = new Processes((started) => writeRunningFile(layout, { pid: process.pid, children: started.pids() }));
  const interrupts = listenForInterrupts(processes, output);
  let stack: RunningStack | undefined;
  try {
    prepareStateDir(layout, opts.fresh, output);
    await checkPortsFree(portUses(opts));
    output.out(`foundry-auth dev: starting the emulator, the sample backend and the sidecar (state in ${layout.dir})\n`);
    stack = await bringUp(opts, layout, processes, interrupts.signal, output);
    publish(stack, layout, opts.stateDir, processes, performance.now() - startedAt, output);
    const renewal = renewTokens(stack, layout, output);
    try {
      return await runUntilStopped(processes, interrupts.signalled, output);
    } finally {
      clearInterval(renewal);
    }
  } catch (err) {
    return await failedStartup(err, processes, output);
  } finally {
    interrupts.dispose();
    for (const f of [layout.stackJson, layout.readyFile('emulator'), layout.readyFile('backend')]) rmSync(f, { force: true });
    unlock();
    await stack?.emulator.close();
  }
}

async function bringUp(opts: DevOptions, layout: StateLayout, processes: Processes, signal: AbortSignal, output: DevOutput): Promise<RunningStack> {
  const waitOptions = { signal, timeoutMs: STARTUP_DEADLINE_MS };
  const emulatorProcess = processes.start({
    name: 'emulator',
    logFile: layout.log('emulator'),
    args: [
      'emulator',
      '--host',
      '127.0.0.1',
      '--https-port',
      String(opts.emulatorHttpsPort),
      '--http-port',
      String(opts.emulatorHttpPort),
      '--state',
      layout.emulatorState,
      '--ready-file',
      layout.readyFile('emulator'),
    ],
  });
  const backendProcess = processes.start({
    name: 'sample backend',
    logFile: layout.log('backend'),
    args: [
      'sample-backend',
      '--listen',
      `127.0.0.1:${opts.backendPort}`,
      '--ready-file',
      layout.readyFile('backend'),
      ...(opts.tokenRate === undefined ? [] : ['--token-rate', String(opts.tokenRate)]),
    ],
  });
  const [endpoints, backendUrl] = await Promise.all([
    waitFor(() => readJsonFile(layout.readyFile('emulator'), EmulatorReadySchema), { ...waitOptions, what: 'the emulator', child: emulatorProcess }),
    waitFor(() => readJsonFile(layout.readyFile('backend'), BackendReady)?.url, {
      ...waitOptions,
      what: 'the sample backend',
      child: backendProcess,
    }),
  ]);

  const emulator = new EmulatorClient(endpoints, readFileSync(endpoints.caCert, 'utf8'));
  try {
    const { users } = await seedDemoPrincipals(emulator, demoPasswords(layout.demoSecrets));
    const clusterId = await defaultClusterId(emulator);
    const registration = await registerAndGrant(emulator, clusterId, users);
    for (const change of registration.changes) output.out(`  ${change}\n`);
    const policyFile = await setUpPolicyDemo(emulator, registration.clientId, users, layout.dir);
    await createDemoDeployment(backendUrl);
    if (signal.aborted) throw new StartupAborted();

    const sidecarProcess = processes.start({
      name: 'sidecar',
      logFile: layout.log('sidecar'),
      // The authority is the emulator's HTTPS listener, as Entra ID's is: the sidecar trusts its CA.
      env: { NODE_EXTRA_CA_CERTS: endpoints.caCert },
      args: [
        'serve',
        '--listen',
        `127.0.0.1:${opts.sidecarPort}`,
        '--admin-listen',
        `127.0.0.1:${opts.adminPort}`,
        '--upstream',
        backendUrl,
        '--tenant-id',
        endpoints.tenantId,
        '--client-id',
        registration.clientId,
        '--authority',
        endpoints.authority,
        '--rbac',
        'arm',
        '--rbac-scope',
        clusterId,
        '--arm-endpoint',
        endpoints.arm,
        '--identity',
        'msi-adapter',
        '--msi-endpoint',
        endpoints.msiHttp,
        '--policy-file',
        policyFile,
        '--shutdown-grace',
        SIDECAR_SHUTDOWN_GRACE,
        // A grant pasted from a 403 shows at the next request, not 30 s later.
        '--rbac-deny-ttl',
        DEV_DENY_TTL,
        // The 403's grant command then says --dev and acts on this stack, as typed from where dev was started.
        '--dev-state-dir',
        opts.stateDir,
        '--log-format',
        'json',
      ],
    });
    const tokens = demoTokens(emulator, registration.clientId, users);
    tokens.catch(() => undefined); // awaited below; a failure while the sidecar starts must not go unhandled
    const sidecar = await waitFor(() => findLogLine(layout.log('sidecar'), 'foundry-auth serve listening', SidecarListening), {
      ...waitOptions,
      what: 'the sidecar',
      child: sidecarProcess,
    });
    await waitFor(() => isReady(`${sidecar.admin}/readyz`), {
      ...waitOptions,
      what: 'the sidecar to be ready (/readyz)',
      child: sidecarProcess,
      intervalMs: 100,
    });
    return { emulator, endpoints, backendUrl, sidecar, clientId: registration.clientId, clusterId, users, issued: await tokens };
  } catch (err) {
    await emulator.close();
    throw err;
  }
}

/** dev.json (SPEC section 9), the v1 token, commands.json, run/stack.json, and the banner. */
function publish(stack: RunningStack, layout: StateLayout, stateDirArg: string, processes: Processes, readyInMs: number, output: DevOutput): void {
  writeDevJson(stack, layout, stack.issued);
  writePrivate(layout.v1Token, `${stack.issued.v1}\n`);
  writeAzureCliEnv(layout, stack.endpoints);
  const banner: BannerInput = {
    sidecar: stack.sidecar.listen,
    sidecarAdmin: stack.sidecar.admin,
    backend: stack.backendUrl,
    emulator: stack.endpoints.https,
    tenantId: stack.endpoints.tenantId,
    clientId: stack.clientId,
    clusterId: stack.clusterId,
    devJson: layout.devJson,
    v1TokenFile: layout.v1Token,
    logsDir: layout.logsDir,
    sidecarLog: layout.log('sidecar'),
    deployment: DEMO_DEPLOYMENT,
    readyInMs,
    cwd: process.cwd(),
    stateDirArg: stateDirArg,
    azEnvFile: layout.azEnv,
    demoSecretsFile: layout.demoSecrets,
  };
  const commands = demoCommands(banner);
  writeFileSync(layout.commandsJson, `${JSON.stringify({ commands }, null, 2)}\n`);
  writeRunningFile(layout, {
    pid: process.pid,
    children: processes.pids(),
    sidecar: stack.sidecar.listen,
    sidecarAdmin: stack.sidecar.admin,
    emulatorAdmin: stack.endpoints.admin,
    caCert: stack.endpoints.caCert,
    emulator: stack.endpoints,
    admin: EMULATOR_ADMIN,
  });
  output.out(bannerText(banner, commands));
}

function writeDevJson(stack: RunningStack, layout: StateLayout, issued: DemoTokens): void {
  const devJson = {
    sidecar: stack.sidecar.listen,
    backend: stack.backendUrl,
    emulator: stack.endpoints.https,
    tenantId: stack.endpoints.tenantId,
    clientId: stack.clientId,
    clusterId: stack.clusterId,
    tokens: issued.tokens,
  };
  writePrivate(layout.devJson, `${JSON.stringify(devJson, null, 2)}\n`);
}

/** Keeps the tokens in dev.json usable for as long as the stack runs. */
function renewTokens(stack: RunningStack, layout: StateLayout, output: DevOutput): NodeJS.Timeout {
  const timer = setInterval(() => {
    demoTokens(stack.emulator, stack.clientId, stack.users).then(
      (issued) => writeDevJson(stack, layout, issued),
      (err: unknown) => output.err(`foundry-auth dev: could not renew the tokens in dev.json: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  }, TOKEN_RENEWAL_MS);
  timer.unref();
  return timer;
}

async function runUntilStopped(processes: Processes, signalled: Promise<string>, output: DevOutput): Promise<number> {
  const outcome = await Promise.race([signalled.then((signal) => ({ signal })), processes.firstDeath().then((death) => ({ death }))]);
  if ('death' in outcome) {
    output.err(deathMessage(outcome.death));
    await processes.stopAll();
    return 1;
  }
  output.out(`\nfoundry-auth dev: ${outcome.signal}, stopping the sidecar, the sample backend and the emulator\n`);
  await processes.stopAll();
  output.out('foundry-auth dev: stopped\n');
  return 0;
}

async function failedStartup(err: unknown, processes: Processes, output: DevOutput): Promise<number> {
  if (err instanceof StartupAborted) {
    await processes.stopAll();
    output.out('foundry-auth dev: stopped before the stack was ready\n');
    return 0;
  }
  // A child that died explains a failed call to it better than the call's error does.
  const dead = err instanceof ChildDiedError ? err.child : processes.dead();
  if (err instanceof PortsUnavailableError) output.err(err.problems.map((p) => `foundry-auth dev: ${p}\n`).join(''));
  else if (dead !== undefined) output.err(startupDeathMessage(dead));
  else output.err(`foundry-auth dev: ${err instanceof Error ? err.message : String(err)}\n`);
  await processes.stopAll();
  return 1;
}

interface Interrupts {
  /** Aborts start-up waits. */
  readonly signal: AbortSignal;
  /** The first SIGINT/SIGTERM/SIGHUP, or the parent's exit: why the stack stops. */
  readonly signalled: Promise<string>;
  dispose(): void;
}

/** How often `dev` checks that the process that started it (npm, a shell, a test) is still there. */
const PARENT_CHECK_MS = 500;

/**
 * The first interrupt stops the stack cleanly; another one, a moment later, kills the children at
 * once. Under `npm start` one Ctrl-C can arrive twice (from the terminal and forwarded by npm), so
 * a repeat within DUPLICATE_SIGNAL_MS is the same interrupt. When the parent goes away without a
 * signal (npm killed by SIGTERM does not pass it on), `dev` is re-parented: that stops the stack too.
 */
function listenForInterrupts(processes: Processes, output: DevOutput): Interrupts {
  const controller = new AbortController();
  let first: ((why: string) => void) | undefined;
  let firstAt = 0;
  const signalled = new Promise<string>((resolveSignal) => (first = resolveSignal));
  const stop = (why: string): boolean => {
    if (controller.signal.aborted) return false;
    firstAt = performance.now();
    controller.abort();
    first?.(why);
    return true;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stop(`${signal} received`)) return;
    if (performance.now() - firstAt < DUPLICATE_SIGNAL_MS) return;
    output.err('foundry-auth dev: interrupted again: killing the processes now\n');
    processes.killAll();
  };
  const parent = process.ppid;
  const parentWatch = setInterval(() => {
    if (process.ppid !== parent) stop(`the process that started it (PID ${parent}) exited`);
  }, PARENT_CHECK_MS);
  parentWatch.unref();
  const onExit = (): void => processes.killAll();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, onSignal);
  process.once('exit', onExit);
  return {
    signal: controller.signal,
    signalled,
    dispose() {
      clearInterval(parentWatch);
      for (const s of signals) process.off(s, onSignal);
      process.off('exit', onExit);
    },
  };
}

function portUses(opts: DevOptions): PortUse[] {
  return [
    { port: opts.sidecarPort, what: 'the sidecar', flag: '--sidecar-port' },
    { port: opts.adminPort, what: "the sidecar's admin listener", flag: '--admin-port' },
    { port: opts.backendPort, what: 'the sample backend', flag: '--backend-port' },
    { port: opts.emulatorHttpsPort, what: "the emulator's HTTPS listener", flag: '--emulator-https-port' },
    { port: opts.emulatorHttpPort, what: "the emulator's HTTP listener", flag: '--emulator-http-port' },
  ];
}

/**
 * The state directory: the emulator state (kept across runs: its RSA keys are the slow part of a
 * cold start), the demo passwords, logs and ready files. `--fresh` starts over.
 */
function prepareStateDir(layout: StateLayout, fresh: boolean, output: DevOutput): void {
  mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
  mkdirSync(layout.logsDir, { recursive: true });
  mkdirSync(layout.runDir, { recursive: true });
  // The users' passwords live only in the secrets file: without it the saved directory is of no use.
  const orphaned = !fresh && existsSync(layout.emulatorState) && !existsSync(layout.demoSecrets);
  if (orphaned) output.out(`foundry-auth dev: ${layout.demoSecrets} is missing, so the saved emulator state is discarded\n`);
  if (fresh || orphaned) {
    for (const f of [layout.emulatorState, layout.emulatorCa, layout.demoSecrets, layout.devJson, layout.v1Token, layout.commandsJson, layout.azEnv])
      rmSync(f, { force: true });
    // The Azure CLI's sign-ins and token cache belong to the old tenant and CA.
    rmSync(layout.azConfigDir, { recursive: true, force: true });
  }
  for (const f of [layout.readyFile('emulator'), layout.readyFile('backend')]) rmSync(f, { force: true });
}

async function isReady(url: string): Promise<true | undefined> {
  try {
    const res = await request(url);
    await res.body.dump();
    return res.statusCode === 200 ? true : undefined;
  } catch {
    return undefined;
  }
}

async function defaultClusterId(emulator: EmulatorClient): Promise<string> {
  const { clusters } = ClusterView.parse(await emulator.admin('GET', '/state'));
  const cluster = clusters.find((c) => c.isDefault) ?? clusters[0];
  if (cluster === undefined) throw new Error('the emulator has no connected cluster; start over with --fresh');
  return clusterResourceId(cluster);
}

/** A deployment in the sample backend (made directly, as the cluster's operator would have), for bob to scale. */
async function createDemoDeployment(backendUrl: string): Promise<void> {
  const res = await request(`${backendUrl}/api/v1/namespaces/${DEMO_DEPLOYMENT.namespace}/deployments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: DEMO_DEPLOYMENT.name, model: { catalog: DEMO_DEPLOYMENT.name } }),
  });
  const text = await res.body.text();
  if (res.statusCode !== 201 && res.statusCode !== 409)
    throw new Error(`the sample backend refused the demo deployment: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
}
