import { ensureSystemPackages } from './support/system-packages.js';

/** Runs once before any test file: the Debian components the tests start must be on the machine. */
export default function setup(): void {
  ensureSystemPackages();
}
