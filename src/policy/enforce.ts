import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Principal } from '../contracts/principal.js';
import { rejection, type Rejection } from '../contracts/errors.js';
import type { RouteMatch } from '../contracts/route.js';
import type { ExchangeTap } from '../contracts/stages.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { principalName, rateLimitHeaders, type Limiter, type RateLimitState } from './limiter.js';
import { modelOf } from './model.js';
import type { PolicyFile } from './policy-file.js';
import type { Limits, Policy } from './policy.js';
import { UsageMeter, type TokenUsage } from './usage.js';

/**
 * The policy's place in the request path, after authorization and before forwarding:
 *
 * 1. limits: a principal with a spent window is refused 429 before anything else is read;
 * 2. model rules (only when the policy has some): a data-plane POST body is read, bounded by
 *    `--max-body-bytes`, its model checked (403 `model_not_allowed`), and exactly those bytes are
 *    forwarded; `GET /v1/models` is filtered to the caller's models, `/v1/models/{id}` of another 404;
 * 3. the response passes a tap: `x-ratelimit-*` headers, usage read as chunks go by, charged at the end.
 */
export interface PolicyStageOptions {
  readonly file: PolicyFile;
  readonly limiter: Limiter;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly maxBodyBytes: number;
}

export type PolicyVerdict =
  /** `exchange` is undefined when the policy has nothing to do with the response (no limit applies, no model is metered). */
  | { readonly kind: 'forward'; readonly exchange: PolicyExchange | undefined }
  | { readonly kind: 'reject'; readonly rejection: Rejection }
  /** The client left while its body was read: nothing to answer. */
  | { readonly kind: 'gone' };

/** What the audit line learns from the policy. */
export interface PolicyRecord {
  model?: string;
  tokens?: TokenUsage;
  /** Milliseconds from the request's arrival to the first response body byte. */
  timeToFirstTokenMs?: number;
}

/** Distinct model label values kept in the metrics; later models are counted as `other`. */
const MAX_MODEL_LABELS = 100;

/** A request the policy lets through without looking at its exchange. */
const FORWARD_UNTAPPED: PolicyVerdict = { kind: 'forward', exchange: undefined };

export class PolicyStage {
  private readonly modelLabels = new Set<string>();

  constructor(private readonly opts: PolicyStageOptions) {}

  /** `letBodyCome`: answers `Expect: 100-continue`, called just before the body is read. */
  check(
    req: IncomingMessage,
    path: string,
    route: RouteMatch,
    principal: Principal,
    startedAt: number,
    letBodyCome: () => void,
  ): PolicyVerdict | Promise<PolicyVerdict> {
    const policy = this.opts.file.current;
    const limits = policy.limitsFor(principal);
    if (limits === undefined) return this.afterLimits(policy, req, letBodyCome, path, route, principal, undefined, undefined, startedAt);
    const admission = this.opts.limiter.admit(principal, limits);
    const decide = (a: Awaited<typeof admission>): PolicyVerdict | Promise<PolicyVerdict> => {
      if (a.kind === 'refused') return { kind: 'reject', rejection: { ...a.rejection, headers: rateLimitHeaders(a.state) } };
      return this.afterLimits(policy, req, letBodyCome, path, route, principal, limits, a.state, startedAt);
    };
    return admission instanceof Promise ? admission.then(decide) : decide(admission);
  }

  private afterLimits(
    policy: Policy,
    req: IncomingMessage,
    letBodyCome: () => void,
    path: string,
    route: RouteMatch,
    principal: Principal,
    limits: Limits | undefined,
    state: RateLimitState | undefined,
    startedAt: number,
  ): PolicyVerdict | Promise<PolicyVerdict> {
    // Only POSTs to the data plane name a model (and are metered); other requests need the tap only for the limit headers.
    const modelRequest = route.plane === 'data' && req.method === 'POST';
    // Nothing to meter, no limit to report, no model rule to apply: the common case allocates nothing.
    if (state === undefined && !modelRequest && (!policy.hasModelRules || route.plane !== 'data')) return FORWARD_UNTAPPED;
    const exchange = (model: string | undefined, body: Buffer | undefined, listFilter?: Policy): PolicyExchange =>
      new PolicyExchange(this, principal, limits, state, model, body, listFilter, startedAt, modelRequest);
    const plain = (): PolicyVerdict => ({
      kind: 'forward',
      exchange: modelRequest || state !== undefined ? exchange(undefined, undefined) : undefined,
    });
    if (!policy.hasModelRules || route.plane !== 'data') return plain();
    if (path === MODELS_PATH) return { kind: 'forward', exchange: exchange(undefined, undefined, policy) };
    if (path.startsWith(MODELS_PREFIX)) {
      const id = decodedSegment(path.slice(MODELS_PREFIX.length));
      if (id === undefined || policy.modelAccess(id, principal).kind === 'denied') {
        return { kind: 'reject', rejection: rejection('model_not_found', `The model '${id ?? path.slice(MODELS_PREFIX.length)}' does not exist`) };
      }
      return { kind: 'forward', exchange: exchange(id, undefined) };
    }
    if (!modelRequest) return plain();
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.opts.maxBodyBytes) return { kind: 'reject', rejection: tooLarge(this.opts.maxBodyBytes) };
    letBodyCome();
    return readBody(req, this.opts.maxBodyBytes).then((read): PolicyVerdict => {
      if (read.kind === 'gone') return read;
      if (read.kind === 'too_large') return { kind: 'reject', rejection: tooLarge(this.opts.maxBodyBytes) };
      const found = modelOf(read.body, req.headers['content-type']);
      if (found.kind === 'invalid')
        return {
          kind: 'reject',
          rejection: rejection('invalid_request', `${found.message}; with model rules in force every request names its model`),
        };
      const access = policy.modelAccess(found.model, principal);
      if (access.kind === 'denied') {
        const { rule } = access;
        const allowedBy = [...rule.roles.map((r) => `app role ${r}`), ...rule.principals.map((p) => `principal ${p}`)];
        return {
          kind: 'reject',
          rejection: rejection(
            'model_not_allowed',
            `${principalName(principal)} may not use model ${found.model}: the policy rule "${rule.match}" allows ` +
              (allowedBy.length > 0
                ? `${allowedBy.join(', ')}; ask for one of these app roles to be assigned to you or a group you are in, then get a new token`
                : 'nobody'),
            { reason: 'model_rule' },
          ),
        };
      }
      return { kind: 'forward', exchange: exchange(found.model, read.body) };
    });
  }

  /** @internal Counts a finished exchange: metrics (never by principal), then the charge. */
  finished(
    principal: Principal,
    limits: Limits | undefined,
    model: string | undefined,
    usage: TokenUsage | undefined,
    ttftSeconds: number | undefined,
  ): void {
    const label = model === undefined ? undefined : this.modelLabel(model);
    if (label !== undefined && usage !== undefined) {
      this.opts.metrics.genAiTokens.inc({ model: label, type: 'input' }, usage.input);
      this.opts.metrics.genAiTokens.inc({ model: label, type: 'output' }, usage.output);
    }
    if (label !== undefined && ttftSeconds !== undefined) this.opts.metrics.genAiTimeToFirstToken.observe({ model: label }, ttftSeconds);
    if (limits === undefined || usage === undefined) return;
    this.opts.limiter.charge(principal, limits, usage.input + usage.output).catch((err: unknown) => {
      this.opts.log.error({ err: (err as Error).message }, 'could not charge tokens to the limit windows');
    });
  }

  private modelLabel(model: string): string {
    if (this.modelLabels.has(model)) return model;
    if (this.modelLabels.size >= MAX_MODEL_LABELS) return 'other';
    this.modelLabels.add(model);
    return model;
  }
}

const MODELS_PATH = '/v1/models';
const MODELS_PREFIX = '/v1/models/';

/**
 * One forwarded request under the policy: the body read (if any), then a tap on the response.
 * Usage is counted only for a 2xx response (an upstream error generated nothing).
 */
export class PolicyExchange implements ExchangeTap {
  readonly record: PolicyRecord = {};
  private meter: UsageMeter | undefined;
  private firstChunkAt = 0;
  private done = false;

  constructor(
    private readonly stage: PolicyStage,
    private readonly principal: Principal,
    private readonly limits: Limits | undefined,
    private readonly state: RateLimitState | undefined,
    model: string | undefined,
    /** The request body as read, forwarded byte for byte; undefined when the body streams through. */
    readonly body: Buffer | undefined,
    /** Set for `GET /v1/models`: the list is filtered by this policy. */
    private readonly listFilter: Policy | undefined,
    private readonly startedAt: number,
    /** A model request: its response is metered for tokens. */
    private readonly metered: boolean,
  ) {
    if (model !== undefined) this.record.model = model;
  }

  /**
   * The upstream's response head: the headers to add (replacing the upstream's own of the same
   * name), and whether the body is to be held and handed to `rewrite` instead of streamed.
   */
  onResponseHead(
    status: number,
    contentType: string | undefined,
    requestBytes: number,
  ): { readonly headers: readonly (readonly [string, string])[]; readonly hold: boolean } {
    const headers = this.state !== undefined ? rateLimitHeaders(this.state) : NO_HEADERS;
    if (this.listFilter !== undefined && status === 200) return { headers, hold: true };
    if (this.metered && status >= 200 && status < 300) {
      this.meter = new UsageMeter(this.body?.length ?? requestBytes);
      this.meter.onResponseHead(contentType);
    }
    return { headers, hold: false };
  }

  /** A response body chunk, after it was written to the client. */
  onResponseChunk(chunk: Buffer): void {
    if (this.firstChunkAt === 0) this.firstChunkAt = performance.now();
    this.meter?.onResponseChunk(chunk);
  }

  /** The exchange ended (completely, cut by the upstream, or abandoned by the client). */
  onEnd(): void {
    if (this.done) return;
    this.done = true;
    const usage = this.meter?.finish();
    if (this.record.model === undefined && this.meter?.responseModel !== undefined) this.record.model = this.meter.responseModel;
    if (usage !== undefined) this.record.tokens = usage;
    const ttft = this.firstChunkAt !== 0 && this.meter !== undefined ? this.firstChunkAt - this.startedAt : undefined;
    if (ttft !== undefined) this.record.timeToFirstTokenMs = ttft;
    this.stage.finished(this.principal, this.limits, this.record.model, usage, ttft === undefined ? undefined : ttft / 1000);
  }

  /**
   * `GET /v1/models` held whole: the list without the models this caller may not use. Undefined
   * when the body is not a list this can filter: the caller then gets an error, never the full list.
   */
  rewrite(body: Buffer, contentEncoding: string | undefined): Buffer | undefined {
    const policy = this.listFilter;
    if (policy === undefined) return body;
    if (contentEncoding !== undefined && contentEncoding.toLowerCase() !== 'identity') return undefined;
    let list: unknown;
    try {
      list = JSON.parse(body.toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof list !== 'object' || list === null || !Array.isArray((list as { data?: unknown }).data)) return undefined;
    const data = (list as { data: unknown[] }).data.filter((m) => {
      const id = typeof m === 'object' && m !== null ? (m as { id?: unknown }).id : undefined;
      return typeof id === 'string' && policy.modelAccess(id, this.principal).kind === 'allowed';
    });
    return Buffer.from(JSON.stringify({ ...list, data }), 'utf8');
  }
}

const NO_HEADERS: readonly (readonly [string, string])[] = [];

type BodyRead = { readonly kind: 'body'; readonly body: Buffer } | { readonly kind: 'too_large' } | { readonly kind: 'gone' };

/** Reads the whole request body, at most `max` bytes (a larger one stops the read: the connection is closed with the 413). */
function readBody(req: IncomingMessage, max: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (result: BodyRead): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) {
        req.pause();
        settle({ kind: 'too_large' });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => settle({ kind: 'body', body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    const onClose = (): void => {
      if (!req.complete) settle({ kind: 'gone' });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onClose);
  });
}

function tooLarge(max: number): Rejection {
  return rejection(
    'request_too_large',
    `the request body is larger than ${max} bytes (--max-body-bytes), the most foundry-auth reads to check its model`,
  );
}

/** A path segment percent-decoded (`%2F` may name a model with a slash), or undefined when it does not decode. */
function decodedSegment(segment: string): string | undefined {
  try {
    const id = decodeURIComponent(segment);
    return id === '' ? undefined : id;
  } catch {
    return undefined;
  }
}
