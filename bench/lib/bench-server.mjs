// What the bench's own servers (bare-proxy, sse-upstream, static-upstream) share: their
// command-line arguments and the `{"listening": URL}` line that proc.mjs startBenchServer waits for.

/** The value after `--name` on the command line, or `fallback`. */
export function argument(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

/** Listens on `--listen` (host:port, default 127.0.0.1:0) and prints `{"listening": URL}` once it accepts. */
export function listenAndAnnounce(server) {
  const [host, port] = argument('listen', '127.0.0.1:0').split(':');
  server.keepAliveTimeout = 65_000;
  server.listen(Number(port), host, () => {
    const address = server.address();
    process.stdout.write(`${JSON.stringify({ listening: `http://${address.address}:${address.port}` })}\n`);
  });
}
