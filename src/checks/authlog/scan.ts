// Small hand-written scanners shared by the sshd message matchers: the optional " port N",
// " on IFACE" and " [preauth]" tails sshd appends, and "from HOST" searches that survive user
// names an attacker chose. Every loop moves forward: linear in the line length.
import { scanAddress } from "./address.ts";

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/** Index after " port DIGITS" at i, or -1. */
function portAt(s: string, i: number): number {
  if (!s.startsWith(" port ", i)) return -1;
  let j = i + 6;
  const start = j;
  while (j < s.length && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
  return j > start ? j : -1;
}

/** Index after " on NONSPACE" at i, or -1. */
function onAt(s: string, i: number): number {
  if (!s.startsWith(" on ", i)) return -1;
  let j = i + 4;
  const start = j;
  while (j < s.length && !isSpace(s.charCodeAt(j))) j++;
  return j > start ? j : -1;
}

/** Skips up to two of " port N" / " on X" (fail2ban's __on_port_opt). */
export function skipOnPort(s: string, i: number): number {
  for (let k = 0; k < 2; k++) {
    const next = Math.max(portAt(s, i), onAt(s, i));
    if (next < 0) break;
    i = next;
  }
  return i;
}

/** Skips an optional " ssh2" / " ssh1" / " ssh" protocol tag. */
export function skipSshTag(s: string, i: number): number {
  if (!s.startsWith(" ssh", i)) return i;
  let j = i + 4;
  while (j < s.length && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
  return j;
}

/** True when only trailing white space remains after i. */
export function atEnd(s: string, i: number): boolean {
  while (i < s.length) {
    if (!isSpace(s.charCodeAt(i))) return false;
    i++;
  }
  return true;
}

/** True when the rest is up to three of " port N", " on X", " [preauth]", then white space (fail2ban's __suff). */
export function suffixToEnd(s: string, i: number): boolean {
  for (let k = 0; k < 3; k++) {
    let next = Math.max(portAt(s, i), onAt(s, i));
    if (next < 0 && s.startsWith(" [preauth]", i)) next = i + 10;
    if (next < 0) break;
    i = next;
  }
  return atEnd(s, i);
}

export interface FromMatch {
  address: string;
  /** Index of the " from " that introduced the address: the user name ends here. */
  at: number;
}

/**
 * Finds " from HOST" after `start` such that `tail(s, endOfHost)` holds. `first` takes the
 * leftmost such place, `last` the rightmost (a greedy `.*` in a regex). Each candidate's host token
 * is disjoint from the others, so the search is linear.
 */
export function findFrom(s: string, start: number, tail: (s: string, i: number) => boolean, pick: "first" | "last"): FromMatch | null {
  let found: FromMatch | null = null;
  let p = s.indexOf(" from ", start);
  while (p >= 0) {
    const a = scanAddress(s, p + 6);
    if (a && tail(s, a.end)) {
      found = { address: a.address, at: p };
      if (pick === "first") return found;
    }
    p = s.indexOf(" from ", p + 1);
  }
  return found;
}
