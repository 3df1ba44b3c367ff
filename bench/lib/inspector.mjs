// The memory scenario's view into the sidecar's V8 heap: a process started with
// `--inspect=127.0.0.1:PORT` is asked for a full garbage collection and its heap usage over the
// inspector protocol, so "how much does it hold" can be told apart from "how far has V8 let the
// heap grow before collecting".
import { request, WebSocket } from 'undici';
import { waitFor } from './proc.mjs';

export async function connectInspector(port) {
  const targets = await waitFor('inspector', async () => {
    const res = await request(`http://127.0.0.1:${port}/json/list`);
    const list = await res.body.json();
    return Array.isArray(list) && list.length > 0 ? list : undefined;
  });
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', reject, { once: true });
  });
  let nextId = 1;
  const pending = new Map();
  ws.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data));
    const waiter = pending.get(message.id);
    if (waiter === undefined) return;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(`${message.error.message}`));
    else waiter.resolve(message.result);
  });
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    /** A full, memory-reducing collection (what Chrome's "collect garbage" button does). */
    collectGarbage: () => call('HeapProfiler.collectGarbage'),
    /** `{ usedSize, totalSize }` of the V8 heap in bytes. */
    heapUsage: () => call('Runtime.getHeapUsage'),
    /** V8's heap size limit in bytes (what Node chose from --max-old-space-size or the memory it may use). */
    heapLimit: async () => {
      const { result } = await call('Runtime.evaluate', {
        expression: "process.binding ? require('v8').getHeapStatistics().heap_size_limit : 0",
        includeCommandLineAPI: true,
        returnByValue: true,
      });
      return Number(result.value);
    },
    close: () => ws.close(),
  };
}
