/**
 * The two objects of custom resource kinds the manifests print (the Prometheus operator's
 * ServiceMonitor, Istio's AuthorizationPolicy): typed here with only the fields used, since the
 * bundled Kubernetes schemas cover built-in kinds only.
 */
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';

type IObjectMeta = NonNullable<IConfigMap['metadata']>;

export interface ServiceMonitor {
  readonly apiVersion: 'monitoring.coreos.com/v1';
  readonly kind: 'ServiceMonitor';
  readonly metadata: IObjectMeta;
  readonly spec: {
    readonly selector: { readonly matchLabels: Readonly<Record<string, string>> };
    readonly endpoints: readonly { readonly port: string; readonly path: string; readonly interval: string; readonly scrapeTimeout: string }[];
  };
}

export interface IstioAuthorizationPolicy {
  readonly apiVersion: 'security.istio.io/v1';
  readonly kind: 'AuthorizationPolicy';
  readonly metadata: IObjectMeta;
  readonly spec: {
    readonly selector: { readonly matchLabels: Readonly<Record<string, string>> };
    readonly action: 'CUSTOM';
    readonly provider: { readonly name: string };
    readonly rules: readonly {
      readonly to: readonly { readonly operation: { readonly hosts?: readonly string[]; readonly paths?: readonly string[] } }[];
    }[];
  };
}
