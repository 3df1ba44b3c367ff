// The static upstream when nginx is not available: every path answers the same JSON body as
// nginx's `return 200` in lib/nginx.mjs. Prints `{"listening": URL}` once it accepts.
import { createServer } from 'node:http';
import { STATIC_BODY } from './lib/nginx.mjs';

const at = process.argv.indexOf('--listen');
const [host, port] = (at > 0 ? process.argv[at + 1] : '127.0.0.1:0').split(':');
const body = Buffer.from(STATIC_BODY);
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(port), host, () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ listening: `http://${address.address}:${address.port}` })}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
