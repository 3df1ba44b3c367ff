import { BlockList, isIPv4, type Socket } from 'node:net';
import type { TrustedProxy } from '../config/config.js';

/**
 * `--trusted-proxies` as a matcher. node:net's BlockList covers what is needed: addresses and
 * CIDRs of both families, and IPv4-mapped IPv6 peers (`::ffff:10.0.0.1` on a dual-stack listener)
 * match their IPv4 rules. The verdict is kept per connection: a proxy's keep-alive connection is
 * judged once.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly verdicts = new WeakMap<Socket, boolean>();

  /**
   * `unixSocket`: the listener is `--forward-auth-socket` (`unix` in `--trusted-proxies`), so every
   * peer is a peer of the socket, trusted; who can reach it is the socket directory's business.
   */
  constructor(
    entries: readonly TrustedProxy[],
    private readonly unixSocket = false,
  ) {
    for (const entry of entries) this.list.addSubnet(entry.address, entry.prefix, entry.family);
  }

  /** Whether the peer may ask; a TCP socket without an address (already gone) never may. */
  trusts(socket: Socket): boolean {
    if (this.unixSocket) return true;
    let verdict = this.verdicts.get(socket);
    if (verdict === undefined) {
      verdict = this.trustsAddress(socket.remoteAddress);
      this.verdicts.set(socket, verdict);
    }
    return verdict;
  }

  trustsAddress(address: string | undefined): boolean {
    if (address === undefined) return false;
    return this.list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
  }
}
