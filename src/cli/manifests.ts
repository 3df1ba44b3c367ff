import { GUID } from '../contracts/azure-ids.js';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadServeConfig } from '../config/load.js';
import { SERVE_OPTIONS, type OptionSpec } from '../config/options.js';
import { isSecretSetting } from '../manifests/pod-settings.js';
import { FOUNDRY_NAMESPACE, renderManifests, toYaml, type ForwardAuthProxy, type ManifestOptions, type Topology } from '../manifests/render.js';
import { addServeOptions, serveFlags } from './serve.js';
import { EXIT_USAGE } from '../config/exit-codes.js';
import { exitOnUsageError } from './usage.js';

const OPTIONS: readonly OptionSpec[] = SERVE_OPTIONS;
/** `serve --mode` (when the table has it) is set from the topology, so `manifests --mode` names the topology instead. */
const SKIP = new Set(['mode']);

export function command(): Command {
  const cmd = new Command('manifests')
    .description("print Kubernetes YAML for a topology, from the same settings as 'serve' (flags, FOUNDRY_AUTH_* env, --config)")
    .helpOption('-h, --help', 'show the options')
    .addOption(
      new Option(
        '--mode <topology>',
        'gateway (in front of a Foundry Local model Service), sidecar (patch for your inference Deployment) or forward-auth',
      )
        .choices(['gateway', 'sidecar', 'forward-auth'])
        .makeOptionMandatory(),
    )
    .option('--namespace <ns>', `namespace of every object (default: ${FOUNDRY_NAMESPACE} for gateway, default otherwise)`)
    .option('--name <name>', 'name of the objects and prefix of the ConfigMaps and default Secret names', 'foundry-auth')
    .option('--image <ref>', 'container image (default: foundry-auth:<version>)')
    .option('--replicas <n>', 'minimum replicas (default 2; 3 with --shared-cache)', positiveInteger('--replicas'))
    .option('--max-replicas <n>', 'autoscaler ceiling (default 4; 10 with --shared-cache)', positiveInteger('--max-replicas'))
    .option('--service-monitor', 'add a Prometheus operator ServiceMonitor and open the admin port to scrapes', false)
    .option(
      '--workload-identity-client-id <guid>',
      'client ID of the managed identity federated with the service account (ARM identity by workload identity)',
    )
    .option(
      '--secret-name <flag=name>',
      'the Secret a secret setting is mounted from, e.g. upstream-api-key-file=phi-4-api-keys (repeatable)',
      collect,
      [],
    )
    .option('--model-pod-labels <k=v,...>', "gateway: labels of the Foundry Local model's pods (kubectl get pods --show-labels)")
    .option('--app-deployment <name>', 'sidecar: the inference Deployment to patch')
    .option('--app-container <name>', 'sidecar: its inference container')
    .option('--app-labels <k=v,...>', "sidecar: its pods' selector labels")
    .addOption(new Option('--proxy <proxy>', 'forward-auth: the proxy that asks').choices(['ingress-nginx', 'istio']).default('ingress-nginx'))
    .option('--host <host>', 'forward-auth: the host the proxy protects', 'models.example.com')
    .option('--backend <[namespace/]service:port>', 'forward-auth (ingress-nginx): the Service the example Ingress routes to');
  addServeOptions(cmd, SKIP);
  cmd.action((opts: Record<string, unknown>) => {
    const mode = opts['mode'] as Topology;
    const errors: string[] = [];
    const flags = serveFlags(opts, SKIP);
    if (mode === 'forward-auth' && OPTIONS.some((o) => o.flag === 'mode')) flags['mode'] = 'forward-auth';
    const loaded = loadServeConfig({ flags, env: process.env });
    if (!loaded.ok) errors.push(...loaded.errors);
    // serve's own mode from FOUNDRY_AUTH_MODE or the config file must agree with the topology.
    const serveMode = loaded.ok ? (loaded.given as ReadonlyMap<string, unknown>).get('mode') : undefined;
    if (typeof serveMode === 'string' && (serveMode === 'forward-auth') !== (mode === 'forward-auth')) {
      errors.push(
        `--mode: the settings say serve mode "${serveMode}" (FOUNDRY_AUTH_MODE or the config file), which does not fit the ${mode} topology`,
      );
    }

    const secretNames = new Map<string, string>();
    for (const entry of opts['secretName'] as string[]) {
      const [flag, name] = entry.split('=', 2);
      const spec = OPTIONS.find((o) => o.flag === flag);
      if (spec === undefined || !isSecretSetting(spec) || name === undefined || !DNS_NAME.test(name)) {
        errors.push(`--secret-name: expected <secret setting>=<Secret name>, e.g. upstream-api-key-file=phi-4-api-keys (got "${entry}")`);
      } else secretNames.set(flag!, name);
    }
    const labels = (flag: string, key: string): Record<string, string> | undefined => {
      const value = opts[key];
      if (typeof value !== 'string') return undefined;
      const parsed = parseLabels(value);
      if (parsed === undefined) errors.push(`--${flag}: expected key=value pairs separated by commas (got "${value}")`);
      return parsed;
    };
    const modelPodLabels = labels('model-pod-labels', 'modelPodLabels');
    const appLabels = labels('app-labels', 'appLabels');
    for (const [flag, key] of [
      ['name', 'name'],
      ['app-deployment', 'appDeployment'],
      ['app-container', 'appContainer'],
    ] as const) {
      const value = opts[key];
      if (typeof value === 'string' && !DNS_NAME.test(value))
        errors.push(`--${flag}: must be a DNS label (lower-case letters, digits, '-') (got "${value}")`);
    }
    const clientId = opts['workloadIdentityClientId'];
    if (typeof clientId === 'string' && !GUID.test(clientId)) errors.push(`--workload-identity-client-id: must be a GUID (got "${clientId}")`);
    const backend = opts['backend'];
    if (typeof backend === 'string' && !/^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?\/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?:\d{1,5}$/.test(backend))
      errors.push(`--backend: expected [<namespace>/]<service>:<port> (got "${backend}")`);
    if (errors.length > 0 || !loaded.ok) {
      for (const line of errors) process.stderr.write(`foundry-auth manifests: ${line}\n`);
      process.exit(EXIT_USAGE);
    }

    const version = packageVersion();
    const options: ManifestOptions = {
      mode,
      namespace: (opts['namespace'] as string | undefined) ?? (mode === 'gateway' ? FOUNDRY_NAMESPACE : 'default'),
      name: opts['name'] as string,
      image: (opts['image'] as string | undefined) ?? `foundry-auth:${version}`,
      version,
      ...(opts['replicas'] !== undefined ? { replicas: opts['replicas'] as number } : {}),
      ...(opts['maxReplicas'] !== undefined ? { maxReplicas: opts['maxReplicas'] as number } : {}),
      serviceMonitor: opts['serviceMonitor'] === true,
      ...(typeof clientId === 'string' ? { workloadIdentityClientId: clientId.toLowerCase() } : {}),
      secretNames,
      ...(modelPodLabels !== undefined ? { modelPodLabels } : {}),
      ...(typeof opts['appDeployment'] === 'string' ? { appDeployment: opts['appDeployment'] } : {}),
      ...(typeof opts['appContainer'] === 'string' ? { appContainer: opts['appContainer'] } : {}),
      ...(appLabels !== undefined ? { appLabels } : {}),
      proxy: opts['proxy'] as ForwardAuthProxy,
      host: opts['host'] as string,
      ...(typeof backend === 'string' ? { backend } : {}),
    };
    const rendered = renderManifests(options, { config: loaded.config, given: loaded.given, options: OPTIONS });
    if (!rendered.ok) {
      for (const line of rendered.errors) process.stderr.write(`foundry-auth manifests: ${line}\n`);
      process.exit(EXIT_USAGE);
    }
    process.stdout.write(toYaml(rendered.manifests, header(options, rendered.secrets)));
  });
  return exitOnUsageError(cmd);
}

const DNS_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function header(options: ManifestOptions, secrets: readonly { flag: string; secret: string; key: string }[]): string {
  const lines = [
    `# foundry-auth ${options.version}: ${options.mode} topology in namespace ${options.namespace}, printed by 'foundry-auth manifests'.`,
  ];
  if (secrets.length > 0) {
    lines.push('# Secrets this expects (never printed here; create them in the same namespace):');
    for (const s of secrets) lines.push(`#   ${s.secret} (key ${s.key}) for --${s.flag}`);
  }
  return `${lines.join('\n')}\n`;
}

function parseLabels(value: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const match = /^\s*([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)\s*$/.exec(pair);
    if (!match) return undefined;
    out[match[1]!] = match[2]!;
  }
  return out;
}

function positiveInteger(flag: string): (value: string) => number {
  return (value) => {
    if (!/^[1-9]\d{0,3}$/.test(value)) throw new InvalidArgumentError(`${flag} must be a whole number from 1 to 9999`);
    return Number(value);
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
