// Parsing the values of the options we evaluate into the text `sshd -T` prints, and assembling
// algorithm lists with "+" (append), "-" (remove, wildcards allowed) and "^" (prepend) against the
// defaults (OpenSSH kex.c kex_assemble_names).
import { authMethodsLineProblem } from "./auth-methods.ts";
import { KEY_SHORT_NAMES, SUPPORTED, type AlgorithmFamily, type ValueKind } from "./keywords.ts";
import { strtoll, strtonum } from "./numbers.ts";
import { matchPattern, matchPatternList } from "./patterns.ts";

const INT_MAX = 2_147_483_647;
const LOG_LEVELS: Readonly<Record<string, string>> = {
  // log.c names SYSLOG_LEVEL_QUIET "SILENT" first, and sshd -T prints the first name.
  quiet: "SILENT", silent: "SILENT", fatal: "FATAL", error: "ERROR", info: "INFO", verbose: "VERBOSE",
  // sshd -T prints DEBUG1 as "DEBUG", the first name of that level in log.c's table.
  debug: "DEBUG", debug1: "DEBUG", debug2: "DEBUG2", debug3: "DEBUG3",
};
const FAMILY_NAME = { cipher: "cipher", mac: "mac", kex: "kex algorithms" } as const;

/**
 * Whether one name of a key type list passes sshd's line check (sshkey.c sshkey_names_valid2 with
 * wildcards allowed): an algorithm of the build, a plain key type's short name in any case ("RSA"), or
 * a pattern, "!" allowed, that some algorithm matches. A CA list naming a certificate type passes here
 * too (checked against sshd -T 9.2p1); its assembly then finds nothing and stops sshd.
 */
function keyNameValid(name: string): boolean {
  if (SUPPORTED.key.includes(name) || KEY_SHORT_NAMES.includes(name.toLowerCase())) return true;
  const pattern = name.startsWith("!") ? name.slice(1) : name;
  return SUPPORTED.key.some((algorithm) => matchPattern(algorithm, pattern));
}

const TIME_UNITS: Readonly<Record<string, number>> = { s: 1, S: 1, m: 60, M: 60, h: 3600, H: 3600, d: 86_400, D: 86_400, w: 604_800, W: 604_800 };

/**
 * A time as sshd's convtime() (misc.c): "90", "1m30s", "2h" → seconds; null when invalid. Each part is read by
 * strtol, so it may start with blanks and a sign ("1m+5" is 65, "-0" is 0) and have any number of leading zeros;
 * a negative part, or a total past INT_MAX, is refused. One pass over the text (a pattern such as (\d+[smhdw]?)+
 * backtracks exponentially on a long run of digits followed by a bad character).
 */
export function parseTime(text: string): number | null {
  if (text === "") return null;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    const part = strtoll(text, pos);
    if (part === null || part.value < 0) return null;
    const unit = text[part.end];
    const multiplier = unit === undefined ? 1 : Object.hasOwn(TIME_UNITS, unit) ? (TIME_UNITS[unit] as number) : null;
    if (multiplier === null || part.value > Math.floor(INT_MAX / multiplier)) return null;
    total += part.value * multiplier;
    // convtime refuses anything past INT_MAX rather than wrapping.
    if (total > INT_MAX) return null;
    pos = unit === undefined ? part.end : part.end + 1;
  }
  return total;
}

/** What sshd's derelativise_path() needs: the directory sshd starts in, and the current user's home. */
export interface PathContext {
  cwd: string;
  home: string;
}

/**
 * A file option as sshd stores it (misc.c derelativise_path, tilde_expand): "none" in any case is
 * "none"; "~" and "~/x" expand to the home directory of the user running sshd; a relative path is
 * appended to the working directory without normalising. "~user/x" needs the password database and is
 * kept as written (sshd itself stops when that user does not exist).
 *
 * @example
 * derelativise("banner.txt", { cwd: "/", home: "/root" }); // "//banner.txt"
 */
export function derelativise(path: string, ctx: PathContext): string {
  if (path.toLowerCase() === "none") return "none";
  const expanded = tildeExpand(path, ctx);
  // "~user/x" left as written stays so (not made relative to the working directory).
  if (expanded.startsWith("~")) return expanded;
  return expanded.startsWith("/") ? expanded : `${ctx.cwd}/${expanded}`;
}

/**
 * A path as misc.c tilde_expand_filename() leaves it: "~" and "~/x" are the home directory of the user running
 * sshd ("~" alone gets a trailing slash); "~user…" needs the password database and is kept as written (sshd
 * itself stops when that user does not exist); anything else is unchanged.
 *
 * @example
 * tildeExpand("~/keys", { cwd: "/", home: "/root" }); // "/root/keys"
 */
export function tildeExpand(path: string, ctx: PathContext): string {
  if (!path.startsWith("~")) return path;
  const slash = path.indexOf("/");
  if (slash > 1 || (slash < 0 && path.length > 1)) return path;
  const sep = ctx.home.endsWith("/") ? "" : "/";
  return `${ctx.home}${sep}${slash < 0 ? "" : path.slice(slash + 1)}`;
}

export interface ParseValueOptions {
  /** Where relative and "~" paths resolve; default cwd "/", home "/root". */
  paths?: PathContext;
  /** The arguments exactly as written on the line (what sshd stores for a command); default the arguments joined by spaces. */
  text?: string;
}

/**
 * Checks one option's arguments and returns the text sshd -T prints (for algorithm lists: the raw
 * list, assembled later), or an error message worded like sshd's. The value is undefined for a line
 * sshd reads without setting anything ("AuthorizedKeysFile # old", whose only argument is a comment).
 *
 * @example
 * parseValue("PermitRootLogin", { type: "choice", words: {...} }, ["prohibit-password"]); // { value: "without-password" }
 */
export function parseValue(keyword: string, kind: ValueKind, args: readonly string[], options: ParseValueOptions = {}): { value: string | undefined } | { error: string } {
  const paths = options.paths ?? { cwd: "/", home: "/root" };
  if (kind.type === "command") {
    // servconf.c parse_command stores the rest of the line itself, not its arguments.
    const text = options.text ?? args.join(" ");
    return text.startsWith("/") || text.toLowerCase() === "none" ? { value: text } : { error: `${keyword} must be an absolute path` };
  }
  if (kind.type === "userfiles") {
    if (args.includes("")) return { error: `keyword ${keyword} empty argument` };
    // Each file is "~"-expanded and the list kept as written, "none" included (sshd skips a "none" entry when it reads keys).
    return { value: args.length === 0 ? undefined : args.map((a) => tildeExpand(a, paths)).join(" ") };
  }
  if (kind.type === "authmethods") {
    // The one option we evaluate that takes several arguments. Checked here as a line on its own;
    // the parser repeats the check with what earlier lines stored (auth-methods.ts).
    const problem = authMethodsLineProblem(args, { count: 0 }, false);
    return problem === null ? { value: args.join(" ") } : { error: problem };
  }
  const arg = args[0];
  if (kind.type === "user" && (arg === undefined || arg === "")) return { error: `missing ${keyword} argument.` };
  if (arg === undefined || (arg === "" && kind.type !== "algorithms")) return { error: `${keyword} missing argument.` };
  if (args.length > 1) return { error: `keyword ${keyword} extra arguments at end of line` };
  switch (kind.type) {
    case "choice": {
      // Own properties only: "PermitRootLogin constructor" must not find Object.prototype.constructor.
      const word = kind.caseSensitive ? arg : arg.toLowerCase();
      const printed = Object.hasOwn(kind.words, word) ? kind.words[word] : undefined;
      return printed === undefined ? { error: `unsupported option "${arg}".` } : { value: printed };
    }
    case "int":
    {
      // atoi_err() is strtonum(0, INT_MAX): leading whitespace, a sign and any number of leading zeros are accepted, as by strtoll.
      const n = strtonum(arg, 0, INT_MAX);
      return n !== null ? { value: String(n) } : { error: `${keyword} integer value invalid.` };
    }
    case "time": {
      const secs = parseTime(arg);
      return secs === null ? { error: "invalid time value." } : { value: String(secs) };
    }
    case "loglevel": {
      const level = Object.hasOwn(LOG_LEVELS, arg.toLowerCase()) ? LOG_LEVELS[arg.toLowerCase()] : undefined;
      return level === undefined ? { error: `unsupported log level '${arg}'` } : { value: level };
    }
    case "path":
      // fill_default_server_options() clears "none" in any case (CLEAR_ON_NONE), and -T prints "none".
      return { value: arg.toLowerCase() === "none" ? "none" : arg };
    case "file":
      return { value: derelativise(arg, paths) };
    case "userfile":
      // Kept as written otherwise: a "none" from a Match block prints as written (evaluate.ts clears it at load only).
      return { value: tildeExpand(arg, paths) };
    case "user":
      return { value: arg };
    case "algorithms": {
      const body = arg.startsWith("+") || arg.startsWith("^") ? arg.slice(1) : arg;
      // "-" lists may use wildcards; every other list must name algorithms this build supports.
      if (!arg.startsWith("-")) {
        // sshd's ciphers_valid(), mac_valid() and kex_names_valid() stop at the first empty name: what
        // follows "aes128-ctr,," is not checked here, and is assembled (wildcards and all) as sshd does.
        const names = body.split(",");
        const empty = names.indexOf("");
        const checked = empty < 0 ? names : names.slice(0, empty);
        const family = kind.family;
        if (family === "key" || family === "casig") {
          // sshkey_names_valid2() refuses only an empty list outright: ",x" stops at once and passes.
          if (body === "" || checked.some((n) => !keyNameValid(n))) return { error: `Bad key types '${arg}'.` };
        } else if (body === "" || checked.some((n) => !SUPPORTED[family].includes(n))) {
          return { error: `Bad SSH2 ${FAMILY_NAME[family]} spec '${arg}'.` };
        }
      }
      return { value: arg };
    }
  }
}

/**
 * The final list as kex_assemble_names() makes it: "+x" appends to the defaults (only the names before an
 * empty one: kex_names_cat stops there), "^x" prepends, "-pat" removes matches from the defaults; a plain
 * list replaces them. Every name of the list is then a pattern over the supported algorithms (names after an
 * empty entry were never validated, so "aes128-ctr,,aes*" enables every AES cipher), in the order of that
 * list, duplicates dropped. Null when sshd refuses to start: a "!" entry, or nothing left.
 *
 * @example
 * assembleAlgorithmList("aes128-ctr,,3des-cbc", "aes128-ctr", "cipher"); // ["aes128-ctr", "3des-cbc"]
 */
export function assembleAlgorithmList(configured: string, defaults: string, family: AlgorithmFamily): string[] | null {
  const def = defaults.split(",");
  const body = configured.slice(1).split(",");
  if (configured.startsWith("-")) {
    // match_filter_denylist(): a name goes only when the list matches it positively ("-aes*,!aes128-ctr" keeps aes128-ctr).
    const kept = def.filter((name) => matchPatternList(name, configured.slice(1), false) !== 1);
    // sshd keeps the defaults when a "-" list removes everything (checked against sshd -T 9.2p1).
    return kept.length === 0 ? def : kept;
  }
  let patterns: string[];
  if (configured.startsWith("+")) {
    const empty = body.indexOf("");
    patterns = [...def, ...(empty < 0 ? body : body.slice(0, empty))];
  } else if (configured.startsWith("^")) patterns = [...body, ...def];
  else patterns = configured.split(",");
  if (patterns.some((p) => p.startsWith("!"))) return null;
  const out: string[] = [];
  for (const pattern of patterns) {
    for (const name of SUPPORTED[family]) {
      if (!out.includes(name) && matchPattern(name, pattern)) out.push(name);
    }
  }
  return out.length === 0 ? null : out;
}

/**
 * The final list for a configured value, as text (see assembleAlgorithmList); the defaults where sshd
 * would refuse the value (the parser refuses the line that set it first).
 *
 * @example
 * assembleAlgorithms("-*-cbc", "aes128-ctr,aes128-cbc", "cipher"); // "aes128-ctr"
 */
export function assembleAlgorithms(configured: string, defaults: string, family: AlgorithmFamily): string {
  return assembleAlgorithmList(configured, defaults, family)?.join(",") ?? defaults;
}
