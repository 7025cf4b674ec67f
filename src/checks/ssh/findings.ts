// Findings for an effective sshd configuration (ids are a public contract), and the findings that
// hold only for connections matching one or several Match blocks — blocks CIS-style scanners such as
// Wazuh's policy ignore.
import { SEVERITIES, type Finding, type Severity } from "../finding.ts";
import { methodAllowed, methodWithoutOtherFactor } from "./auth-methods.ts";
import { evaluate, type Evaluation, type Source } from "./evaluate.ts";
import { KEY_SOURCE_RULES } from "./key-sources.ts";
import { EVALUATED, keywordScope } from "./keywords.ts";
import { approximateCombinations, blockSpace, combinationCount, combinations, settersOf, type Combination } from "./match-combinations.ts";
import { describeCriteria } from "./match.ts";
import type { MatchBlock, SshConfig } from "./parser.ts";
import { setBy, whereToFix } from "./provenance.ts";
import { weakAlgorithms, weakNames } from "./weak-algorithms.ts";

/** CIS Distribution Independent Linux benchmark 5.2.x recommends MaxAuthTries 4 or less. */
export const MAX_AUTH_TRIES_LIMIT = 4;

/** A finding over the effective options; the rules for key sources are in key-sources.ts. */
export interface Rule {
  id: string;
  keyword: string;
  /** Other options the verdict depends on: their sources are evidence too, and a Match block setting one can cause the finding. */
  depends: readonly string[];
  /**
   * The verdict for the printed value and the other effective options; `sources` says where each value came from,
   * for the options whose printed "none" means one thing from the compiled-in default and another from a line.
   */
  check(value: string, effective: Readonly<Record<string, string>>, sources: Readonly<Record<string, Source>>): { severity: Severity; title: string; detail: string; remediation: string } | null;
  /**
   * Whether an earlier finding of this rule already says what a later one for more Match blocks says, when
   * it is as severe (default: yes). A list rule says no when the later one names an algorithm the earlier did not.
   */
  covers?(earlier: Finding, later: Finding): boolean;
  /**
   * What covers() compares, one string each (the key files, the command, the CA file, the weak algorithms): covers()
   * holds only when the earlier finding has every key of the later one, depends on the later one through its keys
   * alone, and holds for a finding and itself. So checkSshConfig asks covers() only of the findings that share the
   * rarest key of the later one (thousands of blocks that each name their own key file are not compared pairwise).
   */
  coverKeys?(f: Finding): readonly string[];
}

/**
 * Whether a password can be typed at all: AuthenticationMethods must let password or
 * keyboard-interactive take part (Mozilla's "AuthenticationMethods publickey" forbids both, whatever
 * PasswordAuthentication says: sshd refuses a method no list names).
 */
function passwordTyped(e: Readonly<Record<string, string>>): boolean {
  const methods = e["authenticationmethods"] ?? "any";
  return methodAllowed(methods, "password") || methodAllowed(methods, "keyboard-interactive");
}

/**
 * A rule for a key algorithm list a Match block may set (ASVS 11.4.1: no SHA-1 for signatures), which
 * matters only while `inUse` says the list is consulted.
 */
function weakKeyList(
  id: string,
  keyword: string,
  option: string,
  family: "key" | "casig",
  depends: readonly string[],
  inUse: (e: Readonly<Record<string, string>>) => boolean,
  what: string,
): Rule {
  return {
    id,
    keyword,
    depends,
    check(v, e) {
      const weak = weakNames(v, family);
      if (weak.length === 0 || !inUse(e)) return null;
      return {
        severity: family === "casig" ? "low" : "medium",
        title: `weak ${what} algorithms accepted: ${weak.map((w) => w.name).join(", ")}`,
        detail: weak.map((w) => `${w.name}: ${w.reason}`).join("; "),
        remediation: `Remove ${weak.map((w) => w.name).join(", ")} from ${option} (or drop the "+" addition) and rely on OpenSSH's defaults; RSA keys keep working through rsa-sha2-256 and rsa-sha2-512.`,
      };
    },
    covers(earlier, later) {
      const before = new Set(weakNames(String(earlier.evidence["value"]), family).map((w) => w.name));
      return weakNames(String(later.evidence["value"]), family).every((w) => before.has(w.name));
    },
    coverKeys: (f) => weakNames(String(f.evidence["value"]), family).map((w) => w.name),
  };
}

const RULES: readonly Rule[] = [
  {
    id: "ssh.root-login",
    keyword: "permitrootlogin",
    depends: ["authenticationmethods"],
    check(v, e) {
      // ASVS 6.3.x: privileged accounts need the strongest authentication; a root password is a single factor guessable remotely.
      if (v === "yes" && passwordTyped(e)) return { severity: "critical", title: "root login allowed", detail: "PermitRootLogin yes lets root log in with a password, the path of SourceLair's compromise.", remediation: "Set PermitRootLogin no (or prohibit-password with keys only)." };
      if (v === "yes") return { severity: "low", title: "root login allowed with keys", detail: `PermitRootLogin yes, but AuthenticationMethods ${e["authenticationmethods"]} allows neither password nor keyboard-interactive, so root logs in with a key as under prohibit-password; admins should log in as themselves and escalate.`, remediation: "Set PermitRootLogin no and use sudo." };
      if (v === "without-password") return { severity: "low", title: "root login allowed with keys", detail: "PermitRootLogin prohibit-password allows root with a public key; admins should log in as themselves and escalate.", remediation: "Set PermitRootLogin no and use sudo." };
      if (v === "forced-commands-only") return { severity: "info", title: "root login allowed for forced commands", detail: "Root may log in with keys restricted to a forced command.", remediation: "Check every root authorized_keys entry has command=." };
      return null;
    },
  },
  {
    // ASVS 6.3.1: password brute force must be prevented; over SSH the robust control is no passwords at all.
    id: "ssh.password-authentication",
    keyword: "passwordauthentication",
    depends: ["authenticationmethods"],
    check: (v, e) => v === "yes" && methodAllowed(e["authenticationmethods"] ?? "any", "password") ? { severity: "high", title: "password authentication enabled", detail: "PasswordAuthentication yes lets anyone on the network guess passwords (brute force).", remediation: "Set PasswordAuthentication no and use public keys." } : null,
  },
  {
    id: "ssh.empty-passwords",
    keyword: "permitemptypasswords",
    depends: [],
    check: (v) => v === "yes" ? { severity: "critical", title: "empty passwords accepted", detail: "PermitEmptyPasswords yes lets accounts without a password log in.", remediation: "Set PermitEmptyPasswords no." } : null,
  },
  {
    // ASVS 6.3.1. With UsePAM yes, keyboard-interactive is PAM's conversation, and the stock /etc/pam.d/sshd
    // (@include common-auth: pam_unix) prompts "Password:" and checks the account password: passwords are
    // guessed, and stolen ones used, as with PasswordAuthentication yes (sshd_config(5), UsePAM: "PAM
    // keyboard-interactive authentication usually serves an equivalent role to password authentication").
    // With UsePAM no this build has no keyboard-interactive device: BSD auth exists on OpenBSD only, and
    // auth2-chall.c kbdint_alloc() removes the PAM device when use_pam is off, so no one logs in that way.
    id: "ssh.kbd-interactive",
    keyword: "kbdinteractiveauthentication",
    depends: ["usepam", "authenticationmethods"],
    check(v, e) {
      const methods = e["authenticationmethods"] ?? "any";
      if (v !== "yes" || !methodAllowed(methods, "keyboard-interactive")) return null;
      const title = "keyboard-interactive authentication enabled";
      if (e["usepam"] !== "yes") {
        return { severity: "low", title, detail: "KbdInteractiveAuthentication yes, but with UsePAM no this sshd has no keyboard-interactive device, so no one can log in that way; it prompts for passwords as soon as UsePAM is turned on.", remediation: "Set KbdInteractiveAuthentication no." };
      }
      if (methodWithoutOtherFactor(methods, "keyboard-interactive")) {
        return {
          severity: "high",
          title: `${title}: password prompts through PAM`,
          detail:
            "KbdInteractiveAuthentication yes with UsePAM yes: sshd hands the login to PAM, whose stock stack for sshd (@include common-auth: pam_unix) prompts \"Password:\" and checks the account password, so passwords can be guessed and stolen ones used as with PasswordAuthentication yes, even with PasswordAuthentication no. " +
            "If /etc/pam.d/sshd asks only for a second factor (a one-time code, no pam_unix), this is a false positive; the check has no list of accepted findings, so say it in sshd_config: AuthenticationMethods publickey,keyboard-interactive asks for the code only after a key, and this finding is then medium.",
          remediation: "Set KbdInteractiveAuthentication no, or require a key first: AuthenticationMethods publickey,keyboard-interactive.",
        };
      }
      return {
        severity: "medium",
        title: `${title} after another method`,
        detail: `KbdInteractiveAuthentication yes with UsePAM yes, and AuthenticationMethods ${methods} asks for it only after another method: PAM's prompt is a second step, a second factor if /etc/pam.d/sshd asks for a one-time code, only the account password again with the stock stack (pam_unix).`,
        remediation: "Check that /etc/pam.d/sshd asks for a second factor and not only the password; otherwise set KbdInteractiveAuthentication no.",
      };
    },
  },
  {
    // ASVS 6.3.1: fewer attempts per connection slow down brute force.
    id: "ssh.max-auth-tries",
    keyword: "maxauthtries",
    depends: [],
    check: (v) => Number(v) > MAX_AUTH_TRIES_LIMIT ? { severity: "low", title: `MaxAuthTries is ${v}`, detail: `More than ${MAX_AUTH_TRIES_LIMIT} attempts per connection make brute force cheaper (CIS recommends ${MAX_AUTH_TRIES_LIMIT} or less).`, remediation: `Set MaxAuthTries ${MAX_AUTH_TRIES_LIMIT} or less.` } : null,
  },
  {
    id: "ssh.x11-forwarding",
    keyword: "x11forwarding",
    depends: [],
    check: (v) => v === "yes" ? { severity: "low", title: "X11 forwarding enabled", detail: "X11Forwarding yes exposes the client's X display to the server side (CIS).", remediation: "Set X11Forwarding no unless users need it." } : null,
  },
  ...KEY_SOURCE_RULES,
  weakKeyList(
    "ssh.weak-pubkey-algorithms", "pubkeyacceptedalgorithms", "PubkeyAcceptedAlgorithms", "key", ["pubkeyauthentication", "authenticationmethods"],
    (e) => e["pubkeyauthentication"] === "yes" && methodAllowed(e["authenticationmethods"] ?? "any", "publickey"), "public key",
  ),
  weakKeyList(
    "ssh.weak-hostbased-algorithms", "hostbasedacceptedalgorithms", "HostbasedAcceptedAlgorithms", "key", ["hostbasedauthentication", "authenticationmethods"],
    (e) => e["hostbasedauthentication"] === "yes" && methodAllowed(e["authenticationmethods"] ?? "any", "hostbased"), "host-based",
  ),
  // Consulted only where certificates are trusted (TrustedUserCAKeys, reported on its own, or host certificates): low.
  weakKeyList("ssh.weak-ca-algorithms", "casignaturealgorithms", "CASignatureAlgorithms", "casig", [], () => true, "certificate authority signature"),
];

function sourceEvidence(source: Source | undefined): Record<string, unknown> {
  if (source === undefined || "default" in source) return { source: "compiled-in default" };
  return {
    file: source.file,
    line: source.line,
    ...(source.match !== undefined ? { match: source.match, matchFile: source.matchFile, matchLine: source.matchLine } : {}),
    ...(source.includedAt !== undefined ? { includedAt: source.includedAt.map((inc) => ({ file: inc.file, line: inc.line })) } : {}),
  };
}

/** The lines sshd ignores for these options, each tagged with the option (lowercase, as `keyword` in the evidence). */
function ignoredEvidence(evaluation: Evaluation, options: readonly string[]): Record<string, unknown> {
  const lines = options.flatMap((option) => (evaluation.ignored[option] ?? []).map((l) => ({ option, ...l })));
  return lines.length === 0 ? {} : { ignoredLines: lines };
}

/** `text` followed by the sentences that are not null. */
function withSentences(text: string, sentences: readonly (string | null)[]): string {
  const more = sentences.filter((s): s is string => s !== null);
  if (more.length === 0) return text;
  return `${/[.!?]$/.test(text) ? text : `${text}.`} ${more.join(" ")}`;
}

/**
 * Where to fix a rule's finding: the line sshd uses for its keyword, and the ignored lines of the options
 * it depends on (an AuthenticationMethods line below the one sshd uses restricts nothing).
 */
function ruleWhereToFix(rule: Rule, evaluation: Evaluation): (string | null)[] {
  const depends = rule.depends.filter((k) => (evaluation.ignored[k] ?? []).length > 0);
  return [rule.keyword, ...depends].map((k) => whereToFix(evaluation.sources[k], evaluation.ignored[k]));
}

/**
 * Findings for one evaluation.
 *
 * @example
 * const findings = sshFindings(evaluate(config));
 */
export function sshFindings(evaluation: Evaluation): Finding[] {
  const { effective, sources } = evaluation;
  const out: Finding[] = [];
  for (const rule of RULES) {
    const value = effective[rule.keyword] as string;
    const hit = rule.check(value, effective, sources);
    if (!hit) continue;
    const evidence: Record<string, unknown> = { keyword: rule.keyword, value, ...sourceEvidence(sources[rule.keyword]), ...ignoredEvidence(evaluation, [rule.keyword, ...rule.depends]) };
    // The restriction that changed the verdict is evidence too.
    if (rule.depends.includes("authenticationmethods") && effective["authenticationmethods"] !== "any") {
      evidence["authenticationMethods"] = { value: effective["authenticationmethods"], ...sourceEvidence(sources["authenticationmethods"]) };
    }
    // The human output has only title, detail and fix: the line to change must be in them, not only in the evidence.
    const detail = withSentences(hit.detail, [setBy(sources[rule.keyword])]);
    const remediation = withSentences(hit.remediation, ruleWhereToFix(rule, evaluation));
    out.push({ id: rule.id, ...hit, detail, remediation, evidence });
  }
  // ASVS 11.3.2 (approved ciphers and modes), 11.6.2 (approved key exchange).
  const weak = weakAlgorithms(effective);
  if (weak.length > 0) {
    const keywords = [...new Set(weak.map((w) => w.keyword))];
    out.push({
      id: "ssh.weak-algorithms",
      severity: "medium",
      title: `weak algorithms enabled: ${weak.map((w) => w.name).join(", ")}`,
      detail: withSentences(weak.map((w) => `${w.name} (${w.keyword}): ${w.reason}`).join("; "), keywords.map((k) => setBy(sources[k], k))),
      evidence: { algorithms: weak, sources: Object.fromEntries(keywords.map((k) => [k, sourceEvidence(sources[k])])), ...ignoredEvidence(evaluation, keywords) },
      remediation: withSentences(
        "Remove them from Ciphers/MACs/KexAlgorithms/HostKeyAlgorithms (or drop the \"+\" additions) and rely on OpenSSH's defaults.",
        keywords.map((k) => whereToFix(sources[k], evaluation.ignored[k])),
      ),
    });
  }
  return out;
}

/**
 * Work allowed for evaluating combinations of Match blocks, counted in evaluate() steps (directives
 * and blocks visited, options assembled): 4,000,000 is about half a second, and covers every choice
 * for dozens of blocks that each set the options a finding reads. A finding whose choices would cost
 * more (a generated file with thousands of blocks) gets the value-only over-approximation instead.
 */
export const COMBINATION_BUDGET = 4_000_000;

export interface CheckSshOptions {
  /** Work allowed for weighing combinations exactly (default COMBINATION_BUDGET); tests lower it to exercise the over-approximation. */
  combinationBudget?: number;
}

/** Other combinations with the same verdict listed in a finding's evidence, at most (the title gives their count). */
const MAX_LISTED_COMBINATIONS = 20;

/** A finding checkSshConfig reported, with the Match blocks it needs (none for a global one). */
interface Reported {
  severity: Severity;
  blocks: ReadonlySet<number>;
  finding: Finding;
  /** rule.coverKeys of the finding. */
  keys: ReadonlySet<string>;
}

/** "User root and Address 203.0.113.0/24": the criteria of the blocks, in file order ("Match All" adds nothing). */
function combinationName(config: SshConfig, blocks: readonly number[]): string {
  return blocks
    .map((b) => (config.blocks[b] as MatchBlock).criteria)
    .filter((criteria) => !criteria.every((c) => c.attribute === "all"))
    .map(describeCriteria)
    .join(" and ");
}

/** `f` as it holds for a connection matching blocks (`deciding` gave the options it reads; `name` names them with the blocks around them). */
function forBlocks(config: SshConfig, f: Finding, how: { name: string; deciding: readonly number[]; approximate: boolean }): Finding {
  const where = (b: number): Record<string, unknown> => {
    const blk = config.blocks[b] as MatchBlock;
    return { criteria: blk.label, file: blk.file, line: blk.line };
  };
  const evidence: Record<string, unknown> = { ...f.evidence };
  if (how.deciding.length === 1) evidence["matchBlock"] = { ...where(how.deciding[0] as number), criteria: how.name };
  else evidence["matchBlocks"] = how.deciding.map(where);
  if (how.approximate) evidence["combinationChecked"] = false;
  const detail = how.approximate ? `${f.detail} (Too many Match block combinations to weigh one by one: not checked that these blocks can hold for one connection.)` : f.detail;
  return { ...f, title: `${f.title} for ${how.name}`, detail, evidence };
}

/**
 * Findings for a configuration without a given connection: the global ones, plus those a connection
 * matching one Match block, or several at once, gets (or gets more severe), naming the blocks.
 * A connection matches any set of blocks whose criteria can hold together, and then each option has
 * the first value in file order of the global part and those blocks; so for each finding, every
 * choice of the block that gives each option it reads is evaluated (match-combinations.ts).
 *
 * @example
 * checkSshConfig(config); // [..., { id: "ssh.root-login", title: "root login allowed for User root and Address 203.0.113.0/24", ... }]
 */
export function checkSshConfig(config: SshConfig, options: CheckSshOptions = {}): Finding[] {
  const global = evaluate(config);
  const base = sshFindings(global);
  const out = [...base];
  const rank = (s: Severity): number => SEVERITIES.indexOf(s);
  const combined = new Map<string, { finding: Finding; others: string[] }>();
  const space = blockSpace(config);
  const evaluations = new Map<string, { evaluation: Evaluation; findings: Finding[] }>();
  const evaluateFor = (blocks: readonly number[]): { evaluation: Evaluation; findings: Finding[] } => {
    const key = blocks.join(",");
    let known = evaluations.get(key);
    if (known === undefined) {
      const evaluation = evaluate(config, { assumeBlocks: blocks });
      known = { evaluation, findings: sshFindings(evaluation) };
      evaluations.set(key, known);
    }
    return known;
  };
  const evaluationCost = config.directives.length + config.blocks.length + Object.keys(EVALUATED).length;
  let budget = options.combinationBudget ?? COMBINATION_BUDGET;
  // The block (not always active) that gave a keyword its value, or -1.
  const decidingBlock = (source: Source | undefined): number =>
    source === undefined || "default" in source || source.block === undefined || space.always.has(source.block) ? -1 : source.block;
  for (const rule of RULES) {
    // Options a Match block can set (UsePAM, Ciphers, MACs, KexAlgorithms, HostKeyAlgorithms are global-only and never vary).
    const inputs = [rule.keyword, ...rule.depends].filter((k) => keywordScope(k) === "all");
    const setters = settersOf(config, space, inputs);
    // What was reported for this rule, with the blocks it needs: a finding for more blocks that is no more severe adds
    // nothing. Indexed by what covers() compares (rule.coverKeys): only a finding holding each key of a later one can
    // cover it. `weighed`: the over-approximated findings already weighed, by severity and keys, which alone decide
    // their verdict; one not covered then was reported and covers the next.
    const reported: Reported[] = [];
    const byKey = new Map<string, Reported[]>();
    const weighed = new Set<string>();
    const remember = (r: Reported): void => {
      reported.push(r);
      for (const key of r.keys) {
        const list = byKey.get(key);
        if (list === undefined) byKey.set(key, [r]);
        else list.push(r);
      }
    };
    for (const f of base) if (f.id === rule.id) remember({ severity: f.severity, blocks: new Set<number>(), finding: f, keys: new Set(rule.coverKeys?.(f)) });
    const exact = combinationCount(setters) * evaluationCost <= budget;
    // Findings are computed lazily, in order: whether one is new depends on those reported before it.
    const candidates: { combination: Combination; approximate: boolean; finding: () => Finding | undefined }[] = [];
    const exactly = (combination: Combination): void => {
      candidates.push({ combination, approximate: false, finding: () => evaluateFor(combination.blocks).findings.find((f) => f.id === rule.id) });
    };
    if (exact) {
      budget -= combinationCount(setters) * evaluationCost;
      for (const combination of combinations(space, setters)) {
        // Another choice covers it when an earlier block of the combination decides an option instead.
        const { sources } = evaluateFor(combination.blocks).evaluation;
        if (inputs.every((k) => decidingBlock(sources[k]) === combination.decidedBy[k])) exactly(combination);
      }
    } else {
      // Past the budget: each setting block alone exactly while the budget lasts (what a connection
      // matching only it gets), then the value-only over-approximation for the rest.
      const single = [...new Set([...setters.values()].flat())].sort((a, b) => a - b);
      if (single.length * evaluationCost <= budget) {
        budget -= single.length * evaluationCost;
        for (const b of single) {
          const blocks = space.closure[b] as number[];
          const { sources } = evaluateFor(blocks).evaluation;
          exactly({ blocks, decidedBy: Object.fromEntries(inputs.map((k) => [k, decidingBlock(sources[k])])) });
        }
      }
      for (const { combination, evaluation } of approximateCombinations(config, global, setters, space)) {
        candidates.push({
          combination,
          approximate: true,
          finding: () => {
            if (rule.check(evaluation.effective[rule.keyword] as string, evaluation.effective, evaluation.sources) === null) return undefined;
            return sshFindings(evaluation).find((f) => f.id === rule.id);
          },
        });
      }
    }
    for (const { combination, approximate, finding } of candidates) {
      const deciding = [...new Set(Object.values(combination.decidedBy).filter((b) => b >= 0))].sort((a, b) => a - b);
      const f = deciding.length === 0 ? undefined : finding();
      if (f === undefined) continue;
      const blocks = new Set(combination.blocks);
      const keys = [...new Set(rule.coverKeys?.(f))];
      const weighing = approximate ? `${f.severity}\0${[...keys].sort().join("\0")}` : undefined;
      if (weighing !== undefined) {
        if (weighed.has(weighing)) continue;
        weighed.add(weighing);
      }
      // A finding whose blocks were not checked (approximate) is worth reporting only when no finding so far, for
      // whatever blocks, is as severe and says as much: a block naming another key file or command than the global
      // line is reported, one repeating it is not.
      const covered = (r: Reported): boolean =>
        rank(r.severity) <= rank(f.severity) && (approximate || [...r.blocks].every((b) => blocks.has(b))) && keys.every((k) => r.keys.has(k)) && (rule.covers?.(r.finding, f) ?? true);
      const earlier = keys.length === 0 ? reported : keys.map((k) => byKey.get(k) ?? []).reduce((a, b) => (b.length < a.length ? b : a));
      if (earlier.some(covered)) continue;
      remember({ severity: f.severity, blocks, finding: f, keys: new Set(keys) });
      const name = combinationName(config, combination.blocks);
      // The same verdict from many combinations of several blocks (each user block with each network
      // block) is one finding that lists them, not hundreds.
      const key = `${f.id}\0${f.severity}\0${f.title}`;
      const group = deciding.length > 1 ? combined.get(key) : undefined;
      if (group !== undefined) {
        group.others.push(name);
        continue;
      }
      const named = forBlocks(config, f, { name, deciding, approximate });
      out.push(named);
      if (deciding.length > 1) combined.set(key, { finding: named, others: [] });
    }
  }
  for (const { finding, others } of combined.values()) {
    if (others.length === 0) continue;
    finding.title += ` (and ${others.length} other combination${others.length === 1 ? "" : "s"} of Match blocks)`;
    finding.evidence["otherCombinations"] = others.slice(0, MAX_LISTED_COMBINATIONS);
  }
  return out;
}
