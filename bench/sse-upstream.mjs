// An SSE upstream for the streaming scenario: `POST /v1/chat/completions` with `"stream": true`
// answers like the sample backend (role chunk, one `chat.completion.chunk` per token at a fixed
// interval, finish chunk, `data: [DONE]`) but with exactly `max_tokens` token chunks (the sample
// backend's deterministic replies stop near 50 tokens; the scenario needs 100 per stream), and
// each event carries `sent_us`: CLOCK_MONOTONIC in microseconds when it was written, the same
// clock every process on the machine reads, so a client can tell how long each event travelled.
//
//   node bench/sse-upstream.mjs --listen 127.0.0.1:0 --interval-ms 20
//
// Prints `{"listening":"http://127.0.0.1:PORT"}` once it accepts.
import { createServer } from 'node:http';
import { argument, listenAndAnnounce } from './lib/bench-server.mjs';

const intervalMs = Number(argument('interval-ms', '20'));
let sequence = 0;

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let tokens = 100;
    try {
      tokens = Number(JSON.parse(Buffer.concat(chunks).toString('utf8')).max_tokens ?? 100);
    } catch {
      // default length
    }
    const id = `chatcmpl-bench${String(++sequence).padStart(6, '0')}`;
    const created = Math.floor(Date.now() / 1000);
    const event = (delta, finish) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: 'phi-4-mini', system_fingerprint: 'fp_bench', sent_us: Number(process.hrtime.bigint() / 1000n), choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    res.write(event({ role: 'assistant', content: '' }, null));
    let sent = 0;
    let timer;
    const next = () => {
      if (res.destroyed) return;
      sent += 1;
      res.write(event({ content: ` token${sent}` }, null));
      if (sent < tokens) timer = setTimeout(next, intervalMs);
      else res.end(`${event({}, 'length')}data: [DONE]\n\n`);
    };
    timer = setTimeout(next, intervalMs);
    res.once('close', () => clearTimeout(timer));
  });
});
listenAndAnnounce(server);
process.once('SIGTERM', () => server.close(() => process.exit(0)));
process.once('SIGINT', () => server.close(() => process.exit(0)));
