// The floor for any forward-auth check service on Node: foundry-auth's own check listener
// (createCheckServer: the same node:http settings and timeouts, the default --keep-alive-timeout)
// answering every request with the same 200 and the same header fields a foundry-auth allow
// carries (read from --answer, a JSON array of name, value pairs), and doing nothing else (no
// authentication, no authorization, no audit line, no metrics). Run after `npm run build`.
//
//   node bench/bare-check.mjs --listen 127.0.0.1:0 --answer FILE
//
// Prints one JSON line `{"listening":"http://127.0.0.1:PORT"}` on stdout once it accepts.
import { readFileSync } from 'node:fs';
import { parseDuration } from '../dist/config/duration.js';
import { SERVE_OPTIONS } from '../dist/config/options.js';
import { createCheckServer } from '../dist/forward-auth/server.js';
import { argument, listenAndAnnounce } from './lib/bench-server.mjs';

const answerFile = argument('answer', undefined);
if (answerFile === undefined) {
  process.stderr.write('usage: node bench/bare-check.mjs [--listen HOST:PORT] --answer FILE\n');
  process.exit(2);
}
const fields = JSON.parse(readFileSync(answerFile, 'utf8'));
if (!Array.isArray(fields) || fields.length % 2 !== 0 || !fields.every((f) => typeof f === 'string')) {
  process.stderr.write(`${answerFile}: expected a JSON array of header names and values\n`);
  process.exit(2);
}

const keepAliveTimeoutMs = parseDuration(SERVE_OPTIONS.find((option) => option.flag === 'keep-alive-timeout').default);
const server = createCheckServer((req, res) => {
  res.writeHead(200, fields);
  res.end();
}, keepAliveTimeoutMs);
listenAndAnnounce(server);
// listenAndAnnounce sets the bench servers' own keep-alive; the check listener's default wins.
server.keepAliveTimeout = keepAliveTimeoutMs;
process.once('SIGTERM', () => server.close(() => process.exit(0)));
