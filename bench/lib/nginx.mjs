// nginx as the fast static upstream ("never the bottleneck") and as the reference proxy
// (`proxy_pass` with upstream keepalive). Both run in the foreground with one worker.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { benchDir, childPids, freePort, startProcess, waitFor } from './proc.mjs';

/** The fixed JSON body of the static upstream: a `/v1/models` answer. */
export const STATIC_BODY = '{"object":"list","data":[{"id":"phi-4-mini","object":"model","created":1700000000,"owned_by":"foundry-local"}]}';

function config(dir, server) {
  const tmp = join(dir, 'tmp');
  return `worker_processes 1;
daemon off;
master_process on;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 8192; multi_accept on; }
http {
  client_body_temp_path ${tmp};
  proxy_temp_path ${tmp};
  fastcgi_temp_path ${tmp};
  uwsgi_temp_path ${tmp};
  scgi_temp_path ${tmp};
  keepalive_requests 1000000;
  keepalive_timeout 65s;
${server}
}
`;
}

/** nginx answering every path with STATIC_BODY (application/json); no access log. */
export function staticServer(port) {
  const body = STATIC_BODY.replace(/'/g, "\\'");
  return `  access_log off;
  server {
    listen 127.0.0.1:${port} reuseport;
    location / {
      default_type application/json;
      return 200 '${body}';
    }
  }`;
}

/**
 * The reference proxy: one worker, HTTP/1.1 keepalive to the upstream, request and response
 * streamed (buffering off, as an SSE-capable proxy is configured), and an access log line per
 * request, buffered like the sidecar's asynchronous audit log. `tokenBuffers` gives it the
 * header buffers of the shipped forward-auth nginx.conf (a request with a token read at once),
 * so that the forward-auth comparison is like for like.
 */
export function proxyServer(port, upstreamPort, dir, { tokenBuffers = false } = {}) {
  const buffers = tokenBuffers ? '\n    client_header_buffer_size 4k;\n    large_client_header_buffers 4 16k;' : '';
  return `  log_format bench '$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time $upstream_response_time';
  access_log ${join(dir, 'access.log')} bench buffer=64k flush=1s;
  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} reuseport;${buffers}
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }`;
}

/**
 * Starts nginx in the foreground with the given server block. Returns its URL, the master's
 * child process, and `pids()` (master and workers, for CPU accounting).
 */
export async function startNginx(nginxPath, name, serverBlock, opts = {}) {
  const dir = join(benchDir(), name);
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const port = opts.port ?? (await freePort());
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config(dir, serverBlock(port, dir)));
  const child = startProcess(nginxPath, ['-p', dir, '-c', file], { cpus: opts.cpus, logFile: join(dir, 'stderr.log') });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`nginx ${name}`, async () => {
    if (child.exitCode !== null) throw new Error(`nginx ${name} exited with ${child.exitCode}; see ${dir}/error.log`);
    const res = await request(`${url}/v1/models`);
    await res.body.dump();
    return res.statusCode < 500 || undefined;
  });
  return {
    name,
    url,
    port,
    child,
    dir,
    pids: () => [child.pid, ...childPids(child.pid)],
    stop: () => child.stop('SIGQUIT'),
  };
}

/**
 * A forward-auth nginx configuration in the shipped file's format ({{LISTEN}}, {{FOUNDRY_AUTH}},
 * {{UPSTREAM}}, {{CACHE_PATH}}, {{DECISION_CACHE}}) rendered for one run, with no access log (like
 * the static upstream). `cache` turns the decision cache on.
 */
export function forwardAuthNginx(file, { port, dir, authzUrl, upstreamPort, cache }) {
  const cacheDir = join(dir, 'decisions');
  mkdirSync(cacheDir, { recursive: true });
  // As root, nginx's workers run as nobody: they write the cache and temporary files.
  chmodSync(benchDir(), 0o755);
  for (const d of [dir, cacheDir, join(dir, 'tmp')]) chmodSync(d, 0o777);
  const values = {
    LISTEN: `127.0.0.1:${port} reuseport`,
    // `unix:/path` for foundry-auth on --forward-auth-socket, as nginx's `server` takes it.
    FOUNDRY_AUTH: authzUrl.startsWith('unix:') ? authzUrl : new URL(authzUrl).host,
    UPSTREAM: `127.0.0.1:${upstreamPort}`,
    CACHE_PATH: cacheDir,
    DECISION_CACHE: cache ? 'foundry_auth_decisions' : 'off',
  };
  const text = readFileSync(file, 'utf8').replace(/\{\{([A-Z_]+)\}\}/g, (_, name) => {
    if (values[name] === undefined) throw new Error(`${file}: no value for {{${name}}}`);
    return values[name];
  });
  return `  access_log off;\n${text}`;
}
