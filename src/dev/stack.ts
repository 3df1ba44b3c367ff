import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { request } from 'undici';
import { z } from 'zod';
import { clusterResourceId } from '../emulator/state.js';
import { bannerText, demoCommands, type BannerInput } from './banner.js';
import { StackChild } from './child.js';
import { demoPasswords, seedDemoPrincipals, V1_APP, INFERENCE_CLIENT, DEMO_USERS, type DemoUser, type DemoUserName } from './demo-principals.js';
import { EmulatorClient, EmulatorReadySchema } from './emulator-client.js';
import { stateLayout, type StateLayout } from './layout.js';
import { checkPortsFree, PortsUnavailableError, type PortUse } from './ports.js';
import { registerAndGrant } from './registration.js';
import { ChildDiedError, StartupAborted, waitFor } from './wait.js';

/**
 * `foundry-auth dev`: the emulator, the sample backend and the sidecar as child processes on
 * loopback, the demo tenant registered and seeded, dev.json written, a banner printed; Ctrl-C
 * stops everything.
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

/** How long a child gets between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 10_000;
/** The sidecar's own drain time, shorter than STOP_GRACE_MS so it always exits by itself. */
const SIDECAR_SHUTDOWN_GRACE = '5s';
const STARTUP_DEADLINE_MS = 60_000;
/** User tokens live about 80 minutes: renew dev.json well before. */
const TOKEN_RENEWAL_MS = 30 * 60_000;
/** The deployment `dev` creates in the sample backend, so the control-plane example has something to change. */
const DEMO_DEPLOYMENT = { namespace: 'default', name: 'phi-4-mini' } as const;

const BackendReady = z.object({ url: z.string() });
const SidecarListening = z.object({ msg: z.literal('foundry-auth serve listening'), listen: z.string(), admin: z.string() });
const ClusterView = z.object({ clusters: z.array(z.object({ name: z.string(), subscriptionId: z.string(), resourceGroup: z.string(), isDefault: z.boolean() })) });

interface Stack {
  readonly children: StackChild[];
  stopping: boolean;
}

/** Runs until a signal or a child's death; resolves with the exit code. */
export async function runDev(opts: DevOptions, output: DevOutput): Promise<number> {
  const startedAt = performance.now();
  const layout = stateLayout(resolve(opts.stateDir));
  const stack: Stack = { children: [], stopping: false };
  const lastResort = (): void => stack.children.forEach((c) => c.kill());
  process.once('exit', lastResort);

  let signalled: (signal: NodeJS.Signals) => void = () => {};
  const signal = new Promise<NodeJS.Signals>((resolveSignal) => (signalled = resolveSignal));
  const onSignal = (s: NodeJS.Signals): void => signalled(s);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  const abort = new AbortController();
  void signal.then(() => abort.abort());

  let renewal: NodeJS.Timeout | undefined;
  let emulatorClient: EmulatorClient | undefined;
  try {
    prepareStateDir(layout, opts.fresh, output);
    await checkPortsFree(portUses(opts));

    output.out(`foundry-auth dev: starting the emulator, the sample backend and the sidecar (state in ${layout.dir})\n`);
    const emulator = start(stack, {
      name: 'emulator',
      logFile: layout.log('emulator'),
      args: ['emulator', '--host', '127.0.0.1', '--https-port', String(opts.emulatorHttpsPort), '--http-port', String(opts.emulatorHttpPort), '--state', layout.emulatorState, '--ready-file', layout.readyFile('emulator')],
    });
    const backend = start(stack, {
      name: 'sample backend',
      logFile: layout.log('backend'),
      args: ['sample-backend', '--listen', `127.0.0.1:${opts.backendPort}`, '--ready-file', layout.readyFile('backend'), ...(opts.tokenRate === undefined ? [] : ['--token-rate', String(opts.tokenRate)])],
    });
    const [emulatorEndpoints, backendUrl] = await Promise.all([
      waitFor(() => readJsonFile(layout.readyFile('emulator'), EmulatorReadySchema), { what: 'the emulator', child: emulator, signal: abort.signal, timeoutMs: STARTUP_DEADLINE_MS }),
      waitFor(() => readJsonFile(layout.readyFile('backend'), BackendReady)?.url, { what: 'the sample backend', child: backend, signal: abort.signal, timeoutMs: STARTUP_DEADLINE_MS }),
    ]);

    const ca = readFileSync(emulatorEndpoints.caCert, 'utf8');
    const client = new EmulatorClient(emulatorEndpoints, ca);
    emulatorClient = client;
    const { users } = await seedDemoPrincipals(client, demoPasswords(layout.demoSecrets));
    const clusterId = await defaultClusterId(client);
    const registration = await registerAndGrant(client, clusterId, users);
    for (const change of registration.changes) output.out(`  ${change}\n`);
    await createDemoDeployment(backendUrl);

    const sidecar = start(stack, {
      name: 'sidecar',
      logFile: layout.log('sidecar'),
      env: { NODE_EXTRA_CA_CERTS: emulatorEndpoints.caCert },
      args: [
        'serve',
        '--listen', `127.0.0.1:${opts.sidecarPort}`,
        '--admin-listen', `127.0.0.1:${opts.adminPort}`,
        '--upstream', backendUrl,
        '--tenant-id', emulatorEndpoints.tenantId,
        '--client-id', registration.clientId,
        '--authority', emulatorEndpoints.authority,
        '--rbac', 'arm',
        '--rbac-scope', clusterId,
        '--arm-endpoint', emulatorEndpoints.arm,
        '--identity', 'msi-adapter',
        '--msi-endpoint', emulatorEndpoints.msiHttp,
        '--shutdown-grace', SIDECAR_SHUTDOWN_GRACE,
      ],
    });
    const tokens = demoTokens(client, registration.clientId, users);
    const listening = await waitFor(() => sidecarListening(layout.log('sidecar')), { what: 'the sidecar', child: sidecar, signal: abort.signal, timeoutMs: STARTUP_DEADLINE_MS });
    await waitFor(() => ready(`${listening.admin}/readyz`), { what: 'the sidecar to be ready (/readyz)', child: sidecar, signal: abort.signal, timeoutMs: STARTUP_DEADLINE_MS, intervalMs: 100 });
    const issued = await tokens;

    const devJson = {
      sidecar: listening.listen,
      backend: backendUrl,
      emulator: emulatorEndpoints.https,
      tenantId: emulatorEndpoints.tenantId,
      clientId: registration.clientId,
      clusterId,
      tokens: issued.tokens,
    };
    writePrivate(layout.devJson, `${JSON.stringify(devJson, null, 2)}\n`);
    writePrivate(layout.v1Token, `${issued.v1}\n`);
    const banner: BannerInput = {
      sidecar: listening.listen,
      sidecarAdmin: listening.admin,
      backend: backendUrl,
      emulator: emulatorEndpoints.https,
      tenantId: emulatorEndpoints.tenantId,
      clientId: registration.clientId,
      clusterId,
      devJson: layout.devJson,
      v1TokenFile: layout.v1Token,
      logsDir: layout.logsDir,
      sidecarLog: layout.log('sidecar'),
      deployment: DEMO_DEPLOYMENT,
      readyInMs: performance.now() - startedAt,
      cwd: process.cwd(),
    };
    const commands = demoCommands(banner);
    writeFileSync(layout.commandsJson, `${JSON.stringify({ commands }, null, 2)}\n`);
    writeFileSync(layout.stackJson, `${JSON.stringify({ pid: process.pid, children: pidsOf(stack), sidecarAdmin: listening.admin, emulatorAdmin: emulatorEndpoints.admin, caCert: emulatorEndpoints.caCert }, null, 2)}\n`);
    output.out(bannerText(banner, commands));

    renewal = setInterval(() => {
      void demoTokens(client, registration.clientId, users).then(
        (renewed) => writePrivate(layout.devJson, `${JSON.stringify({ ...devJson, tokens: renewed.tokens }, null, 2)}\n`),
        (err: unknown) => output.err(`foundry-auth dev: could not renew the tokens in dev.json: ${err instanceof Error ? err.message : String(err)}\n`),
      );
    }, TOKEN_RENEWAL_MS);
    renewal.unref();

    const outcome = await Promise.race([signal.then((s) => ({ kind: 'signal' as const, signal: s })), firstDeath(stack)]);
    if (outcome.kind === 'death') {
      output.err(deathMessage(outcome.child, outcome.exit));
      await stopAll(stack);
      return 1;
    }
    output.out(`\nfoundry-auth dev: ${outcome.signal} received, stopping the sidecar, the sample backend and the emulator\n`);
    await stopAll(stack);
    output.out('foundry-auth dev: stopped\n');
    return 0;
  } catch (err) {
    if (err instanceof StartupAborted) {
      await stopAll(stack);
      output.out('foundry-auth dev: stopped before the stack was ready\n');
      return 0;
    }
    output.err(startupFailure(err));
    await stopAll(stack);
    return 1;
  } finally {
    clearInterval(renewal);
    rmSync(layout.stackJson, { force: true });
    await emulatorClient?.close();
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal);
    process.off('exit', lastResort);
  }
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
 * The state directory: emulator state (kept across runs: its RSA keys are the slow part of a cold
 * start), the demo passwords, logs and ready files. `--fresh` starts over.
 */
function prepareStateDir(layout: StateLayout, fresh: boolean, output: DevOutput): void {
  mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
  mkdirSync(layout.logsDir, { recursive: true });
  mkdirSync(layout.runDir, { recursive: true });
  // The users' passwords live only in the secrets file: without it the saved directory is of no use.
  const orphaned = !fresh && existsSync(layout.emulatorState) && !existsSync(layout.demoSecrets);
  if (orphaned) output.out(`foundry-auth dev: ${layout.demoSecrets} is missing, so the saved emulator state is discarded\n`);
  if (fresh || orphaned) {
    for (const f of [layout.emulatorState, layout.emulatorState.replace(/\.json$/, '.ca.pem'), layout.demoSecrets, layout.devJson, layout.v1Token, layout.commandsJson]) rmSync(f, { force: true });
  }
  for (const f of [layout.readyFile('emulator'), layout.readyFile('backend')]) rmSync(f, { force: true });
}

function start(stack: Stack, spec: ConstructorParameters<typeof StackChild>[0]): StackChild {
  const child = new StackChild(spec);
  stack.children.push(child);
  return child;
}

function readJsonFile<T>(file: string, schema: z.ZodType<T>): T | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined; // written but not complete yet
  }
}

/** The sidecar prints where it listens in its first JSON log line. */
function sidecarListening(logFile: string): z.infer<typeof SidecarListening> | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('foundry-auth serve listening')) continue;
    try {
      const parsed = SidecarListening.safeParse(JSON.parse(line));
      if (parsed.success) return parsed.data;
    } catch {
      // a line still being written
    }
  }
  return undefined;
}

async function ready(url: string): Promise<true | undefined> {
  try {
    const res = await request(url);
    await res.body.dump();
    return res.statusCode === 200 ? true : undefined;
  } catch {
    return undefined;
  }
}

async function defaultClusterId(client: EmulatorClient): Promise<string> {
  const { clusters } = ClusterView.parse(await client.admin('GET', '/state'));
  const cluster = clusters.find((c) => c.isDefault) ?? clusters[0];
  if (cluster === undefined) throw new Error('the emulator has no connected cluster; start over with --fresh');
  return clusterResourceId(cluster);
}

/** A deployment in the sample backend (straight to it, as the cluster's operator would have), for bob to scale. */
async function createDemoDeployment(backendUrl: string): Promise<void> {
  const res = await request(`${backendUrl}/api/v1/namespaces/${DEMO_DEPLOYMENT.namespace}/deployments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: DEMO_DEPLOYMENT.name, model: { catalog: DEMO_DEPLOYMENT.name } }),
  });
  const text = await res.body.text();
  if (res.statusCode !== 201 && res.statusCode !== 409) throw new Error(`the sample backend refused the demo deployment: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
}

/** Fresh tokens obtained the way each principal would: users by password as the Azure CLI, the managed identity from IMDS. */
async function demoTokens(client: EmulatorClient, clientId: string, users: Record<DemoUserName, DemoUser>): Promise<{ tokens: Record<DemoUserName | 'inference-client', string>; v1: string }> {
  const scope = `api://${clientId}/.default`;
  const [alice, bob, carol, mi, v1] = await Promise.all([
    ...DEMO_USERS.map((name) => client.passwordToken(users[name].upn, users[name].password, scope)),
    client.managedIdentityToken(INFERENCE_CLIENT.clientId, `api://${clientId}`),
    client.passwordToken(users.alice.upn, users.alice.password, `api://${V1_APP.appId}/.default`),
  ]);
  return { tokens: { alice: alice!.accessToken, bob: bob!.accessToken, carol: carol!.accessToken, 'inference-client': mi!.accessToken }, v1: v1!.accessToken };
}

/** Written whole (temp file + rename) and readable by the owner only: it holds bearer tokens. */
function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}

function pidsOf(stack: Stack): Record<string, number | undefined> {
  return Object.fromEntries(stack.children.map((c) => [c.name, c.pid]));
}

function firstDeath(stack: Stack): Promise<{ kind: 'death'; child: StackChild; exit: { code: number | null; signal: NodeJS.Signals | null } }> {
  return Promise.race(stack.children.map((child) => child.exited.then((exit) => ({ kind: 'death' as const, child, exit }))));
}

function deathMessage(child: StackChild, exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code ?? 'unknown'}`;
  const tail = child.tail();
  return `foundry-auth dev: the ${child.name} ${how}; stopping the stack. Last lines of ${child.logFile}:\n${indent(tail)}\n`;
}

function startupFailure(err: unknown): string {
  if (err instanceof PortsUnavailableError) return err.problems.map((p) => `foundry-auth dev: ${p}\n`).join('');
  if (err instanceof ChildDiedError) {
    const portTaken = /EADDRINUSE|already in use/.test(err.child.tail(20));
    const hint = portTaken ? `\n  a port it needs is already in use: choose another with ${flagFor(err.child.name)} <port>, or 0 for any free port` : '';
    return `foundry-auth dev: ${err.message}${hint}\n  last lines of ${err.child.logFile}:\n${indent(err.child.tail())}\n`;
  }
  return `foundry-auth dev: ${err instanceof Error ? err.message : String(err)}\n`;
}

function flagFor(name: string): string {
  if (name === 'sidecar') return '--sidecar-port / --admin-port';
  if (name === 'sample backend') return '--backend-port';
  return '--emulator-https-port / --emulator-http-port';
}

function indent(text: string): string {
  return text === '' ? '    (empty)' : text.split('\n').map((l) => `    ${l}`).join('\n');
}

async function stopAll(stack: Stack): Promise<void> {
  if (stack.stopping) return;
  stack.stopping = true;
  // The sidecar first, so it drains before its upstream and identity provider go away.
  const sidecar = stack.children.filter((c) => c.name === 'sidecar');
  await Promise.all(sidecar.map((c) => c.stop(STOP_GRACE_MS)));
  await Promise.all(stack.children.filter((c) => c.name !== 'sidecar').map((c) => c.stop(STOP_GRACE_MS)));
}
