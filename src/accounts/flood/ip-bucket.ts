// The address flood control counts a client under. One IPv6 host is routed a whole /64 (RFC 7421) and picks
// any of its 2^64 addresses at will, so per-address limits keyed on the exact text would never trigger for it.
import { isIPv4, isIPv6 } from "node:net";
import { formatIPv6, ipv6Groups } from "../../lib/ipv6.ts";

/**
 * The client `ip` is counted as: an IPv4 address as given; an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack socket reports for an IPv4 client, RFC 4291 §2.5.5.2) as that IPv4 address, so one client is not two;
 * any other IPv6 address as its /64 in RFC 5952's spelling (a zone id dropped: it names our interface), so that
 * spellings and interface ids all land on one counter. Text that is no address is kept as it is.
 *
 * @example
 * ipBucket("2001:DB8:1:2::abcd") // "2001:db8:1:2::/64"
 * ipBucket("::ffff:198.51.100.7") // "198.51.100.7"
 */
export function ipBucket(ip: string): string {
  if (isIPv4(ip)) return ip;
  const address = ip.split("%", 1)[0] as string;
  if (!isIPv6(address)) return ip;
  const g = ipv6Groups(address);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff].join(".");
  }
  return `${formatIPv6([...g.slice(0, 4), 0, 0, 0, 0])}/64`;
}
