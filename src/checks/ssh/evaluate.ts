// The effective configuration, as `sshd -T` (optionally `-C user=..,host=..,addr=..`) prints it:
// first value wins (FingerprintHash excepted: the last); at load time only the global part and "Match All" blocks apply; for a connection,
// the first value from a matching Match block overrides the load-time value (servconf.c
// parse_server_match_config + copy_set_server_options), for keywords allowed in Match.
import { authMethodsLineProblem } from "./auth-methods.ts";
import { SshConfigError } from "./errors.ts";
import { DEFAULTS, EVALUATED, keywordScope } from "./keywords.ts";
import { criterionHolds, type MatchContext } from "./match.ts";
import type { Directive, MatchBlock, SshConfig } from "./parser.ts";
import { assembleAlgorithmList } from "./values.ts";

/** Where an effective value came from: a file and line (in Match block `block`, named `match`), or the compiled-in default. */
export type Source = { file: string; line: number; match?: string; block?: number } | { default: true };

export interface Evaluation {
  /** Lowercase keyword → value exactly as sshd -T prints it. */
  effective: Record<string, string>;
  sources: Record<string, Source>;
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
    const kind = EVALUATED[d.name];
    const lastWins = kind?.type === "choice" && kind.lastWins === true;
    if ((d.block < 0 || loadActive[d.block]) && (lastWins || !loadTime.has(d.name))) loadTime.set(d.name, d);
    if (d.block >= 0 && connActive[d.block] && !connection.has(d.name) && keywordScope(d.name) === "all") {
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
    } else effective[name] = d.value;
    sources[name] = d.block >= 0 ? { file: d.file, line: d.line, match: (blocks[d.block] as MatchBlock).label, block: d.block } : { file: d.file, line: d.line };
  }
  return { effective, sources };
}
