/** The one typed configuration of `serve`, produced by `load.ts` and validated once at start-up. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type RbacMode = 'arm' | 'static';
export type IdentitySource = 'auto' | 'msi-adapter' | 'workload-identity' | 'client-secret' | 'azure-cli';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface EntraConfig {
  readonly tenantId: string;
  readonly clientId: string;
  /** Lower-case GUIDs. */
  readonly allowedTenants: readonly string[];
  /** Without a trailing slash, e.g. `https://login.microsoftonline.com`. */
  readonly authority: string;
  readonly audiences: readonly string[];
  readonly requiredScope: string;
  readonly requiredAppRole: string;
  readonly clockSkewSeconds: number;
}

export interface RbacConfig {
  readonly mode: RbacMode;
  /** ARM resource ID of the connected cluster (always set for `arm`; for `static` it may come from the file). */
  readonly scope?: string;
  readonly roleAssignmentsFile?: string;
  /** Without a trailing slash. */
  readonly armEndpoint: string;
  readonly identity: IdentitySource;
  readonly msiEndpoint: string;
  readonly allowTtlMs: number;
  readonly denyTtlMs: number;
  readonly staleIfErrorMs: number;
  readonly timeoutMs: number;
  /** Role-assignment reads per second (`--arm-read-rate`): across replicas with a shared cache, per process without. */
  readonly armReadRate: number;
}

/** `--shared-cache`: the Redis (or Valkey) the replicas share lookups, ARM budget and flushes through. */
export interface SharedCacheConfig {
  /** `redis://` or `rediss://`, as given (it may carry a user and password: never log it as is). */
  readonly url: URL;
  /** From `--shared-cache-password-file`; overrides a password in the URL. */
  readonly password?: string;
  /** An operation slower than this (`--shared-cache-timeout`) counts as an outage. */
  readonly timeoutMs: number;
}

/** `proxy` authorizes and forwards; `forward-auth` answers the checks of a proxy that forwards itself. */
export type ServeMode = 'proxy' | 'forward-auth';
export type ForwardAuthProfile = 'envoy' | 'nginx' | 'forwarded';

/** One entry of `--trusted-proxies`: an address (prefix = full length) or a CIDR. */
export interface TrustedProxy {
  readonly family: 'ipv4' | 'ipv6';
  readonly address: string;
  readonly prefix: number;
}

export interface ForwardAuthConfig {
  /** Where the original method, target and host are read from. */
  readonly profile: ForwardAuthProfile;
  /** TCP peers allowed to ask; empty only when the checks come over `socket`. */
  readonly trustedProxies: readonly TrustedProxy[];
  /**
   * `--forward-auth-socket`: the Unix socket the checks are answered on instead of `--listen`. Its
   * peers are trusted (`unix` in `--trusted-proxies` says so explicitly); who may connect is the
   * socket directory's permissions.
   */
  readonly socket?: string;
  /** `envoy` only: what the proxy puts before the original path (Envoy `path_prefix`); `''` when none. */
  readonly pathPrefix: string;
}

interface CommonServeConfig {
  readonly listen: HostPort;
  readonly adminListen: HostPort;
  /** Absent when only API keys are configured. */
  readonly entra?: EntraConfig;
  readonly apiKeysFile?: string;
  readonly rbac: RbacConfig;
  readonly sharedCache?: SharedCacheConfig;
  readonly publicPaths: readonly string[];
  readonly routesFile?: string;
  readonly policyFile?: string;
  /** Largest request body read before forwarding when the policy has model rules. */
  readonly maxBodyBytes: number;
  readonly forwardAuthorization: boolean;
  /** How long an idle keep-alive connection to the listener stays open. */
  readonly keepAliveTimeoutMs: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: LogLevel;
  readonly logFormat: 'json' | 'pretty';
  /** Set by `foundry-auth dev`: printed fix commands act on its stack (`--dev DIR`). */
  readonly devStateDir?: string;
}

export interface ProxyServeConfig extends CommonServeConfig {
  readonly mode: 'proxy';
  readonly upstream: URL;
  readonly controlUpstream: URL;
  readonly upstreamHeadersTimeoutMs: number;
  readonly upstreamBodyTimeoutMs: number;
  /** Sent upstream as `api-key`; never together with `forwardAuthorization`. */
  readonly upstreamApiKeyFile?: string;
}

export interface ForwardAuthServeConfig extends CommonServeConfig {
  readonly mode: 'forward-auth';
  readonly forwardAuth: ForwardAuthConfig;
}

export type ServeConfig = ProxyServeConfig | ForwardAuthServeConfig;
