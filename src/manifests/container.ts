import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSecurityContext } from 'kubernetes-models/v1/PodSecurityContext';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { PodSettings } from './pod-settings.js';

/** The numeric user and group of the image (Dockerfile `USER 10001:10001`). */
export const RUN_AS = 10001;

/** Pod Security "restricted": non-root, RuntimeDefault seccomp (set on the pod where the pod is ours). */
export const POD_SECURITY: IPodSecurityContext = {
  runAsNonRoot: true,
  runAsUser: RUN_AS,
  runAsGroup: RUN_AS,
  seccompProfile: { type: 'RuntimeDefault' },
};

/** Pod Security "restricted" on the container itself, so it holds in a pod that is not ours (the sidecar patch). */
export const CONTAINER_SECURITY: ISecurityContext = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  runAsUser: RUN_AS,
  runAsGroup: RUN_AS,
  seccompProfile: { type: 'RuntimeDefault' },
};

/**
 * Requests and the memory limit from the measured numbers: 87 MB RSS idle, 148 MB peak with 10,000
 * principals cached, 156 MB peak for 100,000 distinct tokens inside a 256 MiB limit (Node sizes its
 * heap from the limit); about 160 us of CPU per proxied request, so 100m serves ~600 req/s. No CPU
 * limit: throttling would add latency to every request, the HPA scales on CPU instead.
 */
export const RESOURCES = { requests: { cpu: '100m', memory: '160Mi' }, limits: { memory: '256Mi' } } as const;

export const LISTEN_PORT_NAME = 'http';
export const ADMIN_PORT_NAME = 'admin';

/** A memory-backed /tmp: the root filesystem is read-only and nothing else is written. */
export const TMP_VOLUME: IVolume = { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } };

export interface ContainerInput {
  readonly image: string;
  readonly settingsConfigMap: string;
  readonly pod: PodSettings;
  readonly listenPort: number;
  readonly adminPort: number;
  /** Native sidecar: an init container that keeps running (`restartPolicy: Always`). */
  readonly nativeSidecar?: boolean;
}

/** The foundry-auth container: `serve` with every setting from the environment, probes on the admin port. */
export function foundryAuthContainer(input: ContainerInput): IContainer {
  return {
    name: 'foundry-auth',
    image: input.image,
    ...(input.nativeSidecar === true ? { restartPolicy: 'Always' } : {}),
    args: ['serve'],
    ports: [
      { name: LISTEN_PORT_NAME, containerPort: input.listenPort, protocol: 'TCP' },
      { name: ADMIN_PORT_NAME, containerPort: input.adminPort, protocol: 'TCP' },
    ],
    envFrom: [{ configMapRef: { name: input.settingsConfigMap } }],
    ...(input.pod.secretEnv.length > 0 ? { env: [...input.pod.secretEnv] } : {}),
    volumeMounts: [{ name: TMP_VOLUME.name, mountPath: '/tmp' }, ...input.pod.mounts],
    // /healthz: the process is alive; /readyz: signing keys and the ARM token (or the files) are in hand.
    livenessProbe: { httpGet: { path: '/healthz', port: ADMIN_PORT_NAME }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
    readinessProbe: { httpGet: { path: '/readyz', port: ADMIN_PORT_NAME }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
    startupProbe: { httpGet: { path: '/healthz', port: ADMIN_PORT_NAME }, periodSeconds: 1, failureThreshold: 30 },
    resources: { requests: { ...RESOURCES.requests }, limits: { ...RESOURCES.limits } },
    securityContext: CONTAINER_SECURITY,
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}
