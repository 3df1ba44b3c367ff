// The result of a scenario: rows for the table (some of them targets, marked PASS/FAIL/SKIP) and
// the raw measurements for --json.

export class ScenarioResult {
  constructor(id, title) {
    this.id = id;
    this.title = title;
    this.rows = [];
    this.data = {};
    this.notes = [];
  }

  /** A measured value without a target. */
  measure(measure, value) {
    this.rows.push({ measure, value, target: '', status: '' });
  }

  /** A measured value with its target; `pass` decides PASS or FAIL. */
  target(measure, value, target, pass, note) {
    this.rows.push({ measure, value, target, status: pass ? 'PASS' : 'FAIL', ...(note ? { note } : {}) });
  }

  /** A target that could not be measured, with the reason. */
  skip(measure, target, reason) {
    this.rows.push({ measure, value: 'not measured', target, status: 'SKIP', note: reason });
  }

  note(text) {
    this.notes.push(text);
  }
}

/** One table for the whole run, columns sized to their content. */
export function formatTable(results) {
  const header = ['scenario', 'measure', 'value', 'target', 'result'];
  const lines = [];
  for (const r of results) {
    r.rows.forEach((row, i) => lines.push([i === 0 ? r.title : '', row.measure, row.value, row.target, row.status]));
  }
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map((l) => String(l[c]).length)));
  const fmt = (cells) => `| ${cells.map((cell, c) => String(cell).padEnd(widths[c])).join(' | ')} |`;
  const out = [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)];
  const notes = results.flatMap((r) => [
    ...r.rows.filter((row) => row.note).map((row) => `${r.title} / ${row.measure}: ${row.note}`),
    ...r.notes.map((n) => `${r.title}: ${n}`),
  ]);
  return `${out.join('\n')}\n${notes.length > 0 ? `\nNotes:\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;
}

export function tally(results) {
  const statuses = results.flatMap((r) => r.rows.map((row) => row.status)).filter(Boolean);
  return {
    pass: statuses.filter((s) => s === 'PASS').length,
    fail: statuses.filter((s) => s === 'FAIL').length,
    skip: statuses.filter((s) => s === 'SKIP').length,
  };
}
