import type { Emulator } from '../core.js';
import { sendJson, type Exchange } from '../exchange.js';

/**
 * What MSAL asks of login.microsoftonline.com before it signs anyone in: instance discovery
 * (`GET /common/discovery/instance`, which authority hosts exist and where their OpenID
 * configuration is) and the user realm (`GET /common/userrealm/{upn}`, managed or federated).
 * MSAL asks the public host even for another authority, so the emulator answers these both
 * directly and behind its loopback HTTPS proxy (see proxy.ts), shaped as Entra ID answers them.
 */

/** The public cloud's hosts, as Entra lists them. */
const PUBLIC_CLOUD = {
  preferred_network: 'login.microsoftonline.com',
  preferred_cache: 'login.windows.net',
  aliases: ['login.microsoftonline.com', 'login.windows.net', 'login.microsoft.com', 'sts.windows.net'],
} as const;

/** The emulator's sign-in hosts: the names its certificate covers, on its HTTPS port. */
function emulatorHosts(em: Emulator): string[] {
  const port = new URL(em.bases.https).port;
  return ['localhost', '127.0.0.1'].map((h) => `${h}:${port}`);
}

/**
 * `authorization_endpoint=https://{host}/{tenant}/oauth2[/v2.0]/authorize`: MSAL drops the port, so
 * a loopback host means the emulator; its tenant discovery document is on the emulator's HTTPS port.
 */
export function serveInstanceDiscovery(em: Emulator, ex: Exchange): void {
  const raw = ex.query.get('authorization_endpoint');
  let endpoint: URL | undefined;
  try {
    endpoint = raw === null ? undefined : new URL(raw);
  } catch {
    endpoint = undefined;
  }
  const m = endpoint === undefined ? null : /^\/([^/]+)\/oauth2\/(v2\.0\/)?authorize$/.exec(endpoint.pathname);
  if (endpoint === undefined || m === null) {
    return sendJson(ex.res, 400, {
      error: 'invalid_instance',
      error_description: "AADSTS50049: Unknown or invalid instance. The 'authorization_endpoint' parameter is missing or not an authorize endpoint.",
    });
  }
  const tenant = m[1] ?? 'common';
  const wellKnown = `${tenant}/${m[2] === undefined ? '' : 'v2.0/'}.well-known/openid-configuration`;
  const hosts = emulatorHosts(em);
  const host = endpoint.hostname;
  const onEmulator = host === 'localhost' || host === '127.0.0.1';
  if (!onEmulator && !(PUBLIC_CLOUD.aliases as readonly string[]).includes(host)) {
    return sendJson(ex.res, 400, { error: 'invalid_instance', error_description: `AADSTS50049: Unknown or invalid instance '${host}'.` });
  }
  const origin = onEmulator ? `https://${host}:${new URL(em.bases.https).port}` : `https://${host}`;
  sendJson(ex.res, 200, {
    tenant_discovery_endpoint: `${origin}/${wellKnown}`,
    'api-version': '1.1',
    metadata: [PUBLIC_CLOUD, ...hosts.map((h) => ({ preferred_network: h, preferred_cache: h, aliases: [h] }))],
  });
}

/** `GET /common/userrealm/{upn}?api-version=1.0`: every emulator user is a managed (cloud) account. */
export function serveUserRealm(em: Emulator, ex: Exchange, upn: string): void {
  const domain = upn.includes('@') ? upn.slice(upn.lastIndexOf('@') + 1).toLowerCase() : '';
  const tenant = em.state.tenants.find((t) => t.domain.toLowerCase() === domain);
  if (tenant === undefined) return sendJson(ex.res, 200, { ver: '1.0', account_type: 'Unknown', cloud_instance_name: 'microsoftonline.com' });
  sendJson(ex.res, 200, {
    ver: '1.0',
    account_type: 'Managed',
    domain_name: tenant.domain,
    cloud_instance_name: 'microsoftonline.com',
    cloud_audience_urn: 'urn:federation:MicrosoftOnline',
  });
}
