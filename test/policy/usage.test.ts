import { describe, expect, it } from 'vitest';
import { UsageMeter } from '../../src/policy/usage.js';

const chunk = (content: string): string =>
  `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;

function feed(meter: UsageMeter, text: string, pieceSize: number): void {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += pieceSize) meter.onResponseChunk(bytes.subarray(i, i + pieceSize));
}

describe('usage from an SSE stream', () => {
  const usage = { prompt_tokens: 17, completion_tokens: 3, total_tokens: 20 };
  const stream =
    `data: ${JSON.stringify({ choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] })}\n\n` +
    chunk(' Hello') +
    chunk(' wor') +
    chunk('ld') +
    `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n` +
    `data: ${JSON.stringify({ choices: [], usage })}\n\n` +
    'data: [DONE]\n\n';

  it('reads usage from the final chunk, however the bytes are split', () => {
    for (const size of [1, 7, 64, 100_000]) {
      const meter = new UsageMeter(400);
      meter.onResponseHead('text/event-stream; charset=utf-8');
      feed(meter, stream, size);
      expect(meter.finish()).toEqual({ input: 17, output: 3, estimated: false });
    }
  });

  it('without a usage chunk: request bytes / 4 input, one token per content delta', () => {
    const meter = new UsageMeter(401);
    meter.onResponseHead('text/event-stream');
    feed(meter, stream.replace(/data: \{"choices":\[\],"usage".*\n\n/, '').replace(/\n/g, '\r\n'), 5);
    expect(meter.finish()).toEqual({ input: 101, output: 3, estimated: true });
  });

  it('completions stream text; comments and event lines carry no tokens; an over-long line is skipped, not kept', () => {
    const meter = new UsageMeter(0);
    meter.onResponseHead('text/event-stream');
    feed(
      meter,
      `: keep-alive\nevent: x\ndata: ${JSON.stringify({ choices: [{ text: 'a' }, { text: 'b' }] })}\n\ndata: ${'x'.repeat(300_000)}\n\n${chunk('c')}`,
      4096,
    );
    expect(meter.finish()).toEqual({ input: 0, output: 3, estimated: true });
  });
});

describe('usage from a JSON response', () => {
  it('reads usage when the body ends; a body without usage is estimated from its size', () => {
    const body = JSON.stringify({
      id: 'x',
      choices: [{ message: { content: 'hi' } }],
      usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 },
    });
    const meter = new UsageMeter(100);
    meter.onResponseHead('application/json');
    feed(meter, body, 10);
    expect(meter.finish()).toEqual({ input: 9, output: 2, estimated: false });

    const embeddings = new UsageMeter(100);
    embeddings.onResponseHead('application/json');
    feed(embeddings, JSON.stringify({ data: [], usage: { prompt_tokens: 5, total_tokens: 5 } }), 3);
    expect(embeddings.finish()).toEqual({ input: 5, output: 0, estimated: false });

    const bare = new UsageMeter(100);
    bare.onResponseHead('application/json');
    feed(bare, '{"choices":[]}', 100);
    expect(bare.finish()).toEqual({ input: 25, output: 4, estimated: true });
  });

  it('a body over the copy bound: usage found in the kept tail', () => {
    const big = JSON.stringify({ data: [{ embedding: 'A'.repeat(3 * 1024 * 1024) }], usage: { prompt_tokens: 7, total_tokens: 7 } });
    const meter = new UsageMeter(10);
    meter.onResponseHead('application/json');
    feed(meter, big, 65_536);
    expect(meter.finish()).toEqual({ input: 7, output: 0, estimated: false });
  });

  it('usage values that are not counts are ignored', () => {
    const meter = new UsageMeter(8);
    meter.onResponseHead('application/json');
    feed(meter, '{"usage":{"prompt_tokens":-1,"completion_tokens":"9"}}', 100);
    expect(meter.finish()).toMatchObject({ input: 2, estimated: true });
  });
});
