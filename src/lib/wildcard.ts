// The `*` (any run, empty included) and `?` (one UTF-16 unit) wildcard match of a whole string, shared by the checks
// that read such patterns (OpenSSH's match_pattern, IAM policy actions and resources).

const STAR = 42; // "*"
const QMARK = 63; // "?"

/**
 * Whether `pattern` matches all of `text`. Iterative with a single backtrack point: no recursion and no regular
 * expression, so a hostile pattern such as "*a*a*a*a*b" costs O(|pattern|·|text|) at worst, never exponential time.
 *
 * @example
 * wildcardMatch("web01.example.org", "web*.example.org"); // true
 */
export function wildcardMatch(text: string, pattern: string): boolean {
  let pi = 0;
  let ti = 0;
  let starP = -1;
  let starT = 0;
  while (ti < text.length) {
    const pc = pattern.charCodeAt(pi);
    if (pi < pattern.length && (pc === QMARK || pc === text.charCodeAt(ti))) {
      pi++;
      ti++;
    } else if (pi < pattern.length && pc === STAR) {
      starP = pi++;
      starT = ti;
    } else if (starP >= 0) {
      pi = starP + 1;
      ti = ++starT;
    } else {
      return false;
    }
  }
  while (pi < pattern.length && pattern.charCodeAt(pi) === STAR) pi++;
  return pi === pattern.length;
}
