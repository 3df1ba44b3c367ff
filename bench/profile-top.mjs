// The top self-time functions of a V8 CPU profile (`node --cpu-prof`), for the profile-and-fix
// loop of docs/PERFORMANCE.md:   node bench/profile-top.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const [file, limit = '25'] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node bench/profile-top.mjs FILE.cpuprofile [N]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfMicros = new Map();
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (deltas[i] ?? 0));
}
const byFunction = new Map();
let total = 0;
for (const [id, micros] of selfMicros) {
  const node = byId.get(id);
  const frame = node.callFrame;
  const where = frame.url ? `${relative(process.cwd(), frame.url.replace(/^file:\/\//, ''))}:${frame.lineNumber + 1}` : '';
  const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  total += micros;
}
const rows = [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(limit));
process.stdout.write(`total sampled ${(total / 1000).toFixed(0)} ms\n`);
for (const [key, micros] of rows) {
  process.stdout.write(`${((micros / total) * 100).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${key}\n`);
}
