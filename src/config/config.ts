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
}

export interface ServeConfig {
  readonly listen: HostPort;
  readonly adminListen: HostPort;
  readonly upstream: URL;
  readonly controlUpstream: URL;
  /** Absent when only API keys are configured. */
  readonly entra?: EntraConfig;
  readonly apiKeysFile?: string;
  readonly rbac: RbacConfig;
  readonly publicPaths: readonly string[];
  readonly routesFile?: string;
  readonly policyFile?: string;
  /** Largest request body read before forwarding when the policy has model rules. */
  readonly maxBodyBytes: number;
  readonly forwardAuthorization: boolean;
  readonly upstreamHeadersTimeoutMs: number;
  readonly upstreamBodyTimeoutMs: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: LogLevel;
  readonly logFormat: 'json' | 'pretty';
}
