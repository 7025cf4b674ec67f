// The `*` (any run, empty included) and `?` (one UTF-16 unit) wildcard match of a whole string, shared by the checks
// that read such patterns (OpenSSH's match_pattern, IAM policy actions and resources, glob(3) segments).

const STAR = 42; // "*"
const QMARK = 63; // "?"

/**
 * The whole-text match of a pattern of `patternLength` elements against a text of `textLength` units, where element
 * `p` is a star when `isStar(p)` and otherwise matches unit `t` when `matches(p, t)`. Iterative with a single
 * backtrack point: no recursion and no regular expression, so a hostile pattern such as "*a*a*a*a*b" costs
 * O(|pattern|·|text|) at worst, never exponential time.
 *
 * @example
 * wildcardMatchBy(text.length, tokens.length, (p) => tokens[p].kind === "star", (p, t) => tokens[p].test(text[t]));
 */
export function wildcardMatchBy(textLength: number, patternLength: number, isStar: (p: number) => boolean, matches: (p: number, t: number) => boolean): boolean {
  let pi = 0;
  let ti = 0;
  let starP = -1;
  let starT = 0;
  while (ti < textLength) {
    if (pi < patternLength && !isStar(pi) && matches(pi, ti)) {
      pi++;
      ti++;
    } else if (pi < patternLength && isStar(pi)) {
      starP = pi++;
      starT = ti;
    } else if (starP >= 0) {
      pi = starP + 1;
      ti = ++starT;
    } else {
      return false;
    }
  }
  while (pi < patternLength && isStar(pi)) pi++;
  return pi === patternLength;
}

/**
 * Whether `pattern` (`*` and `?`, everything else literal) matches all of `text`.
 *
 * @example
 * wildcardMatch("web01.example.org", "web*.example.org"); // true
 */
export function wildcardMatch(text: string, pattern: string): boolean {
  return wildcardMatchBy(
    text.length, pattern.length,
    (p) => pattern.charCodeAt(p) === STAR,
    (p, t) => {
      const pc = pattern.charCodeAt(p);
      return pc === QMARK || pc === text.charCodeAt(t);
    },
  );
}
