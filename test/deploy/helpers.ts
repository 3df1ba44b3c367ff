/**
 * Rendering for the manifest tests: the real CLI (`node dist/cli.js manifests`) for the examples in
 * deploy/examples.json, and the renderer in-process for settings no flag can give yet.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { SERVE_OPTIONS, type OptionSpec } from '../../src/config/options.js';
import { runCli } from '../e2e/harness.js';

export const DEPLOY_DIR = fileURLToPath(new URL('../../deploy/', import.meta.url));

export interface Example {
  readonly file: string;
  readonly args: readonly string[];
  readonly untilForwardAuthMode?: readonly string[];
}

/** A rendered object, as plain JSON. */
export type K8sObject = {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string };
  readonly [key: string]: unknown;
};

const OPTIONS: readonly OptionSpec[] = SERVE_OPTIONS;

/** The example's arguments for the options table this build has (forward-auth mode may not be merged yet). */
export function exampleArgs(example: Example): readonly string[] {
  const forwardAuthMode = OPTIONS.some((o) => o.flag === 'forward-auth-profile');
  return forwardAuthMode || example.untilForwardAuthMode === undefined ? example.args : example.untilForwardAuthMode;
}

export function examples(): readonly Example[] {
  return (JSON.parse(readFileSync(`${DEPLOY_DIR}examples.json`, 'utf8')) as { examples: Example[] }).examples;
}

/** `foundry-auth manifests <args>` in a clean environment. */
export async function renderCli(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(['manifests', ...args], env, 60_000);
}

export function parseDocuments(yaml: string): K8sObject[] {
  return parseAllDocuments(yaml).map((doc) => {
    if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('\n'));
    return doc.toJS() as K8sObject;
  });
}

export function find(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found === undefined)
    throw new Error(`no ${kind}${name ? ` ${name}` : ''} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}

/** Every pod template (Deployment) in the documents, with where it came from. */
export function podTemplates(objects: readonly K8sObject[]): { readonly where: string; readonly spec: PodSpecLike }[] {
  return objects
    .filter((o) => o.kind === 'Deployment')
    .map((o) => ({
      where: `Deployment/${o.metadata.name}`,
      spec: (o as unknown as { spec: { template: { spec: PodSpecLike } } }).spec.template.spec,
    }));
}

export interface ContainerLike {
  readonly name: string;
  readonly args?: readonly string[];
  readonly restartPolicy?: string;
  readonly envFrom?: readonly { configMapRef?: { name: string } }[];
  readonly env?: readonly { name: string; value?: string; valueFrom?: unknown }[];
  readonly volumeMounts?: readonly { name: string; mountPath: string }[];
  readonly ports?: readonly { name?: string; containerPort: number; hostPort?: number }[];
  readonly securityContext?: Record<string, unknown>;
  readonly [key: string]: unknown;
}

export interface PodSpecLike {
  readonly containers: readonly ContainerLike[];
  readonly initContainers?: readonly ContainerLike[];
  readonly volumes?: readonly ({ name: string } & Record<string, unknown>)[];
  readonly securityContext?: Record<string, unknown>;
  readonly [key: string]: unknown;
}

/** The foundry-auth container of a pod template (a container, or a native sidecar init container). */
export function foundryAuthContainer(spec: PodSpecLike): ContainerLike {
  const container = [...(spec.initContainers ?? []), ...spec.containers].find((c) => c.name === 'foundry-auth');
  if (container === undefined) throw new Error('no foundry-auth container');
  return container;
}
