/**
 * Pod Security Standards, "restricted" profile (Kubernetes 1.29+), as a table: each rule names the
 * control and returns the violations it finds in one pod spec. `containers` covers containers,
 * init containers (native sidecars included) and ephemeral containers.
 */
import type { ContainerLike, PodSpecLike } from './helpers.js';

type Rule = { readonly control: string; readonly check: (pod: PodSpecLike, containers: readonly ContainerLike[]) => string[] };

const ALLOWED_VOLUME_TYPES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const SELINUX_TYPES = new Set([undefined, '', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);

type Ctx = Record<string, unknown> | undefined;
const sc = (c: ContainerLike): Ctx => c.securityContext;
const podSc = (p: PodSpecLike): Ctx => p.securityContext;
const get = (o: Ctx, key: string): unknown => (o === undefined ? undefined : o[key]);

export const RESTRICTED_RULES: readonly Rule[] = [
  // Baseline controls (restricted includes them).
  {
    control: 'HostProcess',
    check: (p, cs) =>
      [get(get(podSc(p), 'windowsOptions') as Ctx, 'hostProcess'), ...cs.map((c) => get(get(sc(c), 'windowsOptions') as Ctx, 'hostProcess'))]
        .filter((v) => v === true)
        .map(() => 'hostProcess: true'),
  },
  {
    control: 'Host Namespaces',
    check: (p) => (['hostNetwork', 'hostPID', 'hostIPC'] as const).filter((k) => p[k] === true).map((k) => `${k}: true`),
  },
  { control: 'Privileged Containers', check: (_p, cs) => cs.filter((c) => get(sc(c), 'privileged') === true).map((c) => `${c.name}: privileged`) },
  {
    control: 'Capabilities (baseline)',
    check: (_p, cs) =>
      cs.flatMap((c) =>
        (((get(sc(c), 'capabilities') as Ctx)?.['add'] as string[] | undefined) ?? [])
          .filter((cap) => cap !== 'NET_BIND_SERVICE')
          .map((cap) => `${c.name}: adds ${cap}`),
      ),
  },
  { control: 'HostPath Volumes', check: (p) => (p.volumes ?? []).filter((v) => 'hostPath' in v).map((v) => `volume ${v.name} is hostPath`) },
  {
    control: 'Host Ports',
    check: (_p, cs) =>
      cs.flatMap((c) => (c.ports ?? []).filter((port) => (port.hostPort ?? 0) !== 0).map((port) => `${c.name}: hostPort ${port.hostPort}`)),
  },
  {
    control: 'AppArmor',
    check: (p, cs) =>
      [get(podSc(p), 'appArmorProfile'), ...cs.map((c) => get(sc(c), 'appArmorProfile'))]
        .map((a) => get(a as Ctx, 'type'))
        .filter((t) => t !== undefined && t !== 'RuntimeDefault' && t !== 'Localhost')
        .map((t) => `appArmorProfile ${String(t)}`),
  },
  {
    control: 'SELinux',
    check: (p, cs) =>
      [get(podSc(p), 'seLinuxOptions'), ...cs.map((c) => get(sc(c), 'seLinuxOptions'))]
        .filter((o) => o !== undefined)
        .flatMap((o) => [
          ...(SELINUX_TYPES.has(get(o as Ctx, 'type') as string | undefined) ? [] : [`seLinuxOptions.type ${String(get(o as Ctx, 'type'))}`]),
          ...(get(o as Ctx, 'user') !== undefined || get(o as Ctx, 'role') !== undefined ? ['seLinuxOptions user/role set'] : []),
        ]),
  },
  {
    control: '/proc Mount Type',
    check: (_p, cs) =>
      cs.filter((c) => ![undefined, 'Default'].includes(get(sc(c), 'procMount') as string | undefined)).map((c) => `${c.name}: procMount`),
  },
  {
    control: 'Seccomp (baseline)',
    check: (p, cs) =>
      [get(podSc(p), 'seccompProfile'), ...cs.map((c) => get(sc(c), 'seccompProfile'))]
        .filter((s) => get(s as Ctx, 'type') === 'Unconfined')
        .map(() => 'seccomp Unconfined'),
  },
  {
    control: 'Sysctls',
    check: (p) =>
      ((get(podSc(p), 'sysctls') as { name: string }[] | undefined) ?? []).filter((s) => !SAFE_SYSCTLS.has(s.name)).map((s) => `sysctl ${s.name}`),
  },
  // Restricted controls.
  {
    control: 'Volume Types',
    check: (p) =>
      (p.volumes ?? [])
        .filter((v) => !Object.keys(v).some((k) => k !== 'name' && ALLOWED_VOLUME_TYPES.has(k)))
        .map((v) => `volume ${v.name}: type not allowed`),
  },
  {
    control: 'Privilege Escalation',
    check: (_p, cs) =>
      cs.filter((c) => get(sc(c), 'allowPrivilegeEscalation') !== false).map((c) => `${c.name}: allowPrivilegeEscalation must be false`),
  },
  {
    control: 'Running as Non-root',
    check: (p, cs) => {
      const podLevel = get(podSc(p), 'runAsNonRoot');
      if (podLevel === false) return ['pod runAsNonRoot: false'];
      return cs
        .filter((c) => get(sc(c), 'runAsNonRoot') === false || (get(sc(c), 'runAsNonRoot') === undefined && podLevel !== true))
        .map((c) => `${c.name}: runAsNonRoot must be true`);
    },
  },
  {
    control: 'Running as Non-root user',
    check: (p, cs) => [get(podSc(p), 'runAsUser'), ...cs.map((c) => get(sc(c), 'runAsUser'))].filter((u) => u === 0).map(() => 'runAsUser: 0'),
  },
  {
    control: 'Seccomp (restricted)',
    check: (p, cs) => {
      const ok = (s: unknown): boolean => ['RuntimeDefault', 'Localhost'].includes(get(s as Ctx, 'type') as string);
      const podOk = ok(get(podSc(p), 'seccompProfile'));
      return cs
        .filter((c) => (get(sc(c), 'seccompProfile') === undefined ? !podOk : !ok(get(sc(c), 'seccompProfile'))))
        .map((c) => `${c.name}: seccompProfile must be RuntimeDefault or Localhost`);
    },
  },
  {
    control: 'Capabilities (restricted)',
    check: (_p, cs) =>
      cs.flatMap((c) => {
        const caps = get(sc(c), 'capabilities') as Ctx;
        const drop = (caps?.['drop'] as string[] | undefined) ?? [];
        const add = (caps?.['add'] as string[] | undefined) ?? [];
        return [
          ...(drop.includes('ALL') ? [] : [`${c.name}: must drop ALL`]),
          ...add.filter((a) => a !== 'NET_BIND_SERVICE').map((a) => `${c.name}: adds ${a}`),
        ];
      }),
  },
];

/** Violations of the restricted profile in `pod`, limited to `containers` (default: every container of the pod). */
export function restrictedViolations(
  pod: PodSpecLike,
  containers: readonly ContainerLike[] = [...(pod.initContainers ?? []), ...pod.containers],
): string[] {
  return RESTRICTED_RULES.flatMap((rule) => rule.check(pod, containers).map((v) => `${rule.control}: ${v}`));
}
