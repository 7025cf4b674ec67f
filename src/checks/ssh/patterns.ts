// OpenSSH's pattern matching (match.c): "*" and "?" wildcards, comma lists with "!" negation, and
// address lists mixing CIDR blocks with wildcard patterns (addrmatch.c).
import { isIPv4, isIPv6 } from "node:net";
import { wildcardMatch } from "../../lib/wildcard.ts";

/**
 * Wildcard match of the whole string: "*" any run, "?" one character. Iterative (no backtracking
 * blow-up on hostile patterns such as "*a*a*a*a*b").
 *
 * @example
 * matchPattern("web01.example.org", "web*.example.org"); // true
 */
export function matchPattern(s: string, pattern: string): boolean {
  return wildcardMatch(s, pattern);
}

/**
 * The longest pattern (after its "!") match_pattern_list() takes: it copies each into a 1,024-byte buffer and
 * gives up on the whole list, answering 0, at an entry of 1,023 characters or more.
 */
export const MAX_LIST_PATTERN = 1_022;

/**
 * Whether match_pattern_list() gives up on `list` (an entry past MAX_LIST_PATTERN) before answering 1: it can
 * never match, so a "Match User root,!<1,100 characters>" block applies to no one.
 */
export function patternListTooLong(list: string): boolean {
  return list.split(",").some((raw) => (raw.startsWith("!") ? raw.length - 1 : raw.length) > MAX_LIST_PATTERN);
}

/**
 * match_pattern_list(): 1 when a positive pattern matches and no negated one does, -1 when a negated
 * pattern matches, 0 otherwise. So "!root" alone never matches anybody: "*,!root" is needed. Entries are
 * read in order, and one longer than MAX_LIST_PATTERN makes the answer 0 unless a negated entry before it
 * matched (match.c: "If subpattern too long, return failure").
 *
 * @example
 * matchPatternList("alice", "*,!root", false); // 1
 */
export function matchPatternList(s: string, list: string, lowercase: boolean): 1 | 0 | -1 {
  const subject = lowercase ? s.toLowerCase() : s;
  let positive = false;
  for (const raw of list.split(",")) {
    const negated = raw.startsWith("!");
    let pattern = negated ? raw.slice(1) : raw;
    if (pattern.length > MAX_LIST_PATTERN) return 0;
    if (lowercase) pattern = pattern.toLowerCase();
    if (matchPattern(subject, pattern)) {
      if (negated) return -1;
      positive = true;
    }
  }
  return positive ? 1 : 0;
}

/**
 * An IPv4 address in any form inet_aton(3) takes, as glibc's getaddrinfo(AI_NUMERICHOST) does for sshd's
 * addr_pton(): one to four parts, each decimal, octal ("012") or hex ("0x0a"), the last filling the bytes
 * left ("10.1" is 10.0.0.1, "167772161" too). Null otherwise (nothing may follow the address).
 */
function inetAton(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    let value: number;
    if (/^0[xX][0-9a-fA-F]+$/.test(part)) value = parseInt(part.slice(2), 16);
    else if (/^0[0-7]*$/.test(part)) value = parseInt(part, 8);
    else if (/^[1-9][0-9]*$/.test(part)) value = Number(part);
    else return null;
    values.push(value);
  }
  const last = values.pop() as number;
  if (values.some((v) => v > 0xff) || last >= 2 ** (8 * (4 - values.length))) return null;
  const out = new Uint8Array(4);
  values.forEach((v, i) => (out[i] = v));
  for (let i = 3, rest = last; i >= values.length; i--, rest = Math.floor(rest / 256)) out[i] = rest % 256;
  return out;
}

/** An address as bytes (4 for IPv4, 16 for IPv6), or null when `text` is not an IP address. */
export function addressBytes(text: string): Uint8Array | null {
  const v4 = inetAton(text);
  if (v4 !== null) return v4;
  if (!isIPv6(text) || text.includes("%")) return null;
  let body = text;
  let tail: number[] = [];
  const lastColon = body.lastIndexOf(":");
  const maybeV4 = body.slice(lastColon + 1);
  if (isIPv4(maybeV4)) {
    tail = maybeV4.split(".").map(Number);
    body = `${body.slice(0, lastColon + 1)}0:0`;
  }
  const [head = "", rest] = body.split("::");
  const groups = (part: string): number[] => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

export interface Cidr {
  bytes: Uint8Array;
  bits: number;
}

/**
 * addr_pton_cidr(): null when not an address/CIDR at all (then sshd tries the entry as a wildcard pattern),
 * "inconsistent" when host bits are set or the mask is longer than the address (10.0.0.0/33; sshd refuses
 * both, though a mask above 128 makes the entry a pattern again).
 */
export function parseCidr(text: string): Cidr | null | "inconsistent" {
  // sshd copies the entry into a 64-byte buffer and gives up on a longer one.
  if (text.length >= 64) return null;
  const slash = text.indexOf("/");
  let bits: number | undefined;
  if (slash >= 0) {
    const m = text.slice(slash + 1);
    if (!/^\d+$/.test(m) || Number(m) > 128) return null;
    bits = Number(m);
  }
  const addr = addressBytes(slash < 0 ? text : text.slice(0, slash));
  if (addr === null) return null;
  const max = addr.length * 8;
  if (bits === undefined) bits = max;
  else if (bits > max) return "inconsistent";
  for (let i = bits; i < max; i++) {
    // sshd refuses 10.0.0.1/8: a network written with host bits is most likely a typo.
    if (((addr[i >> 3] as number) >> (7 - (i & 7))) & 1) return "inconsistent";
  }
  return { bytes: addr, bits };
}

function inNetwork(addr: Uint8Array, net: Cidr): boolean {
  if (addr.length !== net.bytes.length) return false;
  for (let i = 0; i < net.bits; i++) {
    const bit = (b: Uint8Array): number => ((b[i >> 3] as number) >> (7 - (i & 7))) & 1;
    if (bit(addr) !== bit(net.bytes)) return false;
  }
  return true;
}

/**
 * addr_match_list(): 1 match, 0 no match, -1 a negated entry matched, -2 the list is invalid
 * (an empty entry, "!" alone, or a CIDR block with host bits set or too long a mask). `addr` null only validates.
 *
 * @example
 * addressMatchList("10.1.2.3", "10.0.0.0/8,!10.9.0.0/16"); // 1
 */
export function addressMatchList(addr: string | null, list: string): 1 | 0 | -1 | -2 {
  const bytes = addr === null ? null : addressBytes(addr);
  let result: 1 | 0 | -1 | -2 = 0;
  for (const raw of list.split(",")) {
    // An empty entry ("10.0.0.0/8,,x", a trailing comma) makes the whole list invalid.
    if (raw === "") return -2;
    const negated = raw.startsWith("!");
    const entry = negated ? raw.slice(1) : raw;
    if (entry === "") return -2;
    const cidr = parseCidr(entry);
    if (cidr === "inconsistent") return -2;
    const found =
      addr !== null && ((cidr !== null && bytes !== null && inNetwork(bytes, cidr)) || (cidr === null && matchPattern(addr, entry)));
    if (found) {
      if (negated) return -1;
      result = 1;
    }
  }
  return result;
}
