// npm run bench [-- --only <scenario>[,<scenario>...]] [-- --json [FILE]] [-- --quick] [-- --pin split|none]
//
// Runs the benchmark scenarios of docs/PERFORMANCE.md against the built sidecar (dist/, rebuilt
// when src/ is newer) and prints one table with every target marked PASS, FAIL or SKIP.
//   --json         the same results as JSON on stdout (the table and progress go to stderr; use
//                  `npm run -s bench -- --json` so npm's banner stays off stdout)
//   --json FILE    the table on stdout and the JSON written to FILE
//   --only LIST    run only these scenarios: throughput, streaming, authz, authn, memory, abuse, forward-auth, replicas
//   --quick        shorter runs (a smoke test of the harness; numbers are not comparable)
//   --pin MODE     split (default: the proxy under test on CPU 1, load and upstream on CPU 0) or none
//   --profile throughput   run that scenario's sidecar under --cpu-prof (profiles in bench/results/profiles;
//                  read them with node bench/profile-top.mjs FILE)
// Exit code: 0 when no target failed, 1 otherwise (skipped targets are listed, not failed).
import { readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createContext } from './lib/context.mjs';
import { CLI, progress, ROOT, runCommand } from './lib/proc.mjs';
import { formatTable, ScenarioResult, tally } from './lib/report.mjs';
import { describeMachine, ensureTools } from './lib/tools.mjs';
import { throughput } from './scenarios/throughput.mjs';
import { streaming } from './scenarios/streaming.mjs';
import { authorization } from './scenarios/authz.mjs';
import { authentication } from './scenarios/authn.mjs';
import { memory } from './scenarios/memory.mjs';
import { abuse } from './scenarios/abuse.mjs';
import { forwardAuth } from './scenarios/forward-auth.mjs';
import { replicas } from './scenarios/replicas.mjs';

const SCENARIOS = { throughput, streaming, authz: authorization, authn: authentication, memory, abuse, 'forward-auth': forwardAuth, replicas };

function parseArgs(argv) {
  const options = { only: Object.keys(SCENARIOS), json: undefined, quick: false, pin: 'split', profile: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === '--only') {
      options.only = value()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const unknown = options.only.filter((s) => !(s in SCENARIOS));
      if (unknown.length > 0) usage(`unknown scenario ${unknown.join(', ')}; choose from ${Object.keys(SCENARIOS).join(', ')}`);
    } else if (arg === '--json') {
      options.json = argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[++i] : '-';
    } else if (arg.startsWith('--json=')) {
      options.json = arg.slice('--json='.length) || '-';
    } else if (arg === '--quick') {
      options.quick = true;
    } else if (arg === '--pin') {
      options.pin = value();
      if (!['split', 'none'].includes(options.pin)) usage('--pin is split or none');
    } else if (arg === '--profile') {
      options.profile = value();
      if (options.profile !== 'throughput') usage('--profile supports throughput (the sidecar at saturation)');
    } else if (arg === '--help' || arg === '-h') {
      usage();
    } else {
      usage(`unknown argument ${arg}`);
    }
  }
  return options;
}

function usage(problem) {
  if (problem) process.stderr.write(`bench: ${problem}\n`);
  process.stderr.write(
    'usage: npm run bench -- [--only throughput,streaming,authz,authn,memory,abuse,forward-auth,replicas] [--json [FILE]] [--quick] [--pin split|none] [--profile throughput]\n',
  );
  process.exit(problem ? 2 : 0);
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

async function ensureBuilt() {
  let built = 0;
  try {
    built = statSync(CLI).mtimeMs;
  } catch {
    // not built yet
  }
  if (built > newestMtime(join(ROOT, 'src'))) return;
  progress(built === 0 ? 'dist/ is missing: npm run build' : 'src/ is newer than dist/: npm run build');
  const result = await runCommand('npm', ['run', 'build']);
  if (result.code !== 0) {
    process.stderr.write(`${result.stdout}${result.stderr}`);
    throw new Error('npm run build failed');
  }
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const started = new Date();
  await ensureBuilt();
  const tools = await ensureTools();
  for (const problem of tools.problems) progress(`SKIP nginx/wrk scenarios: ${problem}`);
  const machine = await describeMachine(tools);
  progress(`machine: ${machine.nproc} CPUs (${machine.cpuModel}), Node ${machine.node}, ${machine.nginx}, ${machine.wrk}`);
  if (options.profile !== undefined) {
    options.profileDir = join(ROOT, 'bench', 'results', 'profiles');
    mkdirSync(options.profileDir, { recursive: true });
  }
  const ctx = await createContext(options, tools);
  progress(`pinning: ${ctx.layout.mode === 'split' ? 'proxy under test on CPU 1; wrk, upstream and load clients on CPU 0 (taskset)' : 'none'}`);
  const results = [];
  try {
    for (const id of options.only) {
      const begun = performance.now();
      progress(`--- ${id}`);
      try {
        results.push(await SCENARIOS[id](ctx));
      } catch (err) {
        const failed = new ScenarioResult(id, id);
        failed.target(
          'scenario ran to the end',
          'crashed',
          'completes',
          false,
          err instanceof Error ? err.stack?.split('\n').slice(0, 3).join(' ') : String(err),
        );
        results.push(failed);
        progress(`${id} failed: ${err instanceof Error ? err.stack : String(err)}`);
      }
      progress(`${id} took ${((performance.now() - begun) / 1000).toFixed(0)} s`);
    }
  } finally {
    await ctx.close();
  }

  const counts = tally(results);
  const table = formatTable(results);
  const header = `foundry-auth benchmark, ${started.toISOString()}: ${machine.nproc} x ${machine.cpuModel}, Node ${machine.node}, ${machine.nginx}, ${machine.wrk}\n`;
  const footer = `${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped; ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s\n`;
  const json = {
    startedAt: started.toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    machine,
    options: { only: options.only, quick: options.quick, pin: ctx.layout.mode },
    summary: counts,
    scenarios: Object.fromEntries(results.map((r) => [r.id, { title: r.title, rows: r.rows, notes: r.notes, data: r.data }])),
  };
  if (options.json === '-') {
    process.stderr.write(`\n${header}${table}${footer}`);
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${header}${table}${footer}`);
    if (options.json !== undefined) {
      writeFileSync(options.json, `${JSON.stringify(json, null, 2)}\n`);
      progress(`JSON written to ${options.json}`);
    }
  }
  process.exitCode = counts.fail > 0 ? 1 : 0;
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
