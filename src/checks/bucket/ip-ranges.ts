// How much of an address family the ranges of an aws:SourceIp condition cover together: a condition is judged on the
// union of its values, since 256 ranges that are each a /8 are 0.0.0.0/0 between them.
import { isIPv4, isIPv6 } from "node:net";

/** The family-wide measure of one condition's ranges. */
export interface RangeCover {
  /** Addresses of the family the union of the well-formed ranges holds (overlaps counted once). */
  covered: bigint;
  /** Some value is not a CIDR or address we can read (of either family: we cannot tell which it meant). */
  malformed: boolean;
}

const BITS = { 4: 32, 6: 128 } as const;

interface Block {
  start: bigint;
  /** One past the last address. */
  end: bigint;
}

function ipv4Value(text: string): bigint {
  return text.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

/** An IPv6 address (already checked by isIPv6, no zone) as a 128-bit number; a dotted IPv4 tail is two groups. */
function ipv6Value(text: string): bigint {
  let body = text;
  const lastColon = body.lastIndexOf(":");
  const tail = body.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = ipv4Value(tail);
    body = `${body.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = "", rest] = body.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/**
 * One policy value as a block of its family, or undefined when malformed. A bare address is a /32 (/128). Host bits
 * below the prefix are dropped: the block is the network the prefix names, whatever address it was written with.
 */
function parseBlock(raw: string): { family: 4 | 6; block: Block } | undefined {
  const v = raw.trim();
  const slash = v.indexOf("/");
  const address = slash < 0 ? v : v.slice(0, slash);
  // A zone id (fe80::1%eth0) names an interface of the host, which a request's source address never carries.
  const family = isIPv4(address) ? 4 : isIPv6(address) && !address.includes("%") ? 6 : undefined;
  if (family === undefined) return undefined;
  const bits = BITS[family];
  const prefixText = slash < 0 ? String(bits) : v.slice(slash + 1);
  // Digits only: Number("") is 0, and "10.0.0.0/" must not read as 0.0.0.0/0.
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bits) return undefined;
  const size = 1n << BigInt(bits - prefix);
  const value = family === 4 ? ipv4Value(address) : ipv6Value(address);
  const start = value - (value % size);
  return { family, block: { start, end: start + size } };
}

/**
 * What the values of one aws:SourceIp clause cover of each family. CIDR blocks are nested or apart, but the merge
 * below does not rely on it: blocks sorted by start, each counted only past the end reached so far. A policy holds at
 * most ~100,000 values (1 MiB), so the sort is the whole cost.
 *
 * @example
 * coverOf(["10.0.0.0/8", "10.1.0.0/16"])[4].covered; // 16777216n (2^24: the /16 lies inside the /8)
 */
export function coverOf(values: readonly string[]): Record<4 | 6, RangeCover> {
  const blocks: Record<4 | 6, Block[]> = { 4: [], 6: [] };
  let malformed = false;
  for (const raw of values) {
    const parsed = parseBlock(raw);
    if (parsed === undefined) malformed = true;
    else blocks[parsed.family].push(parsed.block);
  }
  const measure = (list: Block[]): bigint => {
    list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    let covered = 0n;
    let reached = 0n;
    for (const { start, end } of list) {
      if (end <= reached) continue;
      covered += end - (start > reached ? start : reached);
      reached = end;
    }
    return covered;
  };
  return { 4: { covered: measure(blocks[4]), malformed }, 6: { covered: measure(blocks[6]), malformed } };
}

/** The number of addresses in the whole family. */
export function familySize(family: 4 | 6): bigint {
  return 1n << BigInt(BITS[family]);
}
