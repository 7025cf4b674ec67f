// Loads an sshd_config with its Includes into a flat list of directives tagged with their Match block,
// checking what sshd checks at load time: known keywords, values of the options we evaluate, Match
// syntax, keywords allowed inside Match. Sizes, line lengths, include depth and count are bounded.
import { userInfo } from "node:os";
import { posix } from "node:path";
import { authMethodsLineProblem, authMethodsSatisfiable, type MethodsState } from "./auth-methods.ts";
import { excerpt, EXCERPT_LENGTH } from "../../lib/terminal.ts";
import { SshConfigError, SshConfigUnreadableError } from "./errors.ts";
import { ALIASES, DEFAULTS, EVALUATED, keywordScope, lineSetsOption } from "./keywords.ts";
import { fileSystemSource, GLOB_DIRECTORY_BUDGET, MAX_FILE_BYTES } from "./file-system-source.ts";
import { configLines, quoteExcerpt, splitLine } from "./lexer.ts";
import { criterionPort, describeCriteria, parseCriteria, type Criterion } from "./match.ts";
import { systemServices, type ServiceLookup } from "./services.ts";
import { assembleAlgorithmList, parseValue, type PathContext } from "./values.ts";

export interface Directive {
  /** As written in the file. */
  keyword: string;
  /** Lowercase, aliases resolved: the name sshd -T prints. */
  name: string;
  args: string[];
  /** For evaluated options: the value as sshd -T prints it (algorithm lists still unassembled). */
  value: string | undefined;
  file: string;
  line: number;
  /** Index into SshConfig.blocks, or -1 for the global part. */
  block: number;
  /**
   * The Include lines this line was read through, outermost first; absent in the top file. sshd reads an
   * included file where its Include stands, so a line above that Include comes before every line of the file.
   */
  includedAt?: readonly ConfigLine[];
}

/** A line of the configuration: file as shown, 1-based line number. */
export interface ConfigLine {
  file: string;
  line: number;
}

export interface MatchBlock {
  criteria: Criterion[];
  /** "Address 10.0.0.0/8", nested blocks (Match inside an Include inside Match) joined with " and ". */
  label: string;
  file: string;
  line: number;
  /** The block the Include that contains this Match sits in, or -1. Both must match. */
  parent: number;
}

export interface SshConfig {
  directives: Directive[];
  blocks: MatchBlock[];
  files: string[];
}

export interface ReadOptions {
  /** How a directory reads: refused (the default), or as empty text, as sshd reads a directory an Include names. */
  directory?: "refuse" | "empty";
}

/** Directory reads left to the Include globs of one load; shared by all its patterns. */
export interface GlobBudget {
  directories: number;
}

export interface GlobOptions {
  budget?: GlobBudget;
}

/**
 * Where files come from: the real file system by default, a map in tests. Paths are in the source's own
 * spelling: the file system source works on byte strings, as the configuration text is read.
 */
export interface ConfigSource {
  read(path: string, options?: ReadOptions): string;
  /** Absolute paths matching a glob(3) pattern, sorted as glob(3) sorts them (bytes, C locale). */
  glob(pattern: string, options?: GlobOptions): string[];
  /** The path with symbolic links resolved (realpath(3)); without it, paths are taken as they are. */
  realpath?(path: string): string;
  /** A path the caller gave (--config, --include-base, the working directory) in the source's spelling; default as is. */
  encodePath?(path: string): string;
  /** A path of the source as text for messages and results; default as is. */
  decodePath?(path: string): string;
}

export interface LoadOptions {
  /** Directory relative Include paths resolve against (sshd's SSHDIR). Default /etc/ssh. */
  includeBase?: string;
  source?: ConfigSource;
  /** Bounds against hostile input. */
  maxBytes?: number;
  maxLineLength?: number;
  maxFiles?: number;
  /** Where relative file options (Banner) resolve, as sshd -T run here would: default process.cwd(). */
  cwd?: string;
  /** Home of the user sshd runs as, for "~" in file options: default that of the current user. */
  home?: string;
  /** Ports by service name, for "Port ssh" and "Match LocalPort ssh" (sshd's getservbyname): default /etc/services. */
  services?: ServiceLookup;
}

/** sshd's SERVCONF_MAX_DEPTH: deeper Include chains are refused (also stops include loops). */
export const MAX_INCLUDE_DEPTH = 16;
const DEFAULT_MAX_BYTES = MAX_FILE_BYTES;
const DEFAULT_MAX_LINE = 16_384;
const DEFAULT_MAX_FILES = 256;

/** sshd's check of a Port line (servconf.c sPort, a2port: strtonum, else a service name; 0 refused), worded as sshd words it. */
function portProblem(args: readonly string[], services: ServiceLookup): string | null {
  const arg = args[0];
  if (arg === undefined || arg === "") return "missing port number.";
  const port = criterionPort(arg, services);
  if (port === null || port < 1) return "Badly formatted port number.";
  if (args.length > 1) return "keyword Port extra arguments at end of line";
  return null;
}

/** sshd's limit on Subsystem lines (servconf.h MAX_SUBSYSTEMS). */
const MAX_SUBSYSTEMS = 256;

/**
 * sshd's checks of a Subsystem line (servconf.c sSubsystem), worded as sshd words them. Subsystem is not
 * evaluated (sshd keeps every one), but a repeated name among the lines active at load stops sshd.
 */
function subsystemProblem(args: readonly string[], defined: Set<string>, active: boolean): string | null {
  if (defined.size >= MAX_SUBSYSTEMS) return "too many subsystems defined.";
  const name = args[0];
  if (name === undefined || name === "") return "Subsystem missing argument.";
  if (!active) return null;
  // Names compare exactly (strcmp): "sftp" and "SFTP" are two subsystems.
  if (defined.has(name)) return `Subsystem '${excerpt(name)}' already defined.`;
  if (args[1] === undefined || args[1] === "") return "Missing subsystem command.";
  defined.add(name);
  return null;
}

interface State {
  source: ConfigSource;
  /** The configuration under review, in the source's spelling. */
  top: string;
  /** Its directory, lexical and with links resolved: the text of files in them may be quoted in errors. */
  reviewDirs: string[];
  /** sshd's SSHDIR and working directory, in the source's spelling. */
  base: string;
  cwd: string;
  /** Glob results per pattern for this load: sshd globs a repeated Include pattern once too. */
  globs: Map<string, string[]>;
  budget: GlobBudget;
  maxBytes: number;
  maxLine: number;
  maxFiles: number;
  paths: PathContext;
  services: ServiceLookup;
  config: SshConfig;
  /** Subsystem names defined so far by lines active at load. */
  subsystems: Set<string>;
  /** AuthenticationMethods lists stored so far by lines active at load. */
  methods: MethodsState;
}

/** True when the block and all its parents are "Match All": active when sshd loads the file. */
function activeAtLoad(config: SshConfig, block: number): boolean {
  for (let b = block; b >= 0; ) {
    const blk = config.blocks[b] as MatchBlock;
    if (blk.criteria[0]?.attribute !== "all") return false;
    b = blk.parent;
  }
  return true;
}

function within(path: string, dir: string): boolean {
  return dir === "/" ? path.startsWith("/") : path === dir || path.startsWith(`${dir}/`);
}

/**
 * True when an error may quote the text of `file`: the configuration under review, or a file whose real path
 * is in its directory. Any other file reached by an Include (`Include /etc/shadow`, a link in the reviewed
 * tree pointing out of it) is any file this process can read, and its first line may be a secret.
 */
function quotable(state: State, file: string): boolean {
  if (file === state.top) return true;
  // realpath(3) before any lexical normalising: "link/.." is the parent of the link's target, not of the link.
  const real = posix.resolve(state.source.realpath?.(file) ?? file);
  return state.reviewDirs.some((dir) => within(real, dir));
}

/** A run of a message long enough to be quoted input rather than sshd's wording. */
const LONG_RUN = new RegExp(`[^\\s'"…]{${EXCERPT_LENGTH + 1},}`, "g");

/** Messages worded elsewhere (values, Match, AuthenticationMethods) quote whole values: shorten any long one. */
function bounded(message: string, tokens: readonly string[]): string {
  let out = message;
  for (const token of [...tokens].sort((a, b) => b.length - a.length)) {
    if (token.length > EXCERPT_LENGTH) out = out.split(token).join(excerpt(token));
  }
  // What is left long is still quoted input (a Match token split otherwise than the arguments); an excerpt
  // made above ends at its "…" and is not cut again.
  out = out.replace(LONG_RUN, (run) => excerpt(run));
  return out.length > 4 * EXCERPT_LENGTH ? excerpt(out, 4 * EXCERPT_LENGTH) : out;
}

/** Where an Include argument points (servconf.c): absolute or "~…" as written, else below SSHDIR. */
function includePattern(state: State, arg: string): string {
  if (arg.startsWith("/")) return arg;
  // sshd globs without GLOB_TILDE: "~/x" is a relative path, read from sshd's working directory.
  if (arg.startsWith("~")) return `${state.cwd}/${arg}`;
  // Joined as text: the glob resolves "..", as the kernel does, after any symbolic link before it.
  return `${state.base}/${arg}`;
}

function included(state: State, pattern: string): string[] {
  let paths = state.globs.get(pattern);
  if (paths === undefined) {
    paths = state.source.glob(pattern, { budget: state.budget });
    state.globs.set(pattern, paths);
  }
  return paths;
}

/** `path` in the source's spelling, `file` as it is shown. */
function parseFile(state: State, path: string, file: string, text: string, outerBlock: number, via: readonly ConfigLine[]): void {
  const depth = via.length;
  const { config } = state;
  if (text.length > state.maxBytes) throw new SshConfigError(file, 0, `file is larger than ${state.maxBytes} bytes`);
  config.files.push(file);
  let block = outerBlock;
  const lines = configLines(text);
  // An error quotes at most a short, escaped excerpt of a token, and nothing at all from a file outside the
  // reviewed configuration's directory (see quotable).
  const reviewDir = state.source.decodePath?.(state.reviewDirs[0] as string) ?? state.reviewDirs[0];
  const withheld = quotable(state, path) ? null : `[text not shown: the file is outside ${reviewDir}, the directory of the configuration under review]`;
  const quote = (token: string): string => withheld ?? quoteExcerpt(token);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i] as string;
    const fail = (message: string): never => {
      throw new SshConfigError(file, lineNo, message);
    };
    if (raw.length > state.maxLine) fail(`line is longer than ${state.maxLine} characters`);
    const split = splitLine(raw, { quote });
    if (split.kind === "empty") continue;
    if (split.kind === "error") fail(split.message);
    if (split.kind !== "directive") continue;
    const lower = split.keyword.toLowerCase();
    const scope = keywordScope(lower);
    if (scope === undefined) fail(`Bad configuration option: ${withheld ?? excerpt(split.keyword)}`);
    // From here on the keyword is one sshd knows: safe to name. Values are not (see quotable).
    const refuse = (problem: string): never =>
      fail(withheld === null ? bounded(problem, [split.keyword, ...split.args]) : `${excerpt(split.keyword)}: a value sshd refuses ${withheld}`);
    if (scope === "global" && block >= 0 && !activeAtLoad(config, block)) {
      fail(`Directive '${excerpt(split.keyword)}' is not allowed within a Match block`);
    }
    if (lower === "match") {
      const criteria = parseCriteria(split.rest, { services: state.services });
      if (typeof criteria === "string") refuse(`Bad Match condition: ${criteria}`);
      const crit = criteria as Criterion[];
      const parentLabel = outerBlock >= 0 ? `${(config.blocks[outerBlock] as MatchBlock).label} and ` : "";
      config.blocks.push({ criteria: crit, label: parentLabel + describeCriteria(crit), file, line: lineNo, parent: outerBlock });
      block = config.blocks.length - 1;
      continue;
    }
    if (lower === "include") {
      if (split.args.length === 0) fail("Include missing filename argument");
      if (depth + 1 > MAX_INCLUDE_DEPTH) fail(`Too many recursive configuration includes (more than ${MAX_INCLUDE_DEPTH})`);
      const through = [...via, { file, line: lineNo }];
      for (const arg of split.args) {
        // Relative Include paths are relative to /etc/ssh, not to the including file (sshd_config(5)).
        for (const next of included(state, includePattern(state, arg))) {
          if (config.files.length >= state.maxFiles) fail(`more than ${state.maxFiles} configuration files included`);
          const text = state.source.read(next, { directory: "empty" });
          parseFile(state, next, state.source.decodePath?.(next) ?? next, text, block, through);
        }
      }
      continue;
    }
    const name = ALIASES[lower] ?? lower;
    if (name === "authenticationmethods") {
      const problem = authMethodsLineProblem(split.args, state.methods, block < 0 || activeAtLoad(config, block));
      if (problem !== null) refuse(problem);
    }
    const kind = EVALUATED[name];
    let value: string | undefined;
    if (kind !== undefined) {
      const parsed = parseValue(split.keyword, kind, split.args, { paths: state.paths, text: split.rest });
      if ("error" in parsed) refuse(parsed.error);
      else value = parsed.value;
    } else if (name === "port") {
      // Port is not evaluated (sshd listens on every Port line, no first-wins), but a bad one stops sshd.
      const problem = portProblem(split.args, state.services);
      if (problem !== null) fail(problem);
    } else if (name === "subsystem") {
      const problem = subsystemProblem(split.args, state.subsystems, block < 0 || activeAtLoad(config, block));
      if (problem !== null) refuse(problem);
    }
    config.directives.push({ keyword: split.keyword, name, args: split.args, value, file, line: lineNo, block, ...(depth > 0 ? { includedAt: via } : {}) });
  }
}

/** The value sshd holds for `name` once the file is loaded: the first line active at load, or the default. */
function loadTimeDirective(config: SshConfig, name: string): Directive | undefined {
  return config.directives.find((d) => d.name === name && d.value !== undefined && (d.block < 0 || activeAtLoad(config, d.block)));
}

/**
 * sshd's start-up check of AuthenticationMethods against the methods enabled at load time (sshd.c):
 * "AuthenticationMethods publickey" with "PubkeyAuthentication no" stops sshd. sshd names no line;
 * we name the AuthenticationMethods line that set the value.
 */
function checkMethodsSatisfiable(config: SshConfig): void {
  const methods = loadTimeDirective(config, "authenticationmethods");
  if (methods?.value === undefined) return;
  const enabled = (keyword: string): boolean => (loadTimeDirective(config, keyword)?.value ?? DEFAULTS[keyword]) === "yes";
  if (!authMethodsSatisfiable(methods.value, enabled)) {
    throw new SshConfigError(methods.file, methods.line, "AuthenticationMethods cannot be satisfied by enabled authentication methods");
  }
}

/** The lines sshd's load pass uses, by option (the global part and "Match All" blocks; see lineSetsOption). */
function loadTimeDirectives(config: SshConfig): Map<string, Directive> {
  const used = new Map<string, Directive>();
  for (const d of config.directives) {
    if (d.value !== undefined && (d.block < 0 || activeAtLoad(config, d.block)) && lineSetsOption(d.name, used)) used.set(d.name, d);
  }
  return used;
}

/**
 * sshd's start-up check (sshd.c) that a command run to look up keys or principals has a user to run it as:
 * "AuthorizedKeysCommand set without AuthorizedKeysCommandUser" stops sshd. Only the values at load count (a
 * command in a Match block without a user is skipped at login). sshd names no line; we name the command's.
 */
function checkCommandUsers(config: SshConfig): void {
  const used = loadTimeDirectives(config);
  for (const [command, keyword] of [["authorizedkeyscommand", "AuthorizedKeysCommand"], ["authorizedprincipalscommand", "AuthorizedPrincipalsCommand"]] as const) {
    const d = used.get(command);
    if (d?.value === undefined || d.value.toLowerCase() === "none" || used.has(`${command}user`)) continue;
    throw new SshConfigError(d.file, d.line, `${keyword} set without ${keyword}User`);
  }
}

/**
 * sshd's start-up assembly of the algorithm lists set at load time (assemble_algorithms): a list whose names
 * after an empty entry ("aes128-ctr,,…", never validated per line) leave nothing, or hold a "!", stops sshd.
 */
function checkAlgorithmsAssemble(config: SshConfig): void {
  for (const [name, kind] of Object.entries(EVALUATED)) {
    const d = loadTimeDirective(config, name);
    if (kind.type !== "algorithms" || d?.value === undefined) continue;
    if (assembleAlgorithmList(d.value, DEFAULTS[name] ?? "", kind.family) === null) {
      throw new SshConfigError(d.file, d.line, `assemble_algorithms: ${name}: invalid argument`);
    }
  }
}

/**
 * Parses configuration text as if it were the file `name` (Includes are read through `source`).
 *
 * @example
 * const config = parseSshdConfig("PermitRootLogin no\n", "/etc/ssh/sshd_config");
 */
export function parseSshdConfig(text: string, name: string, options: LoadOptions = {}): SshConfig {
  const source = options.source ?? fileSystemSource;
  // Absolute, but not normalised (the glob resolves ".." on the file system): Include patterns are globbed from "/".
  const encode = (path: string): string => {
    const encoded = source.encodePath?.(path) ?? path;
    return encoded.startsWith("/") ? encoded : `${source.encodePath?.(process.cwd()) ?? process.cwd()}/${encoded}`;
  };
  const topPath = source.encodePath?.(name) ?? name;
  const top = posix.resolve(encode(name));
  const reviewDirs = [...new Set([posix.dirname(top), posix.dirname(source.realpath?.(top) ?? top)])];
  const cwd = options.cwd ?? process.cwd();
  const state: State = {
    source,
    top: topPath,
    reviewDirs,
    base: encode(options.includeBase ?? "/etc/ssh"),
    cwd: encode(cwd),
    globs: new Map(),
    budget: { directories: GLOB_DIRECTORY_BUDGET },
    maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
    maxLine: options.maxLineLength ?? DEFAULT_MAX_LINE,
    maxFiles: options.maxFiles ?? DEFAULT_MAX_FILES,
    paths: { cwd, home: options.home ?? userInfo().homedir },
    services: options.services ?? systemServices(),
    config: { directives: [], blocks: [], files: [] },
    subsystems: new Set(),
    methods: { count: 0 },
  };
  parseFile(state, topPath, name, text, -1, []);
  checkMethodsSatisfiable(state.config);
  checkCommandUsers(state.config);
  checkAlgorithmsAssemble(state.config);
  return state.config;
}

/**
 * Reads and parses an sshd_config file and everything it includes.
 *
 * @example
 * const config = loadSshdConfig("/etc/ssh/sshd_config");
 */
export function loadSshdConfig(path: string, options: LoadOptions = {}): SshConfig {
  const source = options.source ?? fileSystemSource;
  return parseSshdConfig(source.read(source.encodePath?.(path) ?? path), path, { ...options, source });
}
