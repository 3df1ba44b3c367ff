import { describe, expect, it } from 'vitest';
import { isLoopback } from '../../src/ops/admin.js';

// POST /cache/flush answers loopback peers only (403 otherwise); a non-loopback peer cannot be made
// on this machine's loopback-only tests, so the rule the admin listener applies is pinned here.
describe('the cache flush peer rule', () => {
  it.each(['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '::ffff:127.0.0.1'])('%s is a loopback peer', (address) => {
    expect(isLoopback(address)).toBe(true);
  });
  it.each(['10.0.0.1', '192.0.2.2', '::ffff:10.0.0.1', '::2', 'fe80::1', '1127.0.0.1', undefined])('%s is not', (address) => {
    expect(isLoopback(address)).toBe(false);
  });
});
