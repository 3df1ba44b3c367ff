// The static upstream when nginx is not available: every path answers the same JSON body as
// nginx's `return 200` in lib/nginx.mjs. Prints `{"listening": URL}` once it accepts.
import { createServer } from 'node:http';
import { listenAndAnnounce } from './lib/bench-server.mjs';
import { STATIC_BODY } from './lib/nginx.mjs';

const body = Buffer.from(STATIC_BODY);
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
});
listenAndAnnounce(server);
process.once('SIGTERM', () => server.close(() => process.exit(0)));
