// The floor for any forward-auth check service on Node: a node:http server with the settings of
// foundry-auth's check listener that answers every request with the same 200 and the same header
// fields a foundry-auth allow carries (read from --answer, a JSON array of name, value pairs),
// and does nothing else (no authentication, no authorization, no audit line, no metrics).
//
//   node bench/bare-check.mjs --listen 127.0.0.1:0 --answer FILE
//
// Prints one JSON line `{"listening":"http://127.0.0.1:PORT"}` on stdout once it accepts.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
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

// The options and timeouts of foundry-auth's check listener (src/forward-auth/server.ts).
const server = createServer({ requireHostHeader: true, joinDuplicateHeaders: false, connectionsCheckingInterval: 1000 }, (req, res) => {
  res.writeHead(200, fields);
  res.end();
});
server.headersTimeout = 30_000;
server.requestTimeout = 60_000;
server.maxHeadersCount = 0;
listenAndAnnounce(server);
// After listenAndAnnounce, which sets the bench servers' own: foundry-auth's default --keep-alive-timeout.
server.keepAliveTimeout = 65 * 60_000;
process.once('SIGTERM', () => server.close(() => process.exit(0)));
