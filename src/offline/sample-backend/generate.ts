import { createHash } from 'node:crypto';

/**
 * Deterministic "model output" for the sample backend: the same request always yields the same
 * text, tokens and vectors, so tests and demos can assert on them.
 */

const SENTENCES = [
  'The sample backend answers every request the same way, so tests can rely on it.',
  'Requests reach it only after foundry-auth has checked the token and the role assignment.',
  'Each word arrives as its own server-sent event at the configured token rate.',
  'Nothing here runs a real model; the text is derived from your last message.',
  'Swap this server for Foundry Local and the sidecar configuration stays the same.',
];

/** Completion length when the request sets no `max_tokens`. */
export const DEFAULT_MAX_TOKENS = 64;

/** The reply to a prompt: an echo of it, then sentences chosen by the prompt's hash. */
export function replyText(prompt: string): string {
  const digest = createHash('sha256').update(prompt, 'utf8').digest();
  const first = digest[0]! % SENTENCES.length;
  const said = oneLine(prompt, 80).replace(/[.!?]+$/, '');
  const echo = said === '' ? 'You said nothing.' : `You said: ${said}.`;
  return [echo, SENTENCES[first]!, SENTENCES[(first + 1) % SENTENCES.length]!].join(' ');
}

/** Splits text into tokens: each word with its leading space, as streamed deltas look. */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}

/** Rough token count of a prompt (whitespace-separated words). */
export function countTokens(text: string): number {
  return text.match(/\S+/g)?.length ?? 0;
}

export interface Completion {
  readonly tokens: readonly string[];
  readonly finishReason: 'stop' | 'length';
}

/** The reply's tokens, cut at `maxTokens` (then `finish_reason` is `length`). */
export function complete(prompt: string, maxTokens: number | undefined): Completion {
  const all = tokenize(replyText(prompt));
  const limit = maxTokens ?? DEFAULT_MAX_TOKENS;
  return all.length > limit ? { tokens: all.slice(0, limit), finishReason: 'length' } : { tokens: all, finishReason: 'stop' };
}

/** Default embedding size (all-MiniLM-L6-v2's); `dimensions` in the request overrides it. */
export const DEFAULT_DIMENSIONS = 384;

/** A unit-length vector derived from the input's SHA-256 (a counter-mode stream of hashes). */
export function embed(input: string, dimensions: number): Float32Array {
  const vector = new Float32Array(dimensions);
  let block = Buffer.alloc(0);
  let counter = 0;
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    const offset = (i * 2) % 32;
    if (offset === 0) block = createHash('sha256').update(`${counter++}:${input}`, 'utf8').digest();
    const value = block.readUInt16BE(offset) / 32767.5 - 1;
    vector[i] = value;
    norm += value * value;
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < dimensions; i++) vector[i] = vector[i]! * scale;
  return vector;
}

/** The OpenAI `encoding_format: "base64"` form: little-endian float32 bytes. */
export function embeddingBase64(vector: Float32Array): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes.toString('base64');
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
