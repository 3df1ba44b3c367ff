/**
 * Token accounting on a response as it passes through, never holding it back: every chunk is
 * forwarded first and only then looked at. An SSE stream is read event by event (the final chunk
 * carries `usage` when the client asked with `stream_options.include_usage`; each content delta is
 * counted in case it does not); a JSON response is copied aside, bounded, and its `usage` read at
 * the end. What is kept is bounded whatever the upstream sends.
 */
export interface TokenUsage {
  readonly input: number;
  readonly output: number;
  /** True when the upstream reported no usage and the counts are foundry-auth's estimate. */
  readonly estimated: boolean;
}

/** Longest SSE line looked at; a longer one (not a chat chunk) is skipped, not buffered. */
const MAX_EVENT_LINE = 256 * 1024;
/** A JSON response up to this size is parsed whole at its end. */
const MAX_JSON_COPY = 1024 * 1024;
/** Of a larger one, the last bytes are kept and searched for the `usage` object (it comes last). */
const JSON_TAIL = 64 * 1024;
/** A longer `model` in a response is not a model name worth a metric label. */
const MAX_MODEL_NAME = 256;

const enum Shape {
  Unknown,
  EventStream,
  Json,
  Other,
}

export class UsageMeter {
  /** The `model` the response names (the upstream's own name for it), when it names one. */
  responseModel: string | undefined;
  private shape = Shape.Unknown;
  private reported: { input: number; output: number } | undefined;
  private deltas = 0;
  private responseBytes = 0;
  /** SSE: the unfinished line; JSON: the copy (or its tail once over MAX_JSON_COPY). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private skippingLine = false;
  private truncated = false;

  /** `requestBytes`: the request body's size, for the input estimate (bytes / 4). */
  constructor(private readonly requestBytes: number) {}

  onResponseHead(contentType: string | undefined): void {
    const type = (contentType ?? '').toLowerCase();
    this.shape = type.startsWith('text/event-stream') ? Shape.EventStream : type.startsWith('application/json') ? Shape.Json : Shape.Other;
  }

  /** Called after the chunk was written to the client. */
  onResponseChunk(chunk: Buffer): void {
    this.responseBytes += chunk.length;
    if (this.shape === Shape.EventStream) this.scanEvents(chunk);
    else if (this.shape === Shape.Json) this.copy(chunk);
  }

  /** The usage of the whole exchange; call once the response ended (or was cut). */
  finish(): TokenUsage {
    if (this.shape === Shape.Json) this.readJsonUsage();
    if (this.reported !== undefined) return { input: this.reported.input, output: this.reported.output, estimated: false };
    const input = Math.ceil(this.requestBytes / 4);
    const output = this.shape === Shape.EventStream ? this.deltas : Math.ceil(this.responseBytes / 4);
    return { input, output, estimated: true };
  }

  private scanEvents(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.skippingLine) {
        this.skippingLine = false;
        continue;
      }
      const line = this.pendingBytes > 0 ? Buffer.concat([...this.pending, piece]) : piece;
      this.pending = [];
      this.pendingBytes = 0;
      this.onEventLine(line);
    }
    if (start < chunk.length && !this.skippingLine) {
      const rest = chunk.subarray(start);
      if (this.pendingBytes + rest.length > MAX_EVENT_LINE) {
        this.pending = [];
        this.pendingBytes = 0;
        this.skippingLine = true;
      } else {
        // Copied: the chunk's memory belongs to the socket layer.
        this.pending.push(Buffer.from(rest));
        this.pendingBytes += rest.length;
      }
    }
  }

  private onEventLine(line: Buffer): void {
    // `data:` field lines only (`data: {...}`); comments, `event:`, `id:` and blank lines carry no tokens.
    if (line.length < 6 || line[0] !== 0x64 || line[1] !== 0x61 || line[2] !== 0x74 || line[3] !== 0x61 || line[4] !== 0x3a) return;
    const text = line.toString('utf8', 5).trim();
    if (text === '' || text === '[DONE]') return;
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof event !== 'object' || event === null) return;
    const { usage, choices, model } = event as { usage?: unknown; choices?: unknown; model?: unknown };
    this.noteModel(model);
    const reported = usageOf(usage);
    if (reported !== undefined) this.reported = reported;
    if (!Array.isArray(choices)) return;
    for (const choice of choices as unknown[]) {
      if (typeof choice !== 'object' || choice === null) continue;
      const { delta, text: completionText } = choice as { delta?: { content?: unknown }; text?: unknown };
      const content = typeof delta === 'object' && delta !== null ? delta.content : completionText;
      if (typeof content === 'string' && content !== '') this.deltas++;
    }
  }

  private noteModel(model: unknown): void {
    if (this.responseModel === undefined && typeof model === 'string' && model !== '' && model.length <= MAX_MODEL_NAME) this.responseModel = model;
  }

  private copy(chunk: Buffer): void {
    this.pending.push(Buffer.from(chunk));
    this.pendingBytes += chunk.length;
    if (this.pendingBytes <= MAX_JSON_COPY && !this.truncated) return;
    // Over the bound: keep only the tail, where `usage` is in every OpenAI-shaped response.
    this.truncated = true;
    const all = Buffer.concat(this.pending);
    const tail = all.subarray(Math.max(0, all.length - JSON_TAIL));
    this.pending = [Buffer.from(tail)];
    this.pendingBytes = tail.length;
  }

  private readJsonUsage(): void {
    const text = Buffer.concat(this.pending).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.truncated) {
      try {
        const body = JSON.parse(text) as { usage?: unknown; model?: unknown } | null;
        if (typeof body !== 'object' || body === null) return;
        this.noteModel(body.model);
        this.reported = usageOf(body.usage);
      } catch {
        // Not JSON after all (or cut short): estimated below.
      }
      return;
    }
    const at = text.lastIndexOf('"usage"');
    const match = at < 0 ? null : /^"usage"\s*:\s*(\{[^{}]*\})/.exec(text.slice(at));
    if (match === null) return;
    try {
      this.reported = usageOf(JSON.parse(match[1]!));
    } catch {
      // Estimated below.
    }
  }
}

/** OpenAI's `usage`: `prompt_tokens` and `completion_tokens` (absent for embeddings) as non-negative integers. */
function usageOf(usage: unknown): { input: number; output: number } | undefined {
  if (typeof usage !== 'object' || usage === null) return undefined;
  const { prompt_tokens: input, completion_tokens: output } = usage as { prompt_tokens?: unknown; completion_tokens?: unknown };
  if (!isCount(input)) return undefined;
  if (output !== undefined && !isCount(output)) return undefined;
  return { input, output: output ?? 0 };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
