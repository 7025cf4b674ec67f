// IAM wildcard patterns (`*` any run, `?` one character) over action names and resource ARNs:
// plain matching, "can two patterns match a common string", and a sound "does A cover B" test.
import { wildcardMatch } from "../../lib/wildcard.ts";

const STAR = 42; // "*"
const QMARK = 63; // "?"

/** Longest pattern we reason about. IAM caps ARNs at 2048 characters; this bounds the O(n·m) tables. */
export const MAX_PATTERN_LENGTH = 2048;

/**
 * True when `pattern` (with `*` and `?`) matches the literal `text`. Case-sensitive unless asked.
 *
 * @example
 * globMatch("s3:Get*", "s3:GetObject", { ignoreCase: true }); // true
 */
export function globMatch(pattern: string, text: string, options: { ignoreCase?: boolean } = {}): boolean {
  return options.ignoreCase ? matchFrom(pattern.toLowerCase(), text.toLowerCase()) : matchFrom(pattern, text);
}

/** A pattern prepared once for many matches (see compileGlob). */
export type GlobMatcher = (text: string) => boolean;

/**
 * Prepares `pattern` for matching many texts: lower-cased once when `ignoreCase`, runs of `*` folded into one
 * (the same language), and a length floor, since every literal character and `?` consumes one character of the
 * text. A hostile 2,048-character pattern is then rejected against a 20-character action name without a scan,
 * and a pattern that does get scanned is at most about twice the text's length.
 *
 * @example
 * const m = compileGlob("S3:Get*", { ignoreCase: true });
 * m("s3:GetObject"); // true
 */
export function compileGlob(pattern: string, options: { ignoreCase?: boolean } = {}): GlobMatcher {
  const ignoreCase = options.ignoreCase === true;
  const p = (ignoreCase ? pattern.toLowerCase() : pattern).replace(/\*{2,}/g, "*");
  if (!hasWildcard(p)) return ignoreCase ? (text) => text.toLowerCase() === p : (text) => text === p;
  let floor = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) !== STAR) floor++;
  const scan = (t: string): boolean => t.length >= floor && matchFrom(p, t);
  return ignoreCase ? (text) => scan(text.toLowerCase()) : scan;
}

/** The whole-string match of `p` against `t` (src/lib/wildcard.ts). */
function matchFrom(p: string, t: string): boolean {
  return wildcardMatch(t, p);
}

/**
 * True when some string matches both patterns (both may contain wildcards). Dynamic programming
 * over positions, O(|a|·|b|) time and memory (patterns are bounded by MAX_PATTERN_LENGTH).
 *
 * @example
 * globsIntersect("arn:aws:s3:::logs/*", "arn:aws:s3:::*"); // true
 */
export function globsIntersect(a: string, b: string): boolean {
  const n = a.length;
  const m = b.length;
  const w = m + 1;
  // reach[i*w+j]: a[0..i) and b[0..j) can produce the same string, with a[i] and b[j] next.
  // Every move increases i or j, so one pass in row order visits sources before targets.
  const reach = new Uint8Array((n + 1) * w);
  reach[0] = 1;
  for (let i = 0; i <= n; i++) {
    for (let j = 0; j <= m; j++) {
      if (!reach[i * w + j]) continue;
      if (i === n && j === m) return true;
      const ac = i < n ? a.charCodeAt(i) : -1;
      const bc = j < m ? b.charCodeAt(j) : -1;
      if (ac === STAR) {
        reach[(i + 1) * w + j] = 1; // a's * ends here
        if (bc !== -1) reach[i * w + j + 1] = 1; // a's * absorbs b's next unit (or b's * ends empty)
      }
      if (bc === STAR) {
        reach[i * w + j + 1] = 1;
        if (ac !== -1) reach[(i + 1) * w + j] = 1;
      }
      if (ac !== -1 && bc !== -1 && ac !== STAR && bc !== STAR && (ac === bc || ac === QMARK || bc === QMARK)) {
        reach[(i + 1) * w + j + 1] = 1;
      }
    }
  }
  return reach[n * w + m] === 1;
}

/**
 * Sound test that every string matched by `inner` is matched by `outer`: `outer` must match
 * `inner` read symbolically (outer's `*` may swallow inner's wildcards, outer's `?` may match inner's
 * `?`, outer's literals match only equal literals). It can answer false for a few exotic pairs that
 * do cover each other; callers use it only where "false" is the conservative answer (a Deny that
 * might not cover an Allow is treated as not covering it).
 *
 * @example
 * globCovers("arn:aws:s3:::b/*", "arn:aws:s3:::b/private/*"); // true
 */
export function globCovers(outer: string, inner: string): boolean {
  const n = outer.length;
  const m = inner.length;
  let prev = new Uint8Array(m + 1);
  prev[0] = 1;
  for (let i = 1; i <= n; i++) {
    const cur = new Uint8Array(m + 1);
    const oc = outer.charCodeAt(i - 1);
    if (oc === STAR) {
      // outer's * matches any run of inner's symbols, wildcards included.
      let any = 0;
      for (let j = 0; j <= m; j++) {
        if (prev[j]) any = 1;
        cur[j] = any;
      }
    } else {
      for (let j = 1; j <= m; j++) {
        const ic = inner.charCodeAt(j - 1);
        const ok = ic !== STAR && (oc === QMARK || oc === ic);
        cur[j] = ok ? prev[j - 1]! : 0;
      }
    }
    prev = cur;
  }
  return prev[m] === 1;
}

/**
 * True when the pattern contains a wildcard.
 *
 * @example
 * hasWildcard("arn:aws:s3:::b/*"); // true
 */
export function hasWildcard(pattern: string): boolean {
  return pattern.includes("*") || pattern.includes("?");
}

/**
 * Work bound for pattern reasoning over one evaluation: a hostile policy of long `*` patterns
 * would otherwise cost |a|·|b| per pair for every pair (and tens of thousands of wildcard
 * aws:PrincipalAccount values, tested against each of tens of thousands of named accounts, as much). 20 million table cells take well under a
 * second and are far above any real policy (AWS caps a bucket policy at 20 KB).
 */
export const MAX_PATTERN_WORK = 20_000_000;

export interface PatternReasoner {
  intersect(a: string, b: string): boolean;
  covers(outer: string, inner: string): boolean;
  /** Counts other pattern work (condition values matched against a caller's value) against the same bound. */
  charge(cells: number): void;
}

/**
 * A memoised, work-bounded front for globsIntersect / globCovers. `onExhausted` is called (and
 * must throw) when the work bound is reached.
 *
 * @example
 * const r = createPatternReasoner(() => { throw new Error("too complex"); });
 * r.covers("a*", "ab"); // true
 */
export function createPatternReasoner(onExhausted: () => never): PatternReasoner {
  const memo = new Map<string, boolean>();
  let work = 0;
  const run = (kind: string, a: string, b: string, fn: (x: string, y: string) => boolean): boolean => {
    const key = `${kind}\u0000${a}\u0000${b}`;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    work += (a.length + 1) * (b.length + 1);
    if (work > MAX_PATTERN_WORK) onExhausted();
    const result = fn(a, b);
    memo.set(key, result);
    return result;
  };
  return {
    intersect: (a, b) => run("i", a, b, globsIntersect),
    covers: (outer, inner) => run("c", outer, inner, globCovers),
    charge: (cells) => {
      work += cells;
      if (work > MAX_PATTERN_WORK) onExhausted();
    },
  };
}
