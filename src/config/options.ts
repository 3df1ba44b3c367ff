/**
 * Every `serve` setting of SPEC section 2, declared once. Flags, environment variables
 * (`FOUNDRY_AUTH_<FLAG>`) and config-file keys (camelCase) are all derived from this table.
 */
export type OptionKind =
  'hostport' | 'url' | 'guid' | 'guid-list' | 'list' | 'string' | 'path' | 'duration' | 'bytes' | 'boolean' | 'number' | 'enum';

export interface OptionSpec {
  /** Flag without dashes, e.g. `tenant-id`. */
  readonly flag: string;
  readonly kind: OptionKind;
  readonly description: string;
  /** Default as a user would type it; absent when there is none or it is derived from another option. */
  readonly default?: string;
  readonly choices?: readonly string[];
  /** The value, or the file it names, is a secret: `manifests` mounts it from a Kubernetes Secret and never prints it. */
  readonly secret?: boolean;
}

export const SERVE_OPTIONS = [
  { flag: 'config', kind: 'path', description: 'YAML or JSON file with camelCase keys (flag > env > file > default)' },
  { flag: 'listen', kind: 'hostport', default: '0.0.0.0:8080', description: 'where clients connect' },
  { flag: 'admin-listen', kind: 'hostport', default: '127.0.0.1:9090', description: '/healthz, /readyz, /metrics' },
  {
    flag: 'mode',
    kind: 'enum',
    default: 'proxy',
    choices: ['proxy', 'forward-auth'],
    description: 'proxy: authorize and forward; forward-auth: answer the authorization checks of a proxy that forwards itself',
  },
  {
    flag: 'upstream',
    kind: 'url',
    description: 'data-plane base URL (Foundry Local chat server); required in proxy mode, refused in forward-auth mode',
  },
  { flag: 'control-upstream', kind: 'url', description: 'control-plane base URL (model/deployment API); default: --upstream' },
  { flag: 'tenant-id', kind: 'guid', description: 'directory (tenant) ID; required for Entra ID' },
  { flag: 'client-id', kind: 'guid', description: "the app registration's Application (client) ID; required for Entra ID" },
  { flag: 'allowed-tenants', kind: 'guid-list', description: 'comma list of tenants whose tokens are accepted; default: --tenant-id' },
  {
    flag: 'authority',
    kind: 'url',
    default: 'https://login.microsoftonline.com',
    description: 'Entra ID authority; http:// only for loopback hosts',
  },
  { flag: 'audiences', kind: 'list', description: 'accepted aud values; default: <client-id>,api://<client-id>' },
  { flag: 'required-scope', kind: 'string', default: 'foundry_access', description: 'delegated scope a user token must carry in scp' },
  { flag: 'required-app-role', kind: 'string', default: 'FoundryInferenceAccess', description: 'app role an app-only token must carry in roles' },
  { flag: 'clock-skew', kind: 'duration', default: '300s', description: 'tolerance on exp/nbf/iat' },
  { flag: 'api-keys-file', kind: 'path', secret: true, description: 'enables API keys: one key per line (# comments), re-read every 5 s' },
  { flag: 'rbac', kind: 'enum', default: 'arm', choices: ['arm', 'static'], description: 'authorization source' },
  { flag: 'rbac-scope', kind: 'string', description: 'ARM resource ID of the Arc connected cluster; required for --rbac arm' },
  { flag: 'role-assignments-file', kind: 'path', description: 'assignments, groups and custom roles; required for --rbac static' },
  { flag: 'arm-endpoint', kind: 'url', default: 'https://management.azure.com', description: 'Azure Resource Manager endpoint' },
  {
    flag: 'identity',
    kind: 'enum',
    default: 'auto',
    choices: ['auto', 'msi-adapter', 'workload-identity', 'client-secret', 'azure-cli'],
    description: 'how the sidecar gets its own ARM token',
  },
  {
    flag: 'msi-endpoint',
    kind: 'url',
    default: 'http://127.0.0.1:8421/metadata/identity/oauth2/token',
    description: 'the Arc msi-adapter (IMDS shape)',
  },
  { flag: 'rbac-allow-ttl', kind: 'duration', default: '300s', description: 'how long an allow is cached' },
  { flag: 'rbac-deny-ttl', kind: 'duration', default: '30s', description: 'how long a deny is cached' },
  {
    flag: 'rbac-stale-if-error',
    kind: 'duration',
    default: '0s',
    description: 'how long past its TTL a cached decision may be used while ARM fails',
  },
  { flag: 'rbac-timeout', kind: 'duration', default: '10s', description: 'one ARM call' },
  {
    flag: 'shared-cache',
    kind: 'string',
    description: 'redis:// or rediss:// URL of a Redis (or Valkey) that replicas share RBAC lookups, ARM budget and flushes through',
  },
  { flag: 'shared-cache-password-file', kind: 'path', description: 'file holding the password for --shared-cache (instead of one in the URL)' },
  {
    flag: 'shared-cache-timeout',
    kind: 'duration',
    default: '50ms',
    description: 'a shared-cache operation slower than this makes the replica go on alone until Redis answers in time again',
  },
  {
    flag: 'arm-read-rate',
    kind: 'number',
    default: '10',
    description: 'role-assignment reads per second for the cluster identity, across replicas with --shared-cache',
  },
  { flag: 'public-paths', kind: 'list', default: '/healthz,/readyz', description: 'forwarded to the data upstream without authentication' },
  { flag: 'routes-file', kind: 'path', description: 'extra or replacement routes' },
  { flag: 'policy-file', kind: 'path', description: 'model access rules and token limits (YAML or JSON), reloaded on change' },
  {
    flag: 'max-body-bytes',
    kind: 'bytes',
    default: '16MiB',
    description: 'largest request body read to find its model (only with model rules); 413 above',
  },
  {
    flag: 'forward-auth-profile',
    kind: 'enum',
    choices: ['envoy', 'nginx', 'forwarded'],
    description: 'forward-auth: where the original request is read from; required in forward-auth mode',
  },
  {
    flag: 'trusted-proxies',
    kind: 'list',
    description:
      'forward-auth: comma list of IPs/CIDRs allowed to ask, or unix for the peers of --forward-auth-socket; required in forward-auth mode',
  },
  {
    flag: 'forward-auth-socket',
    kind: 'string',
    description:
      'forward-auth: answer the checks on this Unix socket instead of --listen (a proxy on the same host or in the same pod); needs unix in --trusted-proxies',
  },
  {
    flag: 'forward-auth-path-prefix',
    kind: 'string',
    description: 'forward-auth, envoy profile: the prefix the proxy puts before the original path (Envoy path_prefix)',
  },
  { flag: 'forward-authorization', kind: 'boolean', default: 'false', description: "pass the caller's Authorization/api-key upstream" },
  { flag: 'upstream-api-key-file', kind: 'path', secret: true, description: "the upstream's own API key, sent as api-key (re-read every 5 s)" },
  { flag: 'upstream-headers-timeout', kind: 'duration', default: '600s', description: 'longest wait for upstream response headers' },
  { flag: 'upstream-body-timeout', kind: 'duration', default: '300s', description: 'longest silence between two body chunks' },
  {
    flag: 'keep-alive-timeout',
    kind: 'duration',
    default: '65m',
    description:
      'how long an idle client or proxy connection stays open (1s-24h): longer than the proxy or load balancer in front keeps its idle connections',
  },
  { flag: 'shutdown-grace', kind: 'duration', default: '30s', description: 'drain time after SIGTERM' },
  {
    flag: 'log-level',
    kind: 'enum',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    description: 'log level',
  },
  {
    flag: 'dev-state-dir',
    kind: 'path',
    description: 'set by foundry-auth dev: the grant command in 403 messages adds --dev DIR so it acts on the dev stack',
  },
  { flag: 'log-format', kind: 'enum', default: 'json', choices: ['json', 'pretty'], description: 'json, or pretty for humans' },
] as const satisfies readonly OptionSpec[];

export type ServeFlag = (typeof SERVE_OPTIONS)[number]['flag'];

export function envName(flag: string): string {
  return `FOUNDRY_AUTH_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export function fileKey(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
