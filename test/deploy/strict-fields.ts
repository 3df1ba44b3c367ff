/**
 * The strict check the bundled schemas lack (they accept unknown fields): every object is written
 * as a TypeScript object literal typed with its kubernetes-models interface (custom resources: the
 * interfaces in src/manifests/custom-resources.ts) and type-checked, so an unknown or misspelt
 * field anywhere in the tree is an excess-property error, and a wrong type a type error.
 */
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { K8sObject } from './helpers.js';

const TYPES: Readonly<Record<string, { readonly from: string; readonly type: string }>> = {
  'v1/ConfigMap': { from: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  'v1/ServiceAccount': { from: 'kubernetes-models/v1/ServiceAccount', type: 'IServiceAccount' },
  'v1/Service': { from: 'kubernetes-models/v1/Service', type: 'IService' },
  'apps/v1/Deployment': { from: 'kubernetes-models/apps/v1/Deployment', type: 'IDeployment' },
  'policy/v1/PodDisruptionBudget': { from: 'kubernetes-models/policy/v1/PodDisruptionBudget', type: 'IPodDisruptionBudget' },
  'autoscaling/v2/HorizontalPodAutoscaler': { from: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler', type: 'IHorizontalPodAutoscaler' },
  'networking.k8s.io/v1/NetworkPolicy': { from: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', type: 'INetworkPolicy' },
  'networking.k8s.io/v1/Ingress': { from: 'kubernetes-models/networking.k8s.io/v1/Ingress', type: 'IIngress' },
  'monitoring.coreos.com/v1/ServiceMonitor': { from: '../../src/manifests/custom-resources.js', type: 'ServiceMonitor' },
  'security.istio.io/v1/AuthorizationPolicy': { from: '../../src/manifests/custom-resources.js', type: 'IstioAuthorizationPolicy' },
};

const CHECK_FILE = fileURLToPath(new URL('./strict-fields-check.ts', import.meta.url));

/** Problems found, one line each (`Deployment/foundry-auth: Object literal may only specify known properties...`); empty when strict. */
export function strictFieldProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const imports = new Map<string, Set<string>>();
  const lines: string[] = [];
  const owners: string[] = [];
  objects.forEach((o, i) => {
    const t = TYPES[`${o.apiVersion}/${o.kind}`];
    if (t === undefined) {
      problems.push(`${o.kind}/${o.metadata.name}: no type known for ${o.apiVersion} ${o.kind}`);
      return;
    }
    (imports.get(t.from) ?? imports.set(t.from, new Set()).get(t.from)!).add(t.type);
    owners.push(`${o.kind}/${o.metadata.name}`);
    lines.push(`export const o${i}: ${t.type} = ${JSON.stringify(o)};`);
  });
  const header = [...imports].map(([from, names]) => `import type { ${[...names].join(', ')} } from '${from}';`);
  // One object per line, so a diagnostic's line names the object.
  const text = [...header, ...lines].join('\n');
  const firstObjectLine = header.length;

  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    name === CHECK_FILE ? ts.createSourceFile(name, text, version) : getSourceFile(name, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === CHECK_FILE || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === CHECK_FILE ? text : readFile(name));
  const program = ts.createProgram([CHECK_FILE], options, host);
  const source = program.getSourceFile(CHECK_FILE)!;
  for (const d of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) {
    const line = d.start !== undefined ? source.getLineAndCharacterOfPosition(d.start).line : -1;
    const owner = owners[line - firstObjectLine] ?? 'imports';
    problems.push(`${owner}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
  }
  return problems;
}
