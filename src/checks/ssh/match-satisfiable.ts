// Whether the criteria of several Match blocks can hold for one connection at once, decided
// conservatively: "no" only when that is certain (User root with User alice, disjoint networks, two
// LocalPorts), "yes" when unsure — dropping a combination a real connection can reach would hide a
// finding, keeping an impossible one only costs a false alarm.
import { localPort, type Attribute, type Criterion } from "./match.ts";
import { matchPatternList, parseCidr, patternListTooLong, type Cidr } from "./patterns.ts";

/**
 * Patterns (list entries) one decision looks at, at most: the witness search below is quadratic, and
 * a hostile file may hold Match lines of 16 KiB. Past the bound the answer is "yes" (unsure).
 */
const MAX_ENTRIES = 1_000;
/** Choices of one wildcard pattern per list tried, at most, before answering "yes". */
const MAX_CHOICES = 10_000;

/** Attributes sshd matches with match_pattern_list() (Group through ga_match_pattern_list, per group). */
const PATTERN_LISTS: ReadonlySet<Attribute> = new Set(["user", "group", "host", "rdomain"]);

const wild = (pattern: string): boolean => pattern.includes("*") || pattern.includes("?");

interface PatternList {
  positive: string[];
  negative: string[];
}

function splitList(list: string, lowercase: boolean): PatternList {
  const out: PatternList = { positive: [], negative: [] };
  for (const raw of list.split(",")) {
    const entry = lowercase ? raw.toLowerCase() : raw;
    if (entry.startsWith("!")) out.negative.push(entry.slice(1));
    else out.positive.push(entry);
  }
  return out;
}

/**
 * A necessary condition for two wildcard patterns to match a common string: the characters fixed
 * before the first "*" agree, those after the last "*" agree, and a pattern without "*" (fixed length)
 * is not shorter than the other needs. "alice*" and "bob*" fail it; "a*" and "*z" pass.
 */
function mayOverlap(p: string, q: string): boolean {
  const agree = (a: string | undefined, b: string | undefined): boolean => a === "?" || b === "?" || a === b;
  const minLength = (s: string): number => s.replaceAll("*", "").length;
  if (!p.includes("*") && minLength(q) > p.length) return false;
  if (!q.includes("*") && minLength(p) > q.length) return false;
  for (let i = 0; i < p.length && i < q.length && p[i] !== "*" && q[i] !== "*"; i++) {
    if (!agree(p[i], q[i])) return false;
  }
  for (let i = 1; i <= p.length && i <= q.length && p[p.length - i] !== "*" && q[q.length - i] !== "*"; i++) {
    if (!agree(p[p.length - i], q[q.length - i])) return false;
  }
  return true;
}

/**
 * User, Host and RDomain: is there a name every list accepts (match_pattern_list gives 1)? A literal
 * any list names is tried as the witness; when some list names literals only, those were all the
 * candidates. Otherwise one wildcard pattern per list must be able to overlap the others.
 */
function patternListsSatisfiable(lists: readonly string[], lowercase: boolean): boolean {
  const parsed = lists.map((l) => splitList(l, lowercase));
  for (const { positive } of parsed) {
    for (const p of positive) {
      if (!wild(p) && lists.every((l) => matchPatternList(p, l, lowercase) === 1)) return true;
    }
  }
  if (parsed.some((l) => !l.positive.some(wild))) return false;
  const negated = parsed.flatMap((l) => l.negative);
  // A wildcard pattern that a negated pattern refuses entirely ("adm*" with "!adm*", anything with "!*") cannot help.
  const choices = parsed.map((l) => l.positive.filter((p) => wild(p) && !negated.some((n) => n === p || /^\*+$/.test(n))));
  let budget = MAX_CHOICES;
  const chosen: string[] = [];
  const search = (i: number): boolean => {
    if (i === choices.length) return true;
    for (const p of choices[i] as string[]) {
      if (--budget < 0) return true;
      if (chosen.every((q) => mayOverlap(p, q))) {
        chosen.push(p);
        if (search(i + 1)) return true;
        chosen.pop();
      }
    }
    return false;
  };
  return search(0);
}

/**
 * Group: a user has several groups, so "Group a" and "Group b" can both hold. A list is impossible
 * only when it has no positive pattern, or names literal groups only and every one is refused by a
 * negated pattern of some list (the user would be in a group that list refuses).
 */
function groupListsSatisfiable(lists: readonly string[]): boolean {
  for (const list of lists) {
    const { positive } = splitList(list, false);
    if (positive.length === 0) return false;
    if (positive.some(wild)) continue;
    if (!positive.some((g) => lists.every((l) => matchPatternList(g, l, false) !== -1))) return false;
  }
  return true;
}

function prefixEqual(a: Cidr, b: Cidr, bits: number): boolean {
  if (a.bytes.length !== b.bytes.length) return false;
  for (let i = 0; i < bits; i++) {
    const bit = (x: Cidr): number => ((x.bytes[i >> 3] as number) >> (7 - (i & 7))) & 1;
    if (bit(a) !== bit(b)) return false;
  }
  return true;
}

/** Two networks are nested or disjoint: their intersection is the narrower one, or null. */
function intersect(a: Cidr, b: Cidr): Cidr | null {
  if (!prefixEqual(a, b, Math.min(a.bits, b.bits))) return null;
  return a.bits >= b.bits ? a : b;
}

/**
 * Address and LocalAddress: intersect the networks of every list (one entry of each) and keep a
 * result no negated network covers. A list with a wildcard entry (192.168.1.*) may match anything;
 * negated networks only inside the result (it minus a few holes) are assumed to leave addresses.
 */
function addressListsSatisfiable(lists: readonly string[]): boolean {
  let candidates: (Cidr | null)[] = [null]; // null: no network constraint yet
  const negated: Cidr[] = [];
  for (const list of lists) {
    const networks: Cidr[] = [];
    let open = false;
    for (const raw of list.split(",")) {
      if (raw === "") break; // addr_match_list stops at an empty entry
      const negative = raw.startsWith("!");
      const cidr = parseCidr(negative ? raw.slice(1) : raw);
      const network = cidr === null || cidr === "inconsistent" ? null : cidr;
      if (negative) {
        if (network !== null) negated.push(network);
      } else if (network === null) {
        open = true;
      } else {
        networks.push(network);
      }
    }
    if (!open && networks.length === 0) return false;
    if (open) continue;
    const next = new Map<string, Cidr>();
    for (const c of candidates) {
      for (const n of networks) {
        const both = c === null ? n : intersect(c, n);
        if (both !== null) next.set(`${both.bytes.join(".")}/${both.bits}`, both);
      }
    }
    if (next.size === 0) return false;
    candidates = [...next.values()];
  }
  return candidates.some((c) => c === null || !negated.some((n) => n.bits <= c.bits && prefixEqual(n, c, n.bits)));
}

/**
 * Whether some connection can satisfy all `criteria` at once (the criteria of several blocks, and of
 * the blocks they are nested in, put together). Conservative: true when unsure.
 *
 * @example
 * criteriaSatisfiable([{ attribute: "user", value: "root" }, { attribute: "address", value: "203.0.113.0/24" }]); // true
 * criteriaSatisfiable([{ attribute: "user", value: "root" }, { attribute: "user", value: "alice" }]); // false
 */
export function criteriaSatisfiable(criteria: readonly Criterion[]): boolean {
  const byAttribute = new Map<Attribute, string[]>();
  let entries = 0;
  for (const c of criteria) {
    if (c.attribute === "all") continue;
    // match_pattern_list() answers 0 for a list with an entry of 1,023 characters or more: such a criterion never holds.
    if (PATTERN_LISTS.has(c.attribute) && patternListTooLong(c.value)) return false;
    byAttribute.set(c.attribute, [...(byAttribute.get(c.attribute) ?? []), c.value]);
    entries += c.value.split(",").length;
  }
  if (entries > MAX_ENTRIES) return true;
  for (const [attribute, lists] of byAttribute) {
    switch (attribute) {
      case "user":
      case "rdomain":
        if (!patternListsSatisfiable(lists, false)) return false;
        break;
      case "host":
        if (!patternListsSatisfiable(lists, true)) return false;
        break;
      case "group":
        if (!groupListsSatisfiable(lists)) return false;
        break;
      case "address":
      case "localaddress":
        if (!addressListsSatisfiable(lists)) return false;
        break;
      case "localport": {
        // One port per connection; "LocalPort 0" never matches (sshd compares with the real port).
        const ports = new Set(criteria.filter((c) => c.attribute === "localport").map(localPort));
        if (ports.size > 1 || ports.has(0)) return false;
        break;
      }
      case "all":
        break;
    }
  }
  return true;
}
