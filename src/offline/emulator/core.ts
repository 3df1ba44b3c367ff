import type { Clock } from '../../ops/clock.js';
import type { Logger } from '../../ops/log.js';
import { Directory } from './directory.js';
import { CallCounters, Faults } from './faults.js';
import { decodeJwt, numberClaim, privateKeyOf, publicKeyOf, signJwt, signatureValid, stringClaim, type Claims } from './jwt.js';
import type { SigningKey, State, Tenant } from './model.js';
import { writeStateFile } from './state.js';

/** The listeners' base URLs, known once both are bound. */
export interface Bases {
  readonly https: string;
  readonly http: string;
}

/** Tokens older than this past `exp` (or this early before `nbf`) are refused by the emulator's own APIs. */
export const CLOCK_SKEW_SECONDS = 300;

export type TokenCheck =
  | { readonly ok: true; readonly claims: Claims; readonly tenant: Tenant; readonly version: 1 | 2 }
  | { readonly ok: false; readonly reason: 'malformed' | 'signature' | 'issuer' | 'expired' | 'not_yet_valid'; readonly exp?: number };

/** The emulator's state and the services every handler shares. */
export class Emulator {
  readonly directory: Directory;
  readonly faults = new Faults();
  readonly counters = new CallCounters();
  bases: Bases = { https: '', http: '' };

  constructor(
    public state: State,
    private readonly stateFile: string | undefined,
    private readonly baseClock: Clock,
    readonly log: Logger,
  ) {
    this.directory = new Directory(this);
  }

  /** Milliseconds since the epoch on the emulator's clock (the base clock moved by the admin API). */
  now(): number {
    return this.baseClock.now() + this.state.clockOffsetMs;
  }

  nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** Moves the emulator clock so that now() returns `ms`. */
  setNow(ms: number): void {
    this.state.clockOffsetMs = ms - this.baseClock.now();
    this.changed();
  }

  /** Persists the state after a change (no-op without `--state`). */
  changed(): void {
    if (this.stateFile !== undefined) writeStateFile(this.stateFile, this.state);
  }

  get defaultTenant(): Tenant {
    const t = this.directory.tenant(this.state.defaultTenantId);
    if (t === undefined) throw new Error('emulator state has no default tenant');
    return t;
  }

  /** Both listeners' base URLs (a token or an issuer may name either). */
  allBases(): string[] {
    return [this.bases.https, this.bases.http].filter((b) => b !== '');
  }

  ownUrls(): { graph: string[]; arm: string[] } {
    return { graph: this.allBases().map((b) => `${b}/graph`), arm: this.allBases().map((b) => `${b}/arm`) };
  }

  activeKey(tenant: Tenant): SigningKey {
    const key = [...tenant.signingKeys].reverse().find((k) => k.active) ?? tenant.signingKeys[tenant.signingKeys.length - 1];
    if (key === undefined) throw new Error(`tenant ${tenant.id} has no signing key`);
    return key;
  }

  /** Signs an access or ID token with the tenant's active key; v1 tokens also carry `x5t`, as Entra's do. */
  sign(tenant: Tenant, claims: Claims, v1: boolean): string {
    const key = this.activeKey(tenant);
    const header: Claims = v1 ? { typ: 'JWT', alg: 'RS256', x5t: key.kid, kid: key.kid } : { typ: 'JWT', alg: 'RS256', kid: key.kid };
    return signJwt(header, claims, privateKeyOf(key.keyPem));
  }

  v2Issuer(base: string, tenantId: string): string {
    return `${base}/${tenantId}/v2.0`;
  }

  /**
   * Checks a token the emulator issued (signature by a published key of the token's tenant, issuer,
   * lifetime on the emulator clock with CLOCK_SKEW_SECONDS). The audience is the caller's to check.
   */
  checkToken(token: string): TokenCheck {
    const jwt = decodeJwt(token);
    if (jwt === null) return { ok: false, reason: 'malformed' };
    const tid = stringClaim(jwt.payload, 'tid');
    const kid = stringClaim(jwt.header, 'kid');
    const tenant = tid === undefined ? undefined : this.directory.tenant(tid);
    if (tenant === undefined || tenant.id !== tid || kid === undefined) return { ok: false, reason: 'malformed' };
    const key = tenant.signingKeys.find((k) => k.kid === kid);
    if (key === undefined || !signatureValid(jwt, publicKeyOf(key.keyPem))) return { ok: false, reason: 'signature' };
    const iss = stringClaim(jwt.payload, 'iss');
    const version =
      iss === `https://sts.windows.net/${tenant.id}/` ? 1 : this.allBases().some((b) => iss === this.v2Issuer(b, tenant.id)) ? 2 : undefined;
    if (version === undefined) return { ok: false, reason: 'issuer' };
    const now = this.nowSeconds();
    const exp = numberClaim(jwt.payload, 'exp');
    if (exp === undefined || now > exp + CLOCK_SKEW_SECONDS)
      return exp === undefined ? { ok: false, reason: 'malformed' } : { ok: false, reason: 'expired', exp };
    const nbf = numberClaim(jwt.payload, 'nbf');
    if (nbf !== undefined && now + CLOCK_SKEW_SECONDS < nbf) return { ok: false, reason: 'not_yet_valid' };
    return { ok: true, claims: jwt.payload, tenant, version };
  }
}
