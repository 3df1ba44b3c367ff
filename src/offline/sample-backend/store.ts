import { CATALOG, type ModelRecord } from './catalog.js';

/**
 * The sample backend's in-memory control-plane state: the model catalog plus custom models, and
 * deployments by namespace. Pure data operations; `control-plane.ts` speaks HTTP about them.
 */

export interface DeploymentSpec {
  readonly model: { readonly ref?: string; readonly catalog?: string; readonly custom?: string };
  readonly compute: 'cpu' | 'gpu';
  readonly workloadType: 'generative' | 'predictive';
  readonly runtime: string;
  readonly replicas: number;
  readonly port: number;
  readonly resources?: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string>>;
  readonly endpoint?: Readonly<Record<string, unknown>>;
}

export interface DeploymentRecord extends DeploymentSpec {
  readonly name: string;
  readonly namespace: string;
  readonly status: { readonly state: 'Running' | 'Pending'; readonly readyReplicas: number; readonly url: string };
  readonly createdAt: string;
  readonly updatedAt: string;
}

export class ControlPlaneStore {
  private readonly custom = new Map<string, ModelRecord>();
  private readonly deployments = new Map<string, DeploymentRecord>();

  constructor(private readonly now: () => Date = () => new Date()) {}

  /** Catalog models first, then custom models by name. */
  models(): ModelRecord[] {
    return [...CATALOG, ...[...this.custom.values()].sort((a, b) => a.name.localeCompare(b.name))];
  }

  catalogModel(name: string): ModelRecord | undefined {
    return CATALOG.find((m) => m.name === name);
  }

  customModel(name: string): ModelRecord | undefined {
    return this.custom.get(name);
  }

  /** Any model a request may name (catalog or custom). */
  model(name: string): ModelRecord | undefined {
    return this.catalogModel(name) ?? this.custom.get(name);
  }

  putCustomModel(model: Omit<ModelRecord, 'createdAt' | 'updatedAt'>): ModelRecord {
    const stamp = this.now().toISOString();
    const record: ModelRecord = { ...model, createdAt: this.custom.get(model.name)?.createdAt ?? stamp, updatedAt: stamp };
    this.custom.set(model.name, record);
    return record;
  }

  deleteCustomModel(name: string): boolean {
    return this.custom.delete(name);
  }

  /** Deployments that use a model, so it cannot be deleted under them. */
  deploymentsUsing(model: string): DeploymentRecord[] {
    return [...this.deployments.values()].filter((d) => d.model.custom === model || d.model.ref === model);
  }

  /** Sorted by namespace then name: the order cursor paging walks. */
  listDeployments(namespace?: string): DeploymentRecord[] {
    return [...this.deployments.values()]
      .filter((d) => namespace === undefined || d.namespace === namespace)
      .sort((a, b) => (a.namespace === b.namespace ? a.name.localeCompare(b.name) : a.namespace.localeCompare(b.namespace)));
  }

  deployment(namespace: string, name: string): DeploymentRecord | undefined {
    return this.deployments.get(key(namespace, name));
  }

  putDeployment(namespace: string, name: string, spec: DeploymentSpec): DeploymentRecord {
    const stamp = this.now().toISOString();
    const previous = this.deployments.get(key(namespace, name));
    const record: DeploymentRecord = {
      name,
      namespace,
      ...spec,
      status: {
        state: spec.replicas > 0 ? 'Running' : 'Pending',
        readyReplicas: spec.replicas,
        url: `https://${name}.${namespace}.svc.cluster.local:${spec.port}`,
      },
      createdAt: previous?.createdAt ?? stamp,
      updatedAt: stamp,
    };
    this.deployments.set(key(namespace, name), record);
    return record;
  }

  deleteDeployment(namespace: string, name: string): boolean {
    return this.deployments.delete(key(namespace, name));
  }
}

/** Namespace and name are DNS labels, so `/` cannot occur in either. */
function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** The position after `record` in `listDeployments` order, as an opaque `continue` token. */
export function continueToken(record: DeploymentRecord): string {
  return Buffer.from(key(record.namespace, record.name), 'utf8').toString('base64url');
}

export function afterToken(token: string): string {
  return Buffer.from(token, 'base64url').toString('utf8');
}

export function deploymentKey(record: DeploymentRecord): string {
  return key(record.namespace, record.name);
}
