// Source addresses as sshd logs them: IPv4, IPv6 (IPv4-mapped ones reduced to IPv4), or a host
// name when sshd was configured with UseDNS. Hand-written scanner: sshd prints what the socket
// gave it, but an attacker controls the user name printed next to it, so we validate strictly.
import { formatIPv6, ipv6Groups } from "../../lib/ipv6.ts";

/** 4 for IPv4, 6 for IPv6, 0 for a host name. */
export type AddressFamily = 4 | 6 | 0;

/**
 * Family of a normalised address as `scanAddress` returns it.
 *
 * @example
 * addressFamily("2001:db8::1"); // 6
 */
export function addressFamily(address: string): AddressFamily {
  if (address.includes(":")) return 6;
  return isIPv4(address) ? 4 : 0;
}

function isIPv4(s: string): boolean {
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return parts === 4;
}

/** Rewrites "192.030.0.6" as "192.30.0.6": leading zeros are decimal in sshd's output. */
function canonicalIPv4(s: string): string {
  return s
    .split(".")
    .map((p) => String(Number(p)))
    .join(".");
}

function hex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

/**
 * RFC 4291 text form: up to 8 groups of 1–4 hex digits, one "::" at most, an optional dotted IPv4 tail.
 *
 * @example
 * isIPv6Text("2001:db8::1"); // true
 */
export function isIPv6Text(s: string): boolean {
  const n = s.length;
  if (n < 2 || n > 45) return false;
  let groups = 0;
  let compressed = false;
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    compressed = true;
    i = 2;
    if (i === n) return true;
  }
  while (i < n) {
    const start = i;
    while (i < n && hex(s.charCodeAt(i))) i++;
    const len = i - start;
    if (i < n && s.charCodeAt(i) === 46) {
      // Dotted IPv4 tail counts as two groups and must end the address.
      if (!isIPv4(s.slice(start))) return false;
      groups += 2;
      i = n;
      break;
    }
    if (len === 0 || len > 4) return false;
    groups++;
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (s.charCodeAt(i) === 58) {
      if (compressed) return false;
      compressed = true;
      i++;
      if (i === n) break;
    } else if (i === n) return false;
  }
  return compressed ? groups <= 7 : groups === 8;
}

/**
 * RFC 5952 canonical text of a valid IPv6 address: lower case, no leading zeros, the longest run
 * of two or more zero groups as "::". One address must give one key ("2001:db8:0::1" is "2001:db8::1").
 * The input must already be valid (`isIPv6Text`).
 *
 * @example
 * canonicalIPv6("2001:0DB8:0:0::1".toLowerCase()); // "2001:db8::1"
 */
export function canonicalIPv6(text: string): string {
  return formatIPv6(ipv6Groups(text));
}

// Botnets reuse their addresses: remember recent canonical forms. Bounded; cleared when full.
const CANONICAL = new Map<string, string>();

function canonicalCached(text: string): string {
  let c = CANONICAL.get(text);
  if (c === undefined) {
    if (CANONICAL.size >= 4096) CANONICAL.clear();
    c = canonicalIPv6(text);
    // Keys are copied so the cache never keeps a log chunk alive.
    CANONICAL.set(` ${text}`.slice(1), c);
  }
  return c;
}

const PREFIXES = new Map<string, string>();

/**
 * The IPv6 /64 holding a canonical IPv6 address, in CIDR form. One host is routed a whole /64 (RFC 7421) and can
 * give every connection a new source address; failures are counted per /64 too, as the login flood control keys
 * IPv6 on it (docs/password-policy.md). Bounded cache, cleared when full, like the canonical forms above.
 *
 * @example
 * ipv6Prefix64("2001:db8:1:2::7"); // "2001:db8:1:2::/64"
 */
export function ipv6Prefix64(address: string): string {
  let p = PREFIXES.get(address);
  if (p === undefined) {
    if (PREFIXES.size >= 4096) PREFIXES.clear();
    p = `${formatIPv6([...ipv6Groups(address).slice(0, 4), 0, 0, 0, 0])}/64`;
    PREFIXES.set(` ${address}`.slice(1), p);
  }
  return p;
}

/** Whether a canonical IPv6 address (maybe with a zone) is link-local, fe80::/10: "fe8x:" to "febx:". */
function isLinkLocal(address: string): boolean {
  if (address.charCodeAt(4) !== 58 /* : */ || !address.startsWith("fe")) return false;
  const c = address.charCodeAt(2);
  return c === 56 /* 8 */ || c === 57 /* 9 */ || c === 97 /* a */ || c === 98 /* b */;
}

/**
 * Whether a canonical IPv6 address is an IPv4 client translated by NAT64/SIIT: the well-known prefix 64:ff9b::/96
 * (RFC 6052) or RFC 8215's local-use 64:ff9b:1::/48, in any of RFC 6052's formats. The IPv4 address is all of the
 * client the address holds; the rest is the translator's.
 */
export function isTranslatedIPv4(address: string): boolean {
  if (!address.startsWith("64:ff9b:")) return false;
  const g = ipv6Groups(address);
  return g[2] === 1 || (g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0);
}

// The IPv4 clients of 64:ff9b::/96 addresses seen lately (clientKeyOf). Bounded; cleared when full, as above.
const EMBEDDED = new Map<string, string>();

/**
 * The key a client address is counted under: for an address of NAT64's well-known prefix, 64:ff9b::/96 (RFC 6052,
 * where the IPv4 address is always the last 32 bits), the IPv4 address it embeds, so one IPv4 client reaching this host
 * natively and through a translator is one count (three tries each way were two counts of three, no offender); any
 * other address (and a host name) is its own key. RFC 8215's local-use 64:ff9b:1::/48 is left as it is: its translators
 * choose the prefix length, and with it where the IPv4 address lies, so the embedded address cannot be read for sure.
 * `address` is canonical (scanAddress). For any other address (or a network) the same string comes back, at the cost
 * of a character compare.
 *
 * @example
 * clientKeyOf("64:ff9b::cb00:7142"); // "203.0.113.66"
 * clientKeyOf("203.0.113.66"); // "203.0.113.66"
 */
export function clientKeyOf(address: string): string {
  // A network ("64:ff9b::/64", as nft.ts is given /64s) is no client.
  if (address.charCodeAt(0) !== 54 /* 6 */ || !address.startsWith("64:ff9b::") || address.includes("/")) return address;
  let key = EMBEDDED.get(address);
  if (key === undefined) {
    const g = ipv6Groups(address);
    const [g6, g7] = [g[6] ?? 0, g[7] ?? 0];
    key = g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0 ? `${g6 >> 8}.${g6 & 255}.${g7 >> 8}.${g7 & 255}` : address;
    if (EMBEDDED.size >= 4096) EMBEDDED.clear();
    // Copied out of the chunk the address was sliced from (as above), once.
    const copy = ` ${address}`.slice(1);
    EMBEDDED.set(copy, key === address ? copy : key);
  }
  return key;
}

/**
 * The IPv6 /64 a client address is counted in beside itself (`ipv6Prefix64`), or null when that /64 is no one host's:
 * - link-local (fe80::/10, logged with its zone, "fe80::1%eth0"): fe80::/64 is every link-local host on every link of
 *   this server, so five failures from five addresses a LAN guest gave itself on eth0 made the admin's login from his
 *   own link-local address on eth1 an offender's. Counted by address and zone only.
 * - NAT64 (`isTranslatedIPv4`): 64:ff9b::/64 holds every IPv4 client of the translator, so one IPv4 attacker made every
 *   IPv4 client's login an offender's and put the whole IPv4 Internet into the nft set. Each such address is one IPv4
 *   client (the translator maps one to one), counted alone as the login flood control counts it by its IPv4 address
 *   (src/accounts/flood/ip-bucket.ts): a 64:ff9b::/96 address under that IPv4 address (clientKeyOf), a 64:ff9b:1::/48
 *   one by itself.
 *
 * @example
 * ipv6GroupOf("2001:db8:1:2::7"); // "2001:db8:1:2::/64"
 * ipv6GroupOf("fe80::1%eth0"); // null
 * ipv6GroupOf("64:ff9b::cb00:7109"); // null
 */
export function ipv6GroupOf(address: string): string | null {
  return isLinkLocal(address) || isTranslatedIPv4(address) ? null : ipv6Prefix64(address);
}

function isHostChar(c: number): boolean {
  // [A-Za-z0-9._:-] — the characters of an address or a DNS name.
  return (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46 || c === 95 || c === 45;
}

/** Where an IPv6 zone id ("%eth0", "%2", at most 15 characters of [A-Za-z0-9_.-]) that starts at `i` ends; `i` when there is none. */
function skipZone(s: string, i: number): number {
  let j = i + 1;
  while (j < s.length && j - i <= 15) {
    const c = s.charCodeAt(j);
    // A host character but the colon.
    if (!isHostChar(c) || c === 58) break;
    j++;
  }
  return j > i + 1 ? j : i;
}

/** Result of scanning an address: the normalised text and where it ended. */
export interface ScannedAddress {
  address: string;
  end: number;
}

/**
 * Scans an address or host name starting at `i`. Returns null when the token there is not one
 * (empty, a bracketed "[preauth]", a host name that does not end with a letter or digit).
 *
 * @example
 * scanAddress("from ::ffff:1.2.3.4 port 22", 5); // { address: "1.2.3.4", end: 19 }
 */
export function scanAddress(s: string, i: number): ScannedAddress | null {
  let end = i;
  // One pass classifies the token: only digits and dots (IPv4 candidate), colons, letters.
  let colons = false;
  let letters = false;
  let leadingZero = false;
  let prev = 46;
  for (; end < s.length; end++) {
    const c = s.charCodeAt(end);
    if (c >= 48 && c <= 57) {
      if (c === 48 && prev === 46 && end + 1 < s.length && s.charCodeAt(end + 1) >= 48 && s.charCodeAt(end + 1) <= 57) leadingZero = true;
    } else if (c === 58) colons = true;
    else if (c !== 46) {
      if (!isHostChar(c)) break;
      letters = true;
    }
    prev = c;
  }
  // A trailing dot or colon is punctuation of the message ("from 1.2.3.4: 11:"), not the address.
  while (end > i && (s.charCodeAt(end - 1) === 46 || (s.charCodeAt(end - 1) === 58 && !s.startsWith("::", end - 2)))) end--;
  if (end === i || end - i > 253) return null;
  const raw = s.slice(i, end);
  if (!letters && isIPv4(raw)) return { address: leadingZero ? canonicalIPv4(raw) : raw, end };
  if (colons && raw.includes(":")) {
    const text = letters ? raw.toLowerCase() : raw;
    if (text.startsWith("::ffff:") && isIPv4(text.slice(7))) return { address: canonicalIPv4(text.slice(7)), end };
    if (!isIPv6Text(text)) return null;
    // A scoped address carries its zone: sshd logs a link-local client as "fe80::1%eth0" (what getnameinfo returns).
    // Before, the "%" ended the token and the line was dropped, so a brute force and a root login from the LAN went
    // unseen. The zone names this host's interface: a link-local address keeps it, since fe80::1 on eth0 and fe80::1
    // on eth1 are two hosts on two links (a guest on eth0 can give itself the admin's address on eth1); any other
    // address is one host whatever interface it came in on, and drops it.
    const address = canonicalCached(text);
    if (s.charCodeAt(end) !== 37 /* % */) return { address, end };
    const zoneEnd = skipZone(s, end);
    return { address: zoneEnd > end && isLinkLocal(address) ? `${address}${s.slice(end, zoneEnd)}` : address, end: zoneEnd };
  }
  // A DNS name (UseDNS yes): must contain a letter and end with a letter or digit.
  const last = raw.charCodeAt(raw.length - 1);
  const first = raw.charCodeAt(0);
  if (!letters || last === 45 || last === 95 || first === 45 || first === 95 || raw.includes(":")) return null;
  return { address: raw.toLowerCase(), end };
}
