import type { ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { CATALOG_DATE, type ModelRecord } from './catalog.js';
import { complete, countTokens, DEFAULT_DIMENSIONS, embed, embeddingBase64, type Completion } from './generate.js';
import { firstProblem, readJson, sendJson, sendOpenAiError, type RequestContext } from './http.js';
import type { ControlPlaneStore } from './store.js';

/**
 * The OpenAI-compatible data plane of the sample backend: `/v1/models`, `/v1/chat/completions`
 * (JSON and SSE), `/v1/completions`, `/v1/embeddings`. Errors use the OpenAI shape.
 */

export interface DataPlaneOptions {
  /** Tokens per second for streamed responses; 0 streams as fast as the client reads. */
  readonly tokenRate: number;
  readonly store: ControlPlaneStore;
  /** Unix seconds for `created`. */
  readonly now: () => number;
}

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
});
const maxTokens = z.number().int().min(1).max(1_000_000).nullish();
const streamOptions = z.looseObject({ include_usage: z.boolean().optional() }).nullish();

const chatRequest = z.looseObject({
  model: z.string().min(1),
  messages: z.array(message).min(1),
  stream: z.boolean().nullish(),
  stream_options: streamOptions,
  max_tokens: maxTokens,
  max_completion_tokens: maxTokens,
});

const completionRequest = z.looseObject({
  model: z.string().min(1),
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  stream: z.boolean().nullish(),
  stream_options: streamOptions,
  max_tokens: maxTokens,
});

const embeddingRequest = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()).min(1), z.array(z.number().int()).min(1), z.array(z.array(z.number().int()).min(1)).min(1)]),
  dimensions: z.number().int().min(1).max(3072).optional(),
  encoding_format: z.enum(['float', 'base64']).optional(),
});

export class DataPlane {
  private sequence = 0;

  constructor(private readonly opts: DataPlaneOptions) {}

  listModels(ctx: RequestContext): void {
    sendJson(ctx.res, 200, { object: 'list', data: this.opts.store.models().map(openAiModel) });
  }

  getModel(ctx: RequestContext, id: string): void {
    const model = this.opts.store.model(id);
    if (model === undefined)
      return sendOpenAiError(ctx.res, 404, `The model '${id}' does not exist`, 'model_not_found', 'model', 'invalid_request_error');
    sendJson(ctx.res, 200, openAiModel(model));
  }

  async chatCompletions(ctx: RequestContext): Promise<void> {
    const body = await this.parse(ctx, chatRequest);
    if (body === undefined || !this.knownModel(ctx, body.model)) return;
    const prompt = lastUserMessage(body.messages);
    const promptTokens = body.messages.reduce((n, m) => n + countTokens(contentText(m.content)), 0);
    const completion = complete(prompt, body.max_completion_tokens ?? body.max_tokens ?? undefined);
    const id = this.nextId('chatcmpl');
    const created = this.opts.now();
    const usage = usageOf(promptTokens, completion);
    if (body.stream === true) {
      const base = { id, object: 'chat.completion.chunk', created, model: body.model, system_fingerprint: 'fp_sample' };
      const chunks: unknown[] = [
        { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] },
      ];
      for (const token of completion.tokens)
        chunks.push({ ...base, choices: [{ index: 0, delta: { content: token }, logprobs: null, finish_reason: null }] });
      chunks.push({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: completion.finishReason }] });
      if (body.stream_options?.include_usage === true) chunks.push({ ...base, choices: [], usage });
      return this.stream(ctx, chunks, completion.tokens.length);
    }
    sendJson(ctx.res, 200, {
      id,
      object: 'chat.completion',
      created,
      model: body.model,
      system_fingerprint: 'fp_sample',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: completion.tokens.join(''), refusal: null },
          logprobs: null,
          finish_reason: completion.finishReason,
        },
      ],
      usage,
    });
  }

  async completions(ctx: RequestContext): Promise<void> {
    const body = await this.parse(ctx, completionRequest);
    if (body === undefined || !this.knownModel(ctx, body.model)) return;
    const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt.join('\n');
    const completion = complete(prompt, body.max_tokens ?? undefined);
    const id = this.nextId('cmpl');
    const created = this.opts.now();
    const usage = usageOf(countTokens(prompt), completion);
    if (body.stream === true) {
      const base = { id, object: 'text_completion', created, model: body.model };
      const chunks: unknown[] = completion.tokens.map((token) => ({
        ...base,
        choices: [{ index: 0, text: token, logprobs: null, finish_reason: null }],
      }));
      chunks.push({ ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: completion.finishReason }] });
      if (body.stream_options?.include_usage === true) chunks.push({ ...base, choices: [], usage });
      return this.stream(ctx, chunks, completion.tokens.length);
    }
    sendJson(ctx.res, 200, {
      id,
      object: 'text_completion',
      created,
      model: body.model,
      choices: [{ index: 0, text: completion.tokens.join(''), logprobs: null, finish_reason: completion.finishReason }],
      usage,
    });
  }

  async embeddings(ctx: RequestContext): Promise<void> {
    const body = await this.parse(ctx, embeddingRequest);
    if (body === undefined || !this.knownModel(ctx, body.model)) return;
    const inputs = embeddingInputs(body.input);
    const dimensions = body.dimensions ?? DEFAULT_DIMENSIONS;
    const data = inputs.map((input, index) => {
      const vector = embed(input, dimensions);
      return { object: 'embedding', index, embedding: body.encoding_format === 'base64' ? embeddingBase64(vector) : Array.from(vector) };
    });
    const tokens = inputs.reduce((n, input) => n + Math.max(1, countTokens(input)), 0);
    sendJson(ctx.res, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  }

  /** Writes each chunk as `data: <json>\n\n` at the token rate, then `data: [DONE]`; stops if the client leaves. */
  private async stream(ctx: RequestContext, chunks: readonly unknown[], tokens: number): Promise<void> {
    const res = ctx.res;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    const stop = new AbortController();
    res.once('close', () => stop.abort());
    const intervalMs = this.opts.tokenRate > 0 ? 1000 / this.opts.tokenRate : 0;
    ctx.tokens = 0;
    try {
      for (let i = 0; i < chunks.length; i++) {
        if (i > 0 && i <= tokens && intervalMs > 0) await delay(intervalMs, undefined, { signal: stop.signal });
        if (!write(res, `data: ${JSON.stringify(chunks[i])}\n\n`)) await drained(res, stop.signal);
        if (i > 0 && i <= tokens) ctx.tokens++;
      }
      res.end('data: [DONE]\n\n');
    } catch {
      // The client went away: the log line says so (`clientAborted`), nothing else to do.
    }
  }

  private async parse<T extends z.ZodType>(ctx: RequestContext, schema: T): Promise<z.infer<T> | undefined> {
    const body = await readJson(ctx.req);
    if (!body.ok) {
      sendOpenAiError(ctx.res, body.status, body.message, body.status === 413 ? 'request_too_large' : 'invalid_json');
      return undefined;
    }
    const parsed = schema.safeParse(body.value);
    if (!parsed.success) {
      const problem = firstProblem(parsed.error);
      sendOpenAiError(ctx.res, 400, problem.message, 'invalid_value', problem.param);
      return undefined;
    }
    return parsed.data;
  }

  private knownModel(ctx: RequestContext, model: string): boolean {
    if (this.opts.store.model(model) !== undefined) return true;
    sendOpenAiError(ctx.res, 404, `The model '${model}' does not exist`, 'model_not_found', 'model');
    return false;
  }

  private nextId(prefix: string): string {
    this.sequence += 1;
    return `${prefix}-sample${String(this.sequence).padStart(6, '0')}`;
  }
}

function openAiModel(model: ModelRecord): { id: string; object: 'model'; created: number; owned_by: string } {
  return {
    id: model.name,
    object: 'model',
    created: Math.floor(Date.parse(model.createdAt || CATALOG_DATE) / 1000),
    owned_by: model.source.type === 'custom' ? 'custom' : 'foundry-local',
  };
}

type Message = z.infer<typeof message>;

function contentText(content: Message['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((part) => (part.type === 'text' ? (part.text ?? '') : '')).join(' ');
  return '';
}

function lastUserMessage(messages: readonly Message[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return contentText(messages[i]!.content);
  return '';
}

function usageOf(promptTokens: number, completion: Completion): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: promptTokens, completion_tokens: completion.tokens.length, total_tokens: promptTokens + completion.tokens.length };
}

/** Strings as given; token arrays are embedded by their JSON text (deterministic all the same). */
function embeddingInputs(input: z.infer<typeof embeddingRequest>['input']): string[] {
  if (typeof input === 'string') return [input];
  if (input.every((item): item is string => typeof item === 'string')) return input;
  if (input.every((item): item is number => typeof item === 'number')) return [JSON.stringify(input)];
  return input.map((tokens) => JSON.stringify(tokens));
}

function write(res: ServerResponse, text: string): boolean {
  if (res.destroyed) throw new Error('client closed');
  return res.write(text);
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('client closed'));
    const onDrain = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => {
      res.off('drain', onDrain);
      reject(new Error('client closed'));
    };
    res.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
