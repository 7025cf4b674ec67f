// Findings for an effective sshd configuration (ids are a public contract), and the findings that
// hold only inside a Match block — the blocks CIS-style scanners such as Wazuh's policy ignore.
import type { Finding, Severity } from "../finding.ts";
import { evaluate, type Evaluation, type Source } from "./evaluate.ts";
import type { SshConfig } from "./parser.ts";
import { weakAlgorithms } from "./weak-algorithms.ts";

/** CIS Distribution Independent Linux benchmark 5.2.x recommends MaxAuthTries 4 or less. */
export const MAX_AUTH_TRIES_LIMIT = 4;

interface Rule {
  id: string;
  keyword: string;
  check(value: string, effective: Readonly<Record<string, string>>): { severity: Severity; title: string; detail: string; remediation: string } | null;
}

const RULES: readonly Rule[] = [
  {
    id: "ssh.root-login",
    keyword: "permitrootlogin",
    check(v) {
      // ASVS 6.3.x: privileged accounts need the strongest authentication; a root password is a single factor guessable remotely.
      if (v === "yes") return { severity: "critical", title: "root login allowed", detail: "PermitRootLogin yes lets root log in with a password, the path of SourceLair's compromise.", remediation: "Set PermitRootLogin no (or prohibit-password with keys only)." };
      if (v === "without-password") return { severity: "low", title: "root login allowed with keys", detail: "PermitRootLogin prohibit-password allows root with a public key; admins should log in as themselves and escalate.", remediation: "Set PermitRootLogin no and use sudo." };
      if (v === "forced-commands-only") return { severity: "info", title: "root login allowed for forced commands", detail: "Root may log in with keys restricted to a forced command.", remediation: "Check every root authorized_keys entry has command=." };
      return null;
    },
  },
  {
    // ASVS 6.3.1: password brute force must be prevented; over SSH the robust control is no passwords at all.
    id: "ssh.password-authentication",
    keyword: "passwordauthentication",
    check: (v) => v === "yes" ? { severity: "high", title: "password authentication enabled", detail: "PasswordAuthentication yes lets anyone on the network guess passwords (brute force).", remediation: "Set PasswordAuthentication no and use public keys." } : null,
  },
  {
    id: "ssh.empty-passwords",
    keyword: "permitemptypasswords",
    check: (v) => v === "yes" ? { severity: "critical", title: "empty passwords accepted", detail: "PermitEmptyPasswords yes lets accounts without a password log in.", remediation: "Set PermitEmptyPasswords no." } : null,
  },
  {
    id: "ssh.kbd-interactive",
    keyword: "kbdinteractiveauthentication",
    check: (v, e) => v === "yes" ? { severity: e["usepam"] === "yes" ? "medium" : "low", title: "keyboard-interactive authentication enabled", detail: `KbdInteractiveAuthentication yes${e["usepam"] === "yes" ? " with UsePAM yes usually means password prompts through PAM, even with PasswordAuthentication no" : ""}.`, remediation: "Set KbdInteractiveAuthentication no unless a PAM second factor needs it." } : null,
  },
  {
    // ASVS 6.3.1: fewer attempts per connection slow down brute force.
    id: "ssh.max-auth-tries",
    keyword: "maxauthtries",
    check: (v) => Number(v) > MAX_AUTH_TRIES_LIMIT ? { severity: "low", title: `MaxAuthTries is ${v}`, detail: `More than ${MAX_AUTH_TRIES_LIMIT} attempts per connection make brute force cheaper (CIS recommends ${MAX_AUTH_TRIES_LIMIT} or less).`, remediation: `Set MaxAuthTries ${MAX_AUTH_TRIES_LIMIT} or less.` } : null,
  },
  {
    id: "ssh.x11-forwarding",
    keyword: "x11forwarding",
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
    if (hit) out.push({ id: rule.id, ...hit, evidence: { keyword: rule.keyword, value, ...sourceEvidence(sources[rule.keyword]) } });
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
  config.blocks.forEach((block, index) => {
    if (block.criteria.every((c) => c.attribute === "all")) return;
    for (const f of sshFindings(evaluate(config, { assumeBlock: index }))) {
      const src = f.evidence["match"];
      const fromBlock = typeof src === "string" || f.id === "ssh.weak-algorithms";
      if (!fromBlock || rank(f.severity) >= rank(severityOf.get(f.id))) continue;
      out.push({ ...f, title: `${f.title} for ${block.label}`, evidence: { ...f.evidence, matchBlock: { criteria: block.label, file: block.file, line: block.line } } });
    }
  });
  return out;
}
