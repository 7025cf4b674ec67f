// IPv6 text to its eight 16-bit groups and back in RFC 5952's canonical spelling: one parser and one formatter for
// flood control's per-/64 counting, the trust-proxy range checks and the auth-log scanner's address keys.

/**
 * The eight 16-bit groups of a valid IPv6 address in RFC 4291 text form (no zone id; "::" expanded; an embedded
 * dotted IPv4 tail, its parts read as decimal, becomes the last two groups). The text must already be valid
 * (net.isIPv6, or the auth-log scanner's isIPv6Text).
 *
 * @example
 * ipv6Groups("2001:db8::192.0.2.33") // [0x2001, 0xdb8, 0, 0, 0, 0, 0xc000, 0x221]
 */
export function ipv6Groups(address: string): number[] {
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

/**
 * RFC 5952 §4: lower-case hex without leading zeros, the longest run of two or more zero groups (the first on a
 * tie) as "::". One address, one spelling ("2001:db8:0::1" is "2001:db8::1").
 *
 * @example
 * formatIPv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]) // "2001:db8::1"
 */
export function formatIPv6(groups: readonly number[]): string {
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
