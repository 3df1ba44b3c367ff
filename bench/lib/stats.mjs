// Percentiles and formatting shared by the scenarios.

/** The `ps`-th percentiles (0-100) by nearest rank over a numeric array (copied and sorted), as `{ p50, ... }`. */
export function percentiles(values, ps = [50, 90, 99]) {
  if (values.length === 0) return Object.fromEntries(ps.map((p) => [`p${p}`, NaN]));
  const sorted = Float64Array.from(values).sort();
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  return Object.fromEntries(ps.map((p) => [`p${p}`, at(p)]));
}

export const mb = (bytes) => Math.round((bytes / 1024 / 1024) * 10) / 10;
export const round = (value, digits = 3) => (Number.isFinite(value) ? Math.round(value * 10 ** digits) / 10 ** digits : value);
export const int = (value) => Math.round(value).toLocaleString('en-US');
