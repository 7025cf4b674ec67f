// The Match blocks one connection can match together, for a scan without --match. sshd takes each
// keyword's first value from the global part and every matching block in file order, so a finding is
// decided by which block (or none) gives each option it reads: every such choice whose blocks can
// hold at once (match-satisfiable.ts) is one combination to evaluate.
import { lineSource, type Evaluation, type Source } from "./evaluate.ts";
import { DEFAULTS, EVALUATED, keywordScope } from "./keywords.ts";
import { criteriaSatisfiable } from "./match-satisfiable.ts";
import type { Directive, MatchBlock, SshConfig } from "./parser.ts";
import { assembleAlgorithms } from "./values.ts";

export interface Combination {
  /** Blocks assumed to match, with the blocks their Include sits in, in file order. */
  blocks: number[];
  /** Per keyword, the block whose line must give its value, or -1 for the global part (or the default). */
  decidedBy: Record<string, number>;
}

export interface BlockSpace {
  /** Per block: it and the blocks around it (a nested block holds only if they all do), in file order. */
  closure: number[][];
  /** "Match All" blocks not nested in anything else: they hold for every connection and are part of the global evaluation. */
  always: ReadonlySet<number>;
  /** Whether some connection can match the set of blocks (cached by key). */
  satisfiable(blocks: readonly number[]): boolean;
}

/** Describes `config`'s blocks for combinations(). */
export function blockSpace(config: SshConfig): BlockSpace {
  const { blocks } = config;
  const closure = blocks.map((_, index) => {
    const out: number[] = [];
    for (let b = index; b >= 0; b = (blocks[b] as MatchBlock).parent) out.unshift(b);
    return out;
  });
  const always = new Set(blocks.flatMap((_, i) => (closure[i] as number[]).every((b) => (blocks[b] as MatchBlock).criteria.every((c) => c.attribute === "all")) ? [i] : []));
  const cache = new Map<string, boolean>();
  const satisfiable = (set: readonly number[]): boolean => {
    const key = set.join(",");
    let known = cache.get(key);
    if (known === undefined) {
      known = criteriaSatisfiable(set.flatMap((b) => (blocks[b] as MatchBlock).criteria));
      cache.set(key, known);
    }
    return known;
  };
  return { closure, always, satisfiable };
}

/**
 * For each of `keywords` the blocks that set it (first line of that keyword in each block), that
 * some connection can match, and that are not always active: the candidates for "decided by".
 */
export function settersOf(config: SshConfig, space: BlockSpace, keywords: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>(keywords.map((k) => [k, []]));
  const seen = new Set<string>();
  for (const d of config.directives) {
    const list = out.get(d.name);
    if (list === undefined || d.block < 0 || d.value === undefined || keywordScope(d.name) !== "all") continue;
    const key = `${d.name} ${d.block}`;
    if (space.always.has(d.block) || seen.has(key)) continue;
    seen.add(key);
    if (space.satisfiable(space.closure[d.block] as number[])) list.push(d.block);
  }
  return out;
}

/** How many choices combinations() would make: the product over keywords of (setters + 1). */
export function combinationCount(setters: ReadonlyMap<string, readonly number[]>): number {
  let n = 1;
  for (const list of setters.values()) n *= list.length + 1;
  return n;
}

/**
 * Every choice of a deciding block (or none) per keyword, with at least one block, whose blocks can
 * hold together. The caller checks that the evaluation agrees with the choice (an earlier block of
 * the combination setting the keyword decides it instead: that is another choice) and bounds the
 * count with combinationCount() first.
 *
 * @example
 * combinations(space, new Map([["permitrootlogin", [0]], ["authenticationmethods", [1]]]));
 * // [{ blocks: [0], … }, { blocks: [1], … }, { blocks: [0, 1], decidedBy: { permitrootlogin: 0, authenticationmethods: 1 } }]
 */
export function combinations(space: BlockSpace, setters: ReadonlyMap<string, readonly number[]>): Combination[] {
  const keywords = [...setters.keys()];
  const out: Combination[] = [];
  const blocksOf = (decidedBy: Record<string, number>): number[] => {
    const set = new Set<number>();
    for (const b of Object.values(decidedBy)) if (b >= 0) for (const a of space.closure[b] as number[]) set.add(a);
    return [...set].sort((a, b) => a - b);
  };
  const pick = (i: number, decidedBy: Record<string, number>): void => {
    if (i === keywords.length) {
      const blocks = blocksOf(decidedBy);
      if (blocks.length > 0) out.push({ blocks, decidedBy: { ...decidedBy } });
      return;
    }
    const keyword = keywords[i] as string;
    for (const b of [-1, ...(setters.get(keyword) ?? [])]) {
      decidedBy[keyword] = b;
      // Blocks that cannot hold together stay so with more blocks: prune here.
      if (b >= 0 && !space.satisfiable(blocksOf(decidedBy))) continue;
      pick(i + 1, decidedBy);
    }
    delete decidedBy[keyword];
  };
  pick(0, {});
  // Fewer blocks first: a finding already reported for a subset is not repeated for its supersets.
  return out.sort((a, b) => a.blocks.length - b.blocks.length);
}

/**
 * What sshd -T prints for `keyword` when a matching block's line sets it to `value`: an algorithm list assembled
 * against the compiled-in defaults ("+ssh-rsa" is the defaults and ssh-rsa, whatever the global line says, as
 * evaluate() assembles it), anything else as the line gives it.
 */
function blockValue(keyword: string, value: string): string {
  const kind = EVALUATED[keyword];
  return kind?.type === "algorithms" ? assembleAlgorithms(value, DEFAULTS[keyword] as string, kind.family) : value;
}

/**
 * The over-approximation when the choices cost too much to evaluate: each option may take any value
 * a block sets, independently of the others (the first block setting each distinct value stands
 * for it), on top of the global evaluation `base`. The worst value a connection could get is never
 * missed; whether the blocks can hold together is not checked. At most the product of distinct
 * values per option: PermitRootLogin has four, yes/no options two. A block's "none" is kept even when
 * the connection already prints "none": set in a Match block it names the CA file /none or the account
 * "none" (key-sources.ts), which the compiled-in default does not.
 */
export function approximateCombinations(config: SshConfig, base: Evaluation, setters: ReadonlyMap<string, readonly number[]>, space: BlockSpace): { combination: Combination; evaluation: Evaluation }[] {
  const choices = [...setters].map(([keyword, blocks]) => {
    const setting = new Set(blocks);
    const byValue = new Map<string, { value: string; directive: Directive }>();
    for (const d of config.directives) {
      if (d.name !== keyword || d.value === undefined || !setting.delete(d.block)) continue; // a block's first line only
      const value = blockValue(keyword, d.value);
      if ((value !== base.effective[keyword] || value.toLowerCase() === "none") && !byValue.has(value)) byValue.set(value, { value, directive: d });
    }
    return { keyword, options: [undefined, ...byValue.values()] };
  });
  const out: { combination: Combination; evaluation: Evaluation }[] = [];
  const decidedBy: Record<string, number> = {};
  const effective = { ...base.effective };
  const sources: Record<string, Source> = { ...base.sources };
  const pick = (i: number): void => {
    if (i === choices.length) {
      const set = new Set(Object.values(decidedBy).flatMap((b) => (b < 0 ? [] : (space.closure[b] as number[]))));
      if (set.size > 0) {
        // Which lines such a connection would ignore is not worked out here: only the global ones, for options no block set.
        const ignored = Object.fromEntries(Object.entries(base.ignored).filter(([k]) => (decidedBy[k] ?? -1) < 0));
        out.push({ combination: { blocks: [...set].sort((a, b) => a - b), decidedBy: { ...decidedBy } }, evaluation: { effective: { ...effective }, sources: { ...sources }, ignored } });
      }
      return;
    }
    const { keyword, options } = choices[i] as { keyword: string; options: ({ value: string; directive: Directive } | undefined)[] };
    for (const option of options) {
      decidedBy[keyword] = option === undefined ? -1 : option.directive.block;
      effective[keyword] = option?.value ?? (base.effective[keyword] as string);
      sources[keyword] = option === undefined ? (base.sources[keyword] as Source) : lineSource(config, option.directive);
      pick(i + 1);
    }
  };
  pick(0);
  return out.sort((a, b) => a.combination.blocks.length - b.combination.blocks.length);
}
