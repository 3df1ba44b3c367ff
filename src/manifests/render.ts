import { createHash } from 'node:crypto';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyEgressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule';
import type { INetworkPolicyIngressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyIngressRule';
import type { INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IServicePort } from 'kubernetes-models/v1/ServicePort';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { stringify } from 'yaml';
import type { ServeConfig } from '../config/config.js';
import type { RawValue } from '../config/load.js';
import type { OptionSpec } from '../config/options.js';
import { ADMIN_PORT_NAME, LISTEN_PORT_NAME, POD_SECURITY, TMP_VOLUME, foundryAuthContainer } from './container.js';
import type { IstioAuthorizationPolicy, ServiceMonitor } from './custom-resources.js';
import { podSettings, type PodSettings, type SecretUse } from './pod-settings.js';

export type Topology = 'gateway' | 'sidecar' | 'forward-auth';
export type ForwardAuthProxy = 'ingress-nginx' | 'istio';

/** What `manifests` adds to the `serve` settings: where and how the pods run. */
export interface ManifestOptions {
  readonly mode: Topology;
  readonly namespace: string;
  /** Name of every object (and prefix of the ConfigMaps and default Secret names). */
  readonly name: string;
  readonly image: string;
  readonly version: string;
  /** Replicas and the autoscaler's ceiling; defaults depend on the shared cache. */
  readonly replicas?: number;
  readonly maxReplicas?: number;
  readonly serviceMonitor: boolean;
  /** Client ID of the managed identity federated with the service account (workload identity). */
  readonly workloadIdentityClientId?: string;
  /** `--secret-name FLAG=NAME`: the Secret a secret setting comes from. */
  readonly secretNames: ReadonlyMap<string, string>;
  /** gateway: labels of the Foundry Local model's pods (the NetworkPolicy protecting them). */
  readonly modelPodLabels?: Readonly<Record<string, string>>;
  /** sidecar: the inference Deployment to patch, its container and its pod labels (selector). */
  readonly appDeployment?: string;
  readonly appContainer?: string;
  readonly appLabels?: Readonly<Record<string, string>>;
  /** forward-auth: the proxy asking, the host it serves and the Service it routes to (`name:port`). */
  readonly proxy?: ForwardAuthProxy;
  readonly host?: string;
  readonly backend?: string;
}

export interface ServeSettings {
  readonly config: ServeConfig;
  readonly given: ReadonlyMap<string, RawValue>;
  /** The options table `given` is keyed by (`SERVE_OPTIONS`): how each setting reaches the pod. */
  readonly options: readonly OptionSpec[];
}

/** A printed object: a kubernetes-models instance (validates against the bundled schemas) or a custom resource. */
export type Manifest =
  | { readonly kind: 'builtin'; readonly object: { validate(): void; toJSON(): unknown } }
  | { readonly kind: 'custom'; readonly object: ServiceMonitor | IstioAuthorizationPolicy };

export type RenderResult =
  | { readonly ok: true; readonly manifests: readonly Manifest[]; readonly secrets: readonly SecretUse[] }
  | { readonly ok: false; readonly errors: readonly string[] };

/** The namespace Foundry Local's operator creates model deployments (Services, API-key Secrets) in. */
export const FOUNDRY_NAMESPACE = 'foundry-local-operator';
const WORKLOAD_IDENTITY_LABEL = 'azure.workload.identity/use';

export function renderManifests(options: ManifestOptions, serve: ServeSettings): RenderResult {
  const errors: string[] = [];
  const { config } = serve;
  const sharedCache = serve.given.has('shared-cache');
  const workloadIdentity = usesWorkloadIdentity(config);
  if (config.rbac.scope !== undefined && config.entra !== undefined && config.rbac.mode === 'arm' && config.rbac.identity === 'azure-cli') {
    errors.push(
      '--identity / FOUNDRY_AUTH_IDENTITY: azure-cli is for runs on a workstation; in a pod use workload-identity (default), msi-adapter or client-secret',
    );
  }
  if (workloadIdentity && options.workloadIdentityClientId === undefined) {
    errors.push(
      '--workload-identity-client-id: required for the ARM identity by workload identity: the client ID of the managed identity federated with the service account (or set --identity msi-adapter)',
    );
  }
  if (options.mode === 'gateway' && options.modelPodLabels === undefined) {
    errors.push(
      `--model-pod-labels: required in gateway mode: the labels of the model's pods, which the NetworkPolicy lets only foundry-auth reach (kubectl get pods -n ${FOUNDRY_NAMESPACE} --show-labels)`,
    );
  }
  if (config.mode === 'forward-auth' && config.forwardAuth.socket !== undefined) {
    errors.push(
      "--forward-auth-socket: the manifests connect the gateway to foundry-auth through its Service over TCP; leave it out (and give the gateway's addresses in --trusted-proxies)",
    );
  }
  if (options.mode === 'sidecar' && (options.appDeployment === undefined || options.appLabels === undefined || options.appContainer === undefined)) {
    errors.push(
      '--app-deployment, --app-container and --app-labels: required in sidecar mode: the inference Deployment to patch, its container and its selector labels',
    );
  }

  const fixed = new Map<string, string>([
    ['listen', `0.0.0.0:${config.listen.port}`],
    ['admin-listen', `0.0.0.0:${config.adminListen.port}`],
  ]);
  if (workloadIdentity) fixed.set('identity', 'workload-identity');
  const secretNames = new Map(options.secretNames);
  if (options.mode === 'gateway' && config.mode === 'proxy' && !secretNames.has('upstream-api-key-file')) {
    // The operator keeps a model deployment's keys in `<deployment>-api-keys`; the Service is named after the deployment.
    secretNames.set('upstream-api-key-file', `${config.upstream.hostname.split('.')[0]}-api-keys`);
  }
  const settings = podSettings({ given: serve.given, fixed, secretNames, name: options.name, options: serve.options });
  if (!settings.ok) errors.push(...settings.errors);
  if (errors.length > 0 || !settings.ok) return { ok: false, errors };

  const ctx = new Context(options, serve, settings.pod, { sharedCache, workloadIdentity });
  const manifests = options.mode === 'gateway' ? ctx.gateway() : options.mode === 'sidecar' ? ctx.sidecar() : ctx.forwardAuth();
  return { ok: true, manifests, secrets: settings.pod.secrets };
}

/** Multi-document YAML, each document validated first (a schema violation is a bug: it throws). */
export function toYaml(manifests: readonly Manifest[], header: string): string {
  const docs = manifests.map((m) => {
    if (m.kind === 'builtin') m.object.validate();
    return stringify(m.kind === 'builtin' ? m.object.toJSON() : m.object, { lineWidth: 0 });
  });
  return `${header}${docs.map((d) => `---\n${d}`).join('')}`;
}

/** ARM identity by workload identity: what `auto` means in a pod unless configured otherwise. */
function usesWorkloadIdentity(config: ServeConfig): boolean {
  return (
    config.rbac.mode === 'arm' && config.rbac.scope !== undefined && (config.rbac.identity === 'auto' || config.rbac.identity === 'workload-identity')
  );
}

function sha256(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

function builtin(object: { validate(): void; toJSON(): unknown }): Manifest {
  return { kind: 'builtin', object };
}

class Context {
  private readonly labels: Readonly<Record<string, string>>;
  private readonly selector: Readonly<Record<string, string>>;
  private readonly settingsName: string;
  private readonly filesName: string;

  constructor(
    private readonly o: ManifestOptions,
    private readonly serve: ServeSettings,
    private readonly pod: PodSettings,
    private readonly flags: { readonly sharedCache: boolean; readonly workloadIdentity: boolean },
  ) {
    this.selector = { 'app.kubernetes.io/name': 'foundry-auth', 'app.kubernetes.io/instance': o.name };
    this.labels = {
      ...this.selector,
      'app.kubernetes.io/component': o.mode,
      'app.kubernetes.io/version': o.version,
      'app.kubernetes.io/managed-by': 'foundry-auth-manifests',
    };
    this.settingsName = `${o.name}-settings`;
    this.filesName = `${o.name}-files`;
  }

  gateway(): Manifest[] {
    const modelLabels = this.o.modelPodLabels!;
    const upstreamPorts = this.upstreamPorts();
    return [
      ...this.common(),
      builtin(this.deployment()),
      builtin(this.service()),
      builtin(this.disruptionBudget()),
      builtin(this.autoscaler()),
      builtin(this.ownPolicy([{ to: [{ podSelector: { matchLabels: { ...modelLabels } } }], ports: upstreamPorts }])),
      // Only foundry-auth reaches the model pods: with this policy, an API key alone is no way in.
      builtin(
        new NetworkPolicy({
          metadata: this.meta(`${this.o.name}-protects-model`),
          spec: {
            podSelector: { matchLabels: { ...modelLabels } },
            policyTypes: ['Ingress'],
            ingress: [{ from: [{ podSelector: { matchLabels: { ...this.selector } } }], ports: upstreamPorts }],
          },
        }),
      ),
      ...this.monitor(),
    ];
  }

  sidecar(): Manifest[] {
    const appLabels = this.o.appLabels!;
    const container = foundryAuthContainer({ ...this.containerInput(), nativeSidecar: true });
    // A strategic-merge patch for `kubectl patch deployment <app> --patch-file`: selector and the app container are
    // repeated unchanged (merged by name), foundry-auth joins as a native sidecar, which needs Kubernetes >= 1.29.
    const patch = new Deployment({
      metadata: { name: this.o.appDeployment!, namespace: this.o.namespace },
      spec: {
        selector: { matchLabels: { ...appLabels } },
        template: {
          // Only the workload identity label: the app's pods keep their own labels.
          metadata: { ...(this.flags.workloadIdentity ? { labels: { [WORKLOAD_IDENTITY_LABEL]: 'true' } } : {}), annotations: this.checksums() },
          spec: {
            serviceAccountName: this.o.name,
            initContainers: [container],
            containers: [{ name: this.o.appContainer! }],
            volumes: this.volumes(),
            terminationGracePeriodSeconds: this.graceSeconds(),
          },
        },
      },
    });
    return [...this.common(), builtin(patch), builtin(this.service(appLabels)), builtin(this.ownPolicy([], appLabels)), ...this.monitor()];
  }

  forwardAuth(): Manifest[] {
    const proxy = this.o.proxy ?? 'ingress-nginx';
    const proxyNamespace = proxy === 'istio' ? 'istio-system' : 'ingress-nginx';
    const objects: Manifest[] = [
      ...this.common(),
      builtin(this.deployment()),
      builtin(this.service()),
      builtin(this.disruptionBudget()),
      builtin(this.autoscaler()),
      builtin(this.ownPolicy([], undefined, proxyNamespace)),
      ...this.monitor(),
    ];
    const host = this.o.host ?? 'models.example.com';
    const checkUrl = `http://${this.o.name}.${this.o.namespace}.svc.cluster.local:${this.serve.config.listen.port}`;
    if (proxy === 'ingress-nginx') {
      // `[namespace/]service:port`: an Ingress routes only to Services of its own namespace.
      const backend = /^(?:([^/]+)\/)?([^:]+):(\d+)$/.exec(this.o.backend ?? 'model:5000')!;
      const [, backendNamespace, service, port] = backend;
      objects.push(
        builtin(
          new Ingress({
            metadata: {
              ...this.meta(`${this.o.name}-protected`),
              namespace: backendNamespace ?? this.o.namespace,
              annotations: {
                // ingress-nginx's auth subrequest carries X-Original-Method and X-Original-URI (profile nginx).
                'nginx.ingress.kubernetes.io/auth-url': `${checkUrl}/`,
                'nginx.ingress.kubernetes.io/auth-response-headers': IDENTITY_HEADERS.join(','),
              },
            },
            spec: {
              ingressClassName: 'nginx',
              rules: [
                {
                  host,
                  http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service!, port: { number: Number(port) } } } }] },
                },
              ],
            },
          }),
        ),
      );
    } else {
      const policy: IstioAuthorizationPolicy = {
        apiVersion: 'security.istio.io/v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: `${this.o.name}-ext-authz`, namespace: proxyNamespace, labels: { ...this.labels } },
        spec: {
          selector: { matchLabels: { istio: 'ingressgateway' } },
          action: 'CUSTOM',
          // The provider is declared in the mesh config (extensionProviders, envoyExtAuthzHttp) under this name.
          provider: { name: this.o.name },
          rules: [{ to: [{ operation: { hosts: [host] } }] }],
        },
      };
      objects.push({ kind: 'custom', object: policy });
    }
    return objects;
  }

  /** ConfigMaps and the ServiceAccount every topology has. */
  private common(): Manifest[] {
    const out: Manifest[] = [builtin(new ConfigMap({ metadata: this.meta(this.settingsName), data: { ...this.pod.env } }))];
    if (Object.keys(this.pod.files).length > 0)
      out.push(builtin(new ConfigMap({ metadata: this.meta(this.filesName), data: { ...this.pod.files } })));
    const annotations: Record<string, string> = {};
    const labels: Record<string, string> = { ...this.labels };
    if (this.flags.workloadIdentity) {
      annotations['azure.workload.identity/client-id'] = this.o.workloadIdentityClientId!;
      if (this.serve.config.entra) annotations['azure.workload.identity/tenant-id'] = this.serve.config.entra.tenantId;
      labels[WORKLOAD_IDENTITY_LABEL] = 'true';
    }
    out.push(
      builtin(
        new ServiceAccount({
          metadata: { ...this.meta(this.o.name), labels, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) },
          automountServiceAccountToken: false,
        }),
      ),
    );
    return out;
  }

  private deployment(): Deployment {
    const spec: IPodSpec = {
      serviceAccountName: this.o.name,
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
      containers: [foundryAuthContainer(this.containerInput())],
      volumes: this.volumes(),
      terminationGracePeriodSeconds: this.graceSeconds(),
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'kubernetes.io/hostname',
          whenUnsatisfiable: 'ScheduleAnyway',
          labelSelector: { matchLabels: { ...this.selector } },
        },
      ],
    };
    return new Deployment({
      metadata: this.meta(this.o.name),
      spec: {
        // No replicas field: the HorizontalPodAutoscaler owns the count, so re-applying never resets it.
        selector: { matchLabels: { ...this.selector } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: { metadata: { labels: this.podLabels(), annotations: this.checksums() }, spec },
      },
    });
  }

  private service(selector: Readonly<Record<string, string>> = this.selector): Service {
    const ports: IServicePort[] = [{ name: LISTEN_PORT_NAME, port: this.serve.config.listen.port, targetPort: LISTEN_PORT_NAME, protocol: 'TCP' }];
    if (this.o.serviceMonitor)
      ports.push({ name: ADMIN_PORT_NAME, port: this.serve.config.adminListen.port, targetPort: ADMIN_PORT_NAME, protocol: 'TCP' });
    return new Service({ metadata: this.meta(this.o.name), spec: { type: 'ClusterIP', selector: { ...selector }, ports } });
  }

  private disruptionBudget(): PodDisruptionBudget {
    return new PodDisruptionBudget({
      metadata: this.meta(this.o.name),
      spec: { maxUnavailable: 1, selector: { matchLabels: { ...this.selector } }, unhealthyPodEvictionPolicy: 'AlwaysAllow' },
    });
  }

  /**
   * Without the shared cache every replica reads ARM for every principal on its own and spends its
   * own ARM budget: keep the count small. With it, replicas share lookups and one budget.
   */
  private autoscaler(): HorizontalPodAutoscaler {
    const minReplicas = this.o.replicas ?? (this.flags.sharedCache ? 3 : 2);
    const maxReplicas = Math.max(minReplicas, this.o.maxReplicas ?? (this.flags.sharedCache ? 10 : 4));
    return new HorizontalPodAutoscaler({
      metadata: this.meta(this.o.name),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: this.o.name },
        minReplicas,
        maxReplicas,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
        behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
      },
    });
  }

  /**
   * The policy on foundry-auth's own pods (or the app's, for the sidecar): clients reach the
   * listener (forward-auth: only the proxy's namespace), Prometheus the admin port when monitored;
   * out: DNS, HTTPS (Entra ID, ARM: outside the cluster, no fixed addresses), the upstream and the
   * shared cache.
   */
  private ownPolicy(
    extraEgress: INetworkPolicyEgressRule[],
    podLabels: Readonly<Record<string, string>> = this.selector,
    fromNamespace?: string,
  ): NetworkPolicy {
    const listen: INetworkPolicyPort = { protocol: 'TCP', port: this.serve.config.listen.port };
    const ingress: INetworkPolicyIngressRule[] = [
      fromNamespace === undefined
        ? { ports: [listen] }
        : { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': fromNamespace } } }], ports: [listen] },
    ];
    if (this.o.serviceMonitor) ingress.push({ ports: [{ protocol: 'TCP', port: this.serve.config.adminListen.port }] });
    const egress: INetworkPolicyEgressRule[] = [
      {
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      },
      { ports: [{ protocol: 'TCP', port: 443 }] },
      ...extraEgress,
    ];
    const cachePort = this.sharedCachePort();
    if (cachePort !== undefined) egress.push({ ports: [{ protocol: 'TCP', port: cachePort }] });
    return new NetworkPolicy({
      metadata: this.meta(this.o.mode === 'sidecar' ? `${this.o.name}-app` : this.o.name),
      spec: { podSelector: { matchLabels: { ...podLabels } }, policyTypes: ['Ingress', 'Egress'], ingress, egress },
    });
  }

  private monitor(): Manifest[] {
    if (!this.o.serviceMonitor) return [];
    const monitor: ServiceMonitor = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: this.meta(this.o.name),
      spec: {
        selector: { matchLabels: { ...this.selector } },
        endpoints: [{ port: ADMIN_PORT_NAME, path: '/metrics', interval: '30s', scrapeTimeout: '10s' }],
      },
    };
    return [{ kind: 'custom', object: monitor }];
  }

  private containerInput(): Parameters<typeof foundryAuthContainer>[0] {
    return {
      image: this.o.image,
      settingsConfigMap: this.settingsName,
      pod: this.pod,
      listenPort: this.serve.config.listen.port,
      adminPort: this.serve.config.adminListen.port,
    };
  }

  private volumes(): IPodSpec['volumes'] {
    return [TMP_VOLUME, ...this.pod.volumes];
  }

  private podLabels(): Record<string, string> {
    return { ...this.labels, ...(this.flags.workloadIdentity ? { [WORKLOAD_IDENTITY_LABEL]: 'true' } : {}) };
  }

  /** Pods roll when a setting or a shipped file changes; Secrets rotate in place (re-read every 5 s) and are named only. */
  private checksums(): Record<string, string> {
    return {
      'checksum/settings': sha256(this.pod.env),
      'checksum/files': sha256(this.pod.files),
      'checksum/secret-refs': sha256([this.pod.secrets, this.pod.secretEnv]),
    };
  }

  /** SIGTERM drains for --shutdown-grace; the kubelet waits a little longer before SIGKILL. */
  private graceSeconds(): number {
    return Math.ceil(this.serve.config.shutdownGraceMs / 1000) + 5;
  }

  private upstreamPorts(): INetworkPolicyPort[] {
    const { config } = this.serve;
    const ports = new Set(config.mode === 'proxy' ? [portOf(config.upstream), portOf(config.controlUpstream)] : []);
    return [...ports].map((port) => ({ protocol: 'TCP' as const, port }));
  }

  private sharedCachePort(): number | undefined {
    const raw = this.serve.given.get('shared-cache');
    if (raw === undefined) return undefined;
    try {
      const url = new URL(String(raw));
      return url.port !== '' ? Number(url.port) : 6379;
    } catch {
      return 6379;
    }
  }

  private meta(name: string): { name: string; namespace: string; labels: Record<string, string> } {
    return { name, namespace: this.o.namespace, labels: { ...this.labels } };
  }
}

function portOf(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** The identity headers an allow carries, for the proxy to copy to the upstream request. */
export const IDENTITY_HEADERS = [
  'x-ms-client-principal-id',
  'x-ms-client-principal-name',
  'x-ms-client-principal-idp',
  'x-ms-client-principal',
  'x-foundry-auth-principal-type',
  'x-foundry-auth-tenant-id',
  'x-request-id',
] as const;
