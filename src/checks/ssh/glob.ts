// Pattern matching of one path segment as glob(3) does it for sshd's Include (glibc, C locale, no flags):
// "*", "?", bracket expressions ("[a-z]", "[!x]", "[^x]", "[[:digit:]]") and backslash escapes, and a
// leading "." in a name matched only by a literal "." (FNM_PERIOD). Names and patterns are byte strings:
// one character per byte, so ranges and comparisons are by byte value, as in the C locale.

import { wildcardMatchBy } from "../../lib/wildcard.ts";

type Token =
  | { kind: "literal"; char: string }
  | { kind: "any" }
  | { kind: "star" }
  | { kind: "set"; negated: boolean; test: (c: string) => boolean };

/** POSIX character classes in the C locale: ASCII only. */
const CLASSES: Readonly<Record<string, RegExp>> = {
  alnum: /[A-Za-z0-9]/, alpha: /[A-Za-z]/, blank: /[ \t]/, cntrl: /[\x00-\x1f\x7f]/, digit: /[0-9]/,
  graph: /[\x21-\x7e]/, lower: /[a-z]/, print: /[\x20-\x7e]/, punct: /[!-/:-@[-`{-~]/, space: /[ \t\n\v\f\r]/,
  upper: /[A-Z]/, xdigit: /[0-9A-Fa-f]/,
};

/** The bracket expression starting at `open` ("["), or null when it has no closing "]" (then "[" is literal). */
function parseSet(pattern: string, open: number): { token: Token; end: number } | null {
  let i = open + 1;
  let negated = false;
  if (pattern[i] === "!" || pattern[i] === "^") {
    negated = true;
    i++;
  }
  const tests: ((c: string) => boolean)[] = [];
  let first = true;
  while (i < pattern.length) {
    let c = pattern[i] as string;
    if (c === "]" && !first) {
      const any = (ch: string): boolean => tests.some((t) => t(ch));
      return { token: { kind: "set", negated, test: negated ? (ch) => !any(ch) : any }, end: i + 1 };
    }
    first = false;
    if (c === "[" && (pattern[i + 1] === ":" || pattern[i + 1] === "=" || pattern[i + 1] === ".")) {
      const delim = pattern[i + 1] as string;
      const close = pattern.indexOf(`${delim}]`, i + 2);
      if (close >= 0) {
        const name = pattern.slice(i + 2, close);
        if (delim === ":") {
          const re = Object.hasOwn(CLASSES, name) ? CLASSES[name] : undefined;
          // An unknown class name makes the whole pattern fail to match (fnmatch returns an error).
          tests.push(re === undefined ? () => false : (ch) => re.test(ch));
        } else {
          // In the C locale an equivalence class or collating symbol is its single character.
          tests.push((ch) => name.length === 1 && ch === name);
        }
        i = close + 2;
        continue;
      }
    }
    if (c === "\\" && i + 1 < pattern.length) c = pattern[++i] as string;
    i++;
    if (pattern[i] === "-" && i + 1 < pattern.length && pattern[i + 1] !== "]") {
      let hi = pattern[i + 1] as string;
      i += 2;
      if (hi === "\\" && i < pattern.length) hi = pattern[i++] as string;
      const lo = c;
      tests.push((ch) => ch >= lo && ch <= hi);
    } else {
      const lit = c;
      tests.push((ch) => ch === lit);
    }
  }
  return null;
}

function tokenize(pattern: string): Token[] | null {
  const out: Token[] = [];
  for (let i = 0; i < pattern.length; ) {
    const c = pattern[i] as string;
    if (c === "\\") {
      // A trailing backslash escapes nothing: glob(3) matches no name then.
      if (i + 1 >= pattern.length) return null;
      out.push({ kind: "literal", char: pattern[i + 1] as string });
      i += 2;
    } else if (c === "*") {
      out.push({ kind: "star" });
      i++;
    } else if (c === "?") {
      out.push({ kind: "any" });
      i++;
    } else if (c === "[") {
      const set = parseSet(pattern, i);
      if (set === null) {
        out.push({ kind: "literal", char: "[" });
        i++;
      } else {
        out.push(set.token);
        i = set.end;
      }
    } else {
      out.push({ kind: "literal", char: c });
      i++;
    }
  }
  return out;
}

function matchesOne(token: Token, c: string): boolean {
  if (token.kind === "literal") return token.char === c;
  if (token.kind === "any") return true;
  return token.kind === "set" && token.test(c);
}

/**
 * True when `name` (one path segment) matches the glob(3) `pattern`. Iterative, with one backtracking
 * point per "*" (no blow-up on "*a*a*a*b").
 *
 * @example
 * globMatch("10-legacy.conf", "[0-9]*.conf"); // true
 * globMatch(".hidden", "*"); // false: only a literal "." matches a leading dot
 */
export function globMatch(name: string, pattern: string): boolean {
  const tokens = tokenize(pattern);
  if (tokens === null) return false;
  const head = tokens[0];
  if (name.startsWith(".") && !(head?.kind === "literal" && head.char === ".")) return false;
  return wildcardMatchBy(name.length, tokens.length, (p) => tokens[p]?.kind === "star", (p, t) => matchesOne(tokens[p] as Token, name[t] as string));
}

/**
 * True when the segment holds an unescaped wildcard ("*", "?", or "[" with a closing "]"): glob(3) then
 * lists the directory; otherwise it takes the segment as a name, escapes removed.
 *
 * @example
 * hasWildcard("[0-9]*.conf"); // true
 * hasWildcard("a\\*.conf"); // false: the escaped "*" names the file "a*.conf"
 */
export function hasWildcard(segment: string): boolean {
  let open = false;
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === "\\") i++;
    else if (c === "*" || c === "?") return true;
    else if (c === "[") open = true;
    else if (c === "]" && open) return true;
  }
  return false;
}

/**
 * A segment without wildcards as the name glob(3) looks up: backslashes removed. Null for a trailing
 * lone backslash, which matches nothing.
 *
 * @example
 * unescapeSegment("a\\b.conf"); // "ab.conf"
 */
export function unescapeSegment(segment: string): string | null {
  let out = "";
  for (let i = 0; i < segment.length; i++) {
    if (segment[i] === "\\") {
      if (++i >= segment.length) return null;
    }
    out += segment[i];
  }
  return out;
}
