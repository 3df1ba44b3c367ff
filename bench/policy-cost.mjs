// CPU cost of the policy file's steps, in process (no network, so a busy machine skews it less
// than the A/B): node bench/policy-cost.mjs  (after npm run build)
//   - the policy step for a request it has nothing to do with (no model rules, no limit applies)
//   - reading the model of a 2 KB chat body (strict JSON parse, what model rules add per request)
//   - the limit pre-check and charge (in-process windows)
//   - metering a JSON response with usage, and an SSE stream of 64 deltas with a usage chunk
// Prints CPU microseconds per operation (user + system, median of 5 runs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const dist = (p) => import(join(ROOT, 'dist', p));
const { parsePolicy } = await dist('policy/policy.js');
const { modelOf } = await dist('policy/model.js');
const { Limiter } = await dist('policy/limiter.js');
const { InProcessWindows } = await dist('policy/windows.js');
const { UsageMeter } = await dist('policy/usage.js');
const { systemClock } = await dist('ops/clock.js');

const principal = { type: 'user', oid: 'b3e00000-0000-4000-8000-000000000000', tid: '72f988bf-86f1-41af-91ab-2d7cd011db47', claims: { roles: [] } };
const policyOf = (file) => {
  const parsed = parsePolicy(readFileSync(join(ROOT, 'bench', 'policy', file), 'utf8'), file);
  if (!parsed.ok) throw new Error(parsed.errors.join('\n'));
  return parsed.policy;
};
const noRules = policyOf('no-model-rules.yaml');
const rules = policyOf('model-rules.yaml');
const chat = readFileSync(join(ROOT, 'bench', 'policy', 'chat-2k.json'));
const limiter = new Limiter(new InProcessWindows(systemClock), systemClock);
const limits = { tokensPerMinute: 1e12, requestsPerMinute: 1e12, tokensPerDay: 1e12 };
const jsonResponse = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    model: 'phi-4-mini',
    choices: [{ index: 0, message: { role: 'assistant', content: 'word '.repeat(60) }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 480, completion_tokens: 60, total_tokens: 540 },
  }),
);
const sse = [];
for (let i = 0; i < 64; i++)
  sse.push(
    Buffer.from(
      `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'phi-4-mini', choices: [{ index: 0, delta: { content: ' word' }, finish_reason: null }] })}\n\n`,
    ),
  );
sse.push(
  Buffer.from(
    `data: ${JSON.stringify({ id: 'c', choices: [], usage: { prompt_tokens: 480, completion_tokens: 64, total_tokens: 544 } })}\n\ndata: [DONE]\n\n`,
  ),
);

const cases = {
  'policy step, nothing to do (no model rules, no limit applies)': () => {
    if (noRules.limitsFor(principal) !== undefined || noRules.hasModelRules) throw new Error('unexpected');
  },
  'model of a 2 KB chat body + rule check': () => {
    const found = modelOf(chat, 'application/json');
    if (found.kind !== 'model' || rules.modelAccess(found.model, principal).kind !== 'allowed') throw new Error('unexpected');
  },
  'limit pre-check + charge (3 windows, in process)': () => {
    limiter.admit(principal, limits);
    void limiter.charge(principal, limits, 540);
  },
  'meter a JSON response with usage (~450 B)': () => {
    const m = new UsageMeter(chat.length);
    m.onResponseHead('application/json');
    m.onResponseChunk(jsonResponse);
    if (m.finish().estimated) throw new Error('unexpected');
  },
  'meter an SSE stream (64 deltas + usage)': () => {
    const m = new UsageMeter(chat.length);
    m.onResponseHead('text/event-stream');
    for (const c of sse) m.onResponseChunk(c);
    if (m.finish().estimated) throw new Error('unexpected');
  },
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [name, fn] of Object.entries(cases)) {
  for (let i = 0; i < 20_000; i++) fn();
  const runs = [];
  for (let r = 0; r < 5; r++) {
    const n = 20_000;
    const before = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const used = process.cpuUsage(before);
    runs.push((used.user + used.system) / n);
  }
  process.stdout.write(`${median(runs).toFixed(3).padStart(9)} µs CPU/op  ${name}\n`);
}
