/**
 * The floor plan of src/, lowest layer first: a module may import its own layer and the layers
 * below it, never one above. docs/ARCHITECTURE.md explains each layer; keep the two in step.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Top-level folders (and root files) of src/, by layer. */
const LAYERS: readonly (readonly string[])[] = [
  // The pipeline's contracts (route match, principal, decision, error codes, stage ports) and the Azure identifiers they carry.
  ['contracts'],
  // Basics every stage uses: the typed configuration, logging, metrics, clock, admin listener.
  ['config', 'ops'],
  // Who is calling: credentials, Entra ID tokens, signing keys, API keys.
  ['authn'],
  // Thin clients of Azure's REST APIs and the sidecar's own identity (they read tokens with authn's JWS decoder).
  ['azure'],
  // May this principal do this: Azure RBAC evaluation, decision cache, static and ARM sources; the
  // shared cache (Redis) that replicas share lookups, the ARM read budget and flushes through;
  // the policy file's model rules and token limits.
  ['authz', 'shared-cache', 'policy'],
  // Deciding one request (target, canonical path, route table, authn + authz) and forwarding one.
  ['pipeline', 'proxy'],
  // The fronts that answer clients, and the composition root that builds them.
  ['http', 'forward-auth', 'sidecar.ts'],
  // The offline stack (grouped under offline/) and the operator's tools, above the product core.
  ['offline/emulator', 'offline/sample-backend', 'setup', 'manifests'],
  ['offline/dev'],
  // The command line.
  ['cli', 'cli.ts'],
];

const layerOf = new Map<string, number>(LAYERS.flatMap((names, i) => names.map((name) => [name, i] as const)));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** The top-level folder or root file of src/ a path belongs to. */
function unitOf(path: string): string {
  const [top, inner] = relative(SRC, path).split('/');
  // offline/ only groups the offline stack; its folders keep their own layers.
  return top === 'offline' && inner !== undefined && !inner.endsWith('.ts') ? `offline/${inner}` : top!;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => resolve(dirname(file), (m[1] ?? m[2])!));
}

describe('layers of src/', () => {
  const files = sourceFiles(SRC);

  it('places every top-level folder and root file of src/ in a layer', () => {
    const unplaced = [...new Set(files.map(unitOf))].filter((unit) => !layerOf.has(unit));
    expect(unplaced, 'add these to LAYERS here and to the floor plan in docs/ARCHITECTURE.md').toEqual([]);
  });

  it('has no import from a lower layer to a higher one', () => {
    const upward: string[] = [];
    for (const file of files) {
      const from = unitOf(file);
      for (const target of relativeImports(file)) {
        const to = unitOf(target);
        if ((layerOf.get(to) ?? -1) > (layerOf.get(from) ?? Infinity)) upward.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('keeps the contracts a floor: they import nothing else of src/', () => {
    const outward = files
      .filter((file) => unitOf(file) === 'contracts')
      .flatMap((file) =>
        relativeImports(file)
          .filter((target) => unitOf(target) !== 'contracts')
          .map((target) => `${relative(SRC, file)} -> ${relative(SRC, target)}`),
      );
    expect(outward).toEqual([]);
  });
});
