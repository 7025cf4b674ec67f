// The address flood control counts a client under. One IPv6 host is routed a whole /64 (RFC 7421) and picks
// any of its 2^64 addresses at will, so per-address limits keyed on the exact text would never trigger for it.
import { isIPv4, isIPv6 } from "node:net";
import { formatIPv6, ipv6Groups } from "../../lib/ipv6.ts";

// A port: 1 – 5 decimal digits, at most 65535.
const PORT = /^\d{1,5}$/;
const validPort = (text: string): boolean => PORT.test(text) && Number(text) <= 65_535;

/**
 * The bare address of `ip` written with a port, as some proxies put the client hop in X-Forwarded-For (Azure App
 * Service, IIS ARR: "a.b.c.d:port", "[v6]:port"): every connection of one client has its own source port, so the
 * port must not make it a new client. Only an IPv4 address before ":port" and an IPv6 address (zone id allowed) in
 * brackets, with or without ":port", lose their decoration; anything else — a bare IPv6 address, whose last group
 * a port would look like, or text that is no address — is returned as it is, never cut into an "address".
 *
 * @example
 * withoutPort("203.0.113.9:51234") // "203.0.113.9"
 * withoutPort("[2001:db8::1]:443") // "2001:db8::1"
 * withoutPort("unknown:80") // "unknown:80"
 */
export function withoutPort(ip: string): string {
  if (ip.startsWith("[")) {
    const close = ip.indexOf("]");
    const address = ip.slice(1, close);
    const rest = ip.slice(close + 1);
    const portOK = rest === "" || (rest.startsWith(":") && validPort(rest.slice(1)));
    return close > 0 && portOK && isIPv6(address.split("%", 1)[0] as string) ? address : ip;
  }
  const colon = ip.indexOf(":");
  if (colon > 0 && colon === ip.lastIndexOf(":") && isIPv4(ip.slice(0, colon)) && validPort(ip.slice(colon + 1))) return ip.slice(0, colon);
  return ip;
}

/**
 * The client `ip` is counted as (after withoutPort: one client's source ports are one client): an IPv4 address as given; an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack socket reports for an IPv4 client, RFC 4291 §2.5.5.2) as that IPv4 address, so one client is not two;
 * any other IPv6 address as its /64 in RFC 5952's spelling (a zone id dropped: it names our interface), so that
 * spellings and interface ids all land on one counter. An address under NAT64's prefixes, 6to4 or Teredo counts as
 * the IPv4 address it carries. Text that is no address is kept as it is.
 *
 * @example
 * ipBucket("2001:DB8:1:2::abcd") // "2001:db8:1:2::/64"
 * ipBucket("::ffff:198.51.100.7") // "198.51.100.7"
 * ipBucket("[2001:db8:1:2::9]:443") // "2001:db8:1:2::/64"
 * ipBucket("2002:cb00:7109:5::1") // "203.0.113.9" (6to4)
 */
export function ipBucket(written: string): string {
  return prefixOf(written, 4);
}

/**
 * The site a client address belongs to: an IPv4 address as itself, an IPv6 one by its /48, what one subscriber or
 * organisation is commonly given (RFC 6177 suggests between a /48 and a /56 per site). For shares of something
 * scarce (the password-work gate) and flood control's site window: counted by /64 alone, one subscriber with a /56
 * or a /48 would be 256 or 65,536 clients.
 *
 * @example
 * ipSite("2001:db8:ab:7::1") // "2001:db8:ab::/48"
 * ipSite("::ffff:198.51.100.7") // "198.51.100.7"
 */
export function ipSite(written: string): string {
  return prefixOf(written, 3);
}

/** Two 16-bit groups as the dotted IPv4 address they hold. */
function dotted(high: number, low: number): string {
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
}

/** `written` (an address, maybe with a port) as an IPv4 address, or its IPv6 prefix of `groups` 16-bit groups. */
function prefixOf(written: string, groups: number): string {
  const ip = withoutPort(written);
  if (isIPv4(ip)) return ip;
  const address = ip.split("%", 1)[0] as string;
  if (!isIPv6(address)) return written;
  const g = ipv6Groups(address);
  // An IPv4 client as an IPv6 address: mapped (::ffff:a.b.c.d, a dual-stack socket), or translated by a NAT64/SIIT gateway
  // under the well-known prefix 64:ff9b::/96 (RFC 6052): the IPv4 address it embeds is the client, not the prefix,
  // which every IPv4 user of the translator shares.
  const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
  // (and RFC 8215's local-use 64:ff9b:1::/48 as the /96 translators use it there, 64:ff9b:1::/96).
  const translated = g[0] === 0x64 && g[1] === 0xff9b && (g[2] === 0 || g[2] === 1) && g.slice(3, 6).every((x) => x === 0);
  if (mapped || translated) return dotted(g[6]!, g[7]!);
  // Tunnels any IPv4 host uses without asking anyone, each giving it IPv6 space of its own: 6to4 (RFC 3056, 2002:V4::/48,
  // 65,536 /64s) and Teredo (RFC 4380, 2001:0:SERVER:FLAGS:PORT:CLIENT with the client's address in the last 32 bits,
  // inverted: naming another server gives another /64). Counted as that IPv4 host, or one address is thousands of clients.
  if (g[0] === 0x2002) return dotted(g[1]!, g[2]!);
  if (g[0] === 0x2001 && g[1] === 0) return dotted(~g[6]! & 0xffff, ~g[7]! & 0xffff);
  return `${formatIPv6([...g.slice(0, groups), ...Array<number>(8 - groups).fill(0)])}/${groups * 16}`;
}
