// The address flood control counts a client under. One IPv6 host is routed a whole /64 (RFC 7421) and picks
// any of its 2^64 addresses at will, so per-address limits keyed on the exact text would never trigger for it.
import { isIPv4, isIPv6 } from "node:net";

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
  const g = groupsOf(address);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff].join(".");
  }
  return `${formatIPv6([...g.slice(0, 4), 0, 0, 0, 0])}/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (an embedded dotted IPv4 tail becomes the last two). */
function groupsOf(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const [a, b, c, d] = tail.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string): number[] => (part === "" ? [] : part.split(":").map((x) => parseInt(x, 16)));
  const gap = text.indexOf("::");
  if (gap === -1) return parse(text);
  const head = parse(text.slice(0, gap));
  const rest = parse(text.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}

/** RFC 5952 §4: lower-case hex without leading zeros, the longest run of two or more zero groups (the first on a tie) as "::". */
function formatIPv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((x) => x.toString(16));
  if (bestStart === -1) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}
