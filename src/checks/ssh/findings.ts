// Findings for an effective sshd configuration (ids are a public contract), and the findings that
// hold only inside a Match block — the blocks CIS-style scanners such as Wazuh's policy ignore.
import type { Finding, Severity } from "../finding.ts";
import { methodAllowed } from "./auth-methods.ts";
import { evaluate, type Evaluation, type Source } from "./evaluate.ts";
import type { SshConfig } from "./parser.ts";
import { weakAlgorithms } from "./weak-algorithms.ts";

/** CIS Distribution Independent Linux benchmark 5.2.x recommends MaxAuthTries 4 or less. */
export const MAX_AUTH_TRIES_LIMIT = 4;

interface Rule {
  id: string;
  keyword: string;
  /** Other options the verdict depends on: their sources are evidence too, and a Match block setting one can cause the finding. */
  depends: readonly string[];
  check(value: string, effective: Readonly<Record<string, string>>): { severity: Severity; title: string; detail: string; remediation: string } | null;
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
    id: "ssh.kbd-interactive",
    keyword: "kbdinteractiveauthentication",
    depends: ["usepam", "authenticationmethods"],
    check: (v, e) => v === "yes" && methodAllowed(e["authenticationmethods"] ?? "any", "keyboard-interactive") ? { severity: e["usepam"] === "yes" ? "medium" : "low", title: "keyboard-interactive authentication enabled", detail: `KbdInteractiveAuthentication yes${e["usepam"] === "yes" ? " with UsePAM yes usually means password prompts through PAM, even with PasswordAuthentication no" : ""}.`, remediation: "Set KbdInteractiveAuthentication no unless a PAM second factor needs it." } : null,
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
];

function sourceEvidence(source: Source | undefined): Record<string, unknown> {
  if (source === undefined || "default" in source) return { source: "compiled-in default" };
  return { file: source.file, line: source.line, ...(source.match !== undefined ? { match: source.match } : {}) };
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
    const hit = rule.check(value, effective);
    if (!hit) continue;
    const evidence: Record<string, unknown> = { keyword: rule.keyword, value, ...sourceEvidence(sources[rule.keyword]) };
    // The restriction that changed the verdict is evidence too.
    if (rule.depends.includes("authenticationmethods") && effective["authenticationmethods"] !== "any") {
      evidence["authenticationMethods"] = { value: effective["authenticationmethods"], ...sourceEvidence(sources["authenticationmethods"]) };
    }
    out.push({ id: rule.id, ...hit, evidence });
  }
  // ASVS 11.3.2 (approved ciphers and modes), 11.6.2 (approved key exchange).
  const weak = weakAlgorithms(effective);
  if (weak.length > 0) {
    out.push({
      id: "ssh.weak-algorithms",
      severity: "medium",
      title: `weak algorithms enabled: ${weak.map((w) => w.name).join(", ")}`,
      detail: weak.map((w) => `${w.name} (${w.keyword}): ${w.reason}`).join("; "),
      evidence: { algorithms: weak, sources: Object.fromEntries([...new Set(weak.map((w) => w.keyword))].map((k) => [k, sourceEvidence(sources[k])])) },
      remediation: "Remove them from Ciphers/MACs/KexAlgorithms (or drop the \"+\" additions) and rely on OpenSSH's defaults.",
    });
  }
  return out;
}

/**
 * Findings for a configuration without a given connection: the global ones, plus, for each Match
 * block, the findings that hold only when it matches (or are more severe there), naming the block.
 *
 * @example
 * checkSshConfig(config); // [..., { id: "ssh.root-login", title: "root login allowed for Address 10.0.0.0/8", ... }]
 */
export function checkSshConfig(config: SshConfig): Finding[] {
  const base = sshFindings(evaluate(config));
  const out = [...base];
  const severityOf = new Map(base.map((f) => [f.id, f.severity]));
  const rank = (s: Severity | undefined): number => (s === undefined ? 99 : ["critical", "high", "medium", "low", "info"].indexOf(s));
  const keywordsOf = new Map(RULES.map((r) => [r.id, [r.keyword, ...r.depends]]));
  config.blocks.forEach((block, index) => {
    if (block.criteria.every((c) => c.attribute === "all")) return;
    const evaluation = evaluate(config, { assumeBlock: index });
    // A finding belongs to this block when a line of this very block decides it (its own keyword or
    // one it depends on, e.g. AuthenticationMethods any); lines of an enclosing block are reported
    // for that block.
    const setHere = (keyword: string): boolean => {
      const src = evaluation.sources[keyword];
      return src !== undefined && !("default" in src) && src.block === index;
    };
    for (const f of sshFindings(evaluation)) {
      const fromBlock = f.id === "ssh.weak-algorithms" || (keywordsOf.get(f.id) ?? []).some(setHere);
      if (!fromBlock || rank(f.severity) >= rank(severityOf.get(f.id))) continue;
      out.push({ ...f, title: `${f.title} for ${block.label}`, evidence: { ...f.evidence, matchBlock: { criteria: block.label, file: block.file, line: block.line } } });
    }
  });
  return out;
}
