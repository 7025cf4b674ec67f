// The effective configuration, as `sshd -T` (optionally `-C user=..,host=..,addr=..`) prints it:
// first value wins (FingerprintHash excepted: the last); at load time only the global part and "Match All" blocks apply; for a connection,
// the first value from a matching Match block overrides the load-time value (servconf.c
// parse_server_match_config + copy_set_server_options), for keywords allowed in Match.
import { authMethodsLineProblem } from "./auth-methods.ts";
import { SshConfigError } from "./errors.ts";
import { DEFAULTS, EVALUATED, keywordScope, lineSetsOption, SET_WHILE_UNSET } from "./keywords.ts";
import { criterionHolds, type MatchContext } from "./match.ts";
import type { ConfigLine, Directive, MatchBlock, SshConfig } from "./parser.ts";
import { assembleAlgorithmList } from "./values.ts";

/**
 * Where an effective value came from: a file and line, or the compiled-in default. A line in a Match block
 * carries the block (index `block`, criteria `match`, its own Match line at matchFile:matchLine); a line of
 * an included file carries the Include lines it was read through; `keyword` is as written on the line.
 */
export type Source =
  | { file: string; line: number; keyword?: string; match?: string; block?: number; matchFile?: string; matchLine?: number; includedAt?: readonly ConfigLine[] }
  | { default: true };

/**
 * Why sshd does not use a line that sets an option: an earlier line set it first (sshd keeps the first
 * value), a later one did (FingerprintHash: the last), or a Match block that applies sets it for the connection.
 */
export type IgnoredReason = "first-value-wins" | "last-value-wins" | "match-overrides";

/** A line that sets an option, in the part of the file that applies, to another value than the one sshd uses. */
export interface IgnoredLine {
  file: string;
  line: number;
  /** As written on the line (an alias such as ChallengeResponseAuthentication stays as it is). */
  keyword: string;
  /** As sshd -T would print it (algorithm lists unassembled). */
  value: string;
  /** The criteria of its Match block, if in one. */
  match?: string;
  reason: IgnoredReason;
}

export interface Evaluation {
  /** Lowercase keyword → value exactly as sshd -T prints it. */
  effective: Record<string, string>;
  sources: Record<string, Source>;
  /**
   * Lowercase keyword → the lines sshd ignores for it, in file order; only keywords that have some. The
   * line an operator added to fix a finding is often one of them (an Include read earlier set it first).
   */
  ignored: Record<string, IgnoredLine[]>;
}

export interface EvaluateOptions {
  match?: MatchContext;
  /**
   * Evaluate as if this block (index into config.blocks) matched, with the blocks its Include sits in
   * (a connection matching it matches those too), and no other non-All block did.
   */
  assumeBlock?: number;
  /** As assumeBlock, for several blocks one connection matches at once (sibling blocks combine: first value per keyword in file order). */
  assumeBlocks?: readonly number[];
}

/** The block at `index` and every block whose Include contains it (a nested block holds only if they all do). */
function withAncestors(blocks: readonly MatchBlock[], index: number): Set<number> {
  const out = new Set<number>();
  for (let b = index; b >= 0; b = (blocks[b] as MatchBlock).parent) out.add(b);
  return out;
}

/**
 * Whether block `index` applies: it and every enclosing block hold for `ctx`, where the blocks in
 * `assumed` hold by assumption. A connection that matches a nested block ("Match User root", then an
 * Include holding "Match Address 203.0.113.0/24") has matched each block around it too, so assuming
 * the inner one means assuming its ancestors.
 */
function blockHolds(blocks: readonly MatchBlock[], index: number, ctx: MatchContext | undefined, assumed: ReadonlySet<number>): boolean {
  for (let b = index; b >= 0; ) {
    const blk = blocks[b] as MatchBlock;
    if (!assumed.has(b) && !blk.criteria.every((c) => criterionHolds(c, ctx))) return false;
    b = blk.parent;
  }
  return true;
}

/**
 * Computes the effective options for a configuration.
 *
 * @example
 * const { effective } = evaluate(loadSshdConfig("/etc/ssh/sshd_config"), { match: { user: "root", host: "h", addr: "10.0.0.1" } });
 * effective["permitrootlogin"]; // "no"
 */
export function evaluate(config: SshConfig, options: EvaluateOptions = {}): Evaluation {
  const { blocks } = config;
  const loadTime = new Map<string, Directive>();
  const connection = new Map<string, Directive>();
  // sshd -T always re-evaluates Match blocks for a connection; without -C that connection is blank,
  // so only "Match All" blocks override the load-time values (sshd.c test mode).
  const ctx = options.match ?? {};
  const hypothetical = options.assumeBlock !== undefined || options.assumeBlocks !== undefined;
  const assumed = new Set<number>();
  for (const b of [...(options.assumeBlocks ?? []), ...(options.assumeBlock === undefined ? [] : [options.assumeBlock])]) {
    for (const a of withAncestors(blocks, b)) assumed.add(a);
  }
  const loadActive = blocks.map((_, i) => blockHolds(blocks, i, undefined, new Set()));
  const connActive = blocks.map((_, i) => blockHolds(blocks, i, ctx, assumed));
  // sshd re-reads the file for the connection with a fresh option set, in which only the matching
  // blocks are active; an "any" after a list stored in that pass stops it (servconf.c), e.g. two
  // matching blocks that both set AuthenticationMethods, the second to "any". A hypothetical
  // evaluation (assumeBlock, assumeBlocks) reports findings and is not such a pass.
  if (!hypothetical) {
    const methods = { count: 0 };
    for (const d of config.directives) {
      if (d.name !== "authenticationmethods") continue;
      const problem = authMethodsLineProblem(d.args, methods, d.block >= 0 && connActive[d.block] === true);
      if (problem !== null) throw new SshConfigError(d.file, d.line, problem);
    }
  }
  for (const d of config.directives) {
    if (d.value === undefined) continue;
    if ((d.block < 0 || loadActive[d.block]) && lineSetsOption(d.name, loadTime)) loadTime.set(d.name, d);
    if (d.block >= 0 && connActive[d.block] && keywordScope(d.name) === "all" && lineSetsOption(d.name, connection)) {
      connection.set(d.name, d);
    }
  }
  const effective: Record<string, string> = {};
  const sources: Record<string, Source> = {};
  for (const name of Object.keys(EVALUATED)) {
    const kind = EVALUATED[name];
    const d = connection.get(name) ?? loadTime.get(name);
    const def = DEFAULTS[name] as string;
    if (d === undefined || d.value === undefined) {
      effective[name] = def;
      sources[name] = { default: true };
      continue;
    }
    if (kind?.type === "algorithms") {
      const list = assembleAlgorithmList(d.value, def, kind.family);
      // A list from a matching Match block is assembled for the connection (copy_set_server_options):
      // one that leaves nothing ("RSA" names no algorithm) ends it, as the load-time check ends sshd.
      if (list === null && !hypothetical && connection.get(name) === d) {
        throw new SshConfigError(d.file, d.line, `assemble_algorithms: ${name}: invalid argument`);
      }
      effective[name] = list?.join(",") ?? def;
    } else if (kind?.type === "userfile" && connection.get(name) !== d && d.value.toLowerCase() === "none") {
      // fill_default_server_options() clears "none" in any case at load; the Match pass copies its value as written.
      effective[name] = "none";
    } else effective[name] = d.value;
    sources[name] = lineSource(config, d);
  }
  return { effective, sources, ignored: ignoredLines(config, { loadActive, connActive, loadTime, connection }) };
}

/** The Source for a line: where it is, the Match block around it and the Includes it was read through. */
export function lineSource(config: SshConfig, d: Directive): Source {
  const blk = d.block >= 0 ? config.blocks[d.block] : undefined;
  return {
    file: d.file,
    line: d.line,
    keyword: d.keyword,
    ...(blk !== undefined ? { match: blk.label, block: d.block, matchFile: blk.file, matchLine: blk.line } : {}),
    ...(d.includedAt !== undefined ? { includedAt: d.includedAt } : {}),
  };
}

/** Whether line `a` comes after line `b` in the order sshd reads them (the parser's directive order). */
function comesAfter(config: SshConfig, a: Directive, b: Directive): boolean {
  return config.directives.indexOf(a) > config.directives.indexOf(b);
}

/**
 * The lines that set an option in the part of the file that applies (the global part and active blocks) to
 * another value than the line sshd uses. One pass over the directives, and nothing allocated for an option
 * set once: this runs for every combination of Match blocks the findings weigh.
 */
function ignoredLines(
  config: SshConfig,
  pass: { loadActive: readonly boolean[]; connActive: readonly boolean[]; loadTime: ReadonlyMap<string, Directive>; connection: ReadonlyMap<string, Directive> },
): Record<string, IgnoredLine[]> {
  const out: Record<string, IgnoredLine[]> = {};
  for (const d of config.directives) {
    if (d.value === undefined) continue;
    const fromMatch = pass.connection.get(d.name);
    const used = fromMatch ?? pass.loadTime.get(d.name);
    if (used === undefined || used === d || used.value === d.value) continue;
    const inConnection = d.block >= 0 && pass.connActive[d.block] === true && keywordScope(d.name) === "all";
    const atLoad = d.block < 0 || pass.loadActive[d.block] === true;
    if (!inConnection && !atLoad) continue;
    const kind = EVALUATED[d.name];
    // A load-time line loses to a matching block's line whatever their order; lines of the same pass, to the first
    // (or last: FingerprintHash, and a SET_WHILE_UNSET option whose later line sshd used).
    const later = SET_WHILE_UNSET[d.name] !== undefined && comesAfter(config, used, d);
    const reason: IgnoredReason =
      fromMatch !== undefined && !inConnection ? "match-overrides" : (kind?.type === "choice" && kind.lastWins === true) || later ? "last-value-wins" : "first-value-wins";
    const ignored: IgnoredLine = { file: d.file, line: d.line, keyword: d.keyword, value: d.value, reason };
    if (d.block >= 0) ignored.match = (config.blocks[d.block] as MatchBlock).label;
    (out[d.name] ??= []).push(ignored);
  }
  return out;
}
