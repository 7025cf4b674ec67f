// Attack that must fail: a connection that matches several Match blocks at once gets a configuration
// worse than the scan without --match reports. Random configurations (Match blocks of every kind,
// negations, nested blocks through Include) against every connection of a small universe.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { SEVERITIES, type Finding } from "../finding.ts";
import { SshConfigError } from "./errors.ts";
import { evaluate } from "./evaluate.ts";
import { checkSshConfig, sshFindings } from "./findings.ts";
import { criterionHolds, parseCriteria, type Criterion, type MatchContext } from "./match.ts";
import { criteriaSatisfiable } from "./match-satisfiable.ts";
import { memorySource } from "./memory-source.ts";
import { parseSshdConfig, type SshConfig } from "./parser.ts";

const MAIN = "/etc/ssh/sshd_config";
const INC = "/etc/ssh/inc.conf";

const CRITERIA = [
  "User root", "User alice", "User *,!root", "User adm*", "User !root", "User root,alice",
  "Address 10.0.0.0/8", "Address 10.1.0.0/16,!10.1.3.0/24", "Address 203.0.113.0/24", "Address 2001:db8::/32",
  "Address *,!10.0.0.0/8", "Address 10.*", "Group wheel", "Group *,!wheel", "Group admins", "LocalPort 22",
  "LocalPort 2222", "Host *.example.org", "Host other", "LocalAddress 192.0.2.0/24", "RDomain blue",
];
const OPTIONS = [
  "PermitRootLogin yes", "PermitRootLogin no", "PermitRootLogin prohibit-password", "PermitRootLogin forced-commands-only",
  "PasswordAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication yes", "KbdInteractiveAuthentication no",
  "AuthenticationMethods publickey", "AuthenticationMethods password", "AuthenticationMethods publickey,keyboard-interactive",
  "AuthenticationMethods publickey,password publickey", "MaxAuthTries 3", "MaxAuthTries 9", "X11Forwarding yes",
  "X11Forwarding no", "PermitEmptyPasswords yes", "PermitEmptyPasswords no",
];

// Every connection of the universe the criteria above can tell apart.
const CONTEXTS: MatchContext[] = [];
for (const user of ["root", "alice", "admin", "bob"]) {
  for (const addr of ["10.1.2.3", "10.1.3.4", "10.9.0.1", "203.0.113.7", "192.0.2.1", "2001:db8::1"]) {
    for (const groups of [[], ["wheel"], ["admins"], ["wheel", "admins"]]) {
      for (const lport of [22, 2222]) {
        for (const host of ["h.example.org", "other"]) CONTEXTS.push({ user, addr, groups, lport, host, laddr: "192.0.2.10", rdomain: lport === 22 ? "blue" : "red" });
      }
    }
  }
}

const rank = (f: Finding): number => SEVERITIES.indexOf(f.severity);

/** Fails when some connection gets a finding more severe than every scan finding of the same id. */
function assertScanCovers(config: SshConfig, scanned: readonly Finding[]): void {
  for (const match of CONTEXTS) {
    let findings: Finding[];
    try {
      findings = sshFindings(evaluate(config, { match }));
    } catch (error) {
      // sshd refuses this connection (e.g. "any" after a list in its pass): nothing to log in with.
      if (error instanceof SshConfigError) continue;
      throw error;
    }
    for (const f of findings) {
      assert.ok(
        scanned.some((s) => s.id === f.id && rank(s) <= rank(f)),
        `${f.severity} ${f.id} for ${JSON.stringify(match)} is missing from the scan: ${scanned.map((s) => `${s.severity} ${s.title}`).join("; ")}`,
      );
    }
  }
}

interface GeneratedBlock {
  criteria: string;
  options: string[];
}
interface GeneratedConfig {
  global: string[];
  blocks: GeneratedBlock[];
  include: { at: number; blocks: GeneratedBlock[] } | undefined;
}

const block: fc.Arbitrary<GeneratedBlock> = fc.record({ criteria: fc.oneof(fc.constant("All"), fc.array(fc.constantFrom(...CRITERIA), { minLength: 1, maxLength: 2 }).map((c) => c.join(" "))), options: fc.array(fc.constantFrom(...OPTIONS), { maxLength: 3 }) });
const configuration: fc.Arbitrary<GeneratedConfig> = fc.record({
  global: fc.array(fc.constantFrom(...OPTIONS, "UsePAM yes", "UsePAM no"), { maxLength: 5 }),
  blocks: fc.array(block, { maxLength: 6 }),
  // A block whose Include holds more blocks (nested: they hold only when it does).
  include: fc.option(fc.record({ at: fc.nat(), blocks: fc.array(block, { minLength: 1, maxLength: 2 }) }), { nil: undefined }),
});

function load(c: GeneratedConfig): SshConfig | null {
  const lines = (b: GeneratedBlock): string[] => [`Match ${b.criteria}`, ...b.options.map((o) => `  ${o}`)];
  const main = [...c.global, ...c.blocks.flatMap((b, i) => [...lines(b), ...(c.include !== undefined && c.include.at % Math.max(1, c.blocks.length) === i ? [`  Include ${INC}`] : [])])].join("\n");
  const inc = (c.include?.blocks ?? []).flatMap(lines).join("\n");
  try {
    return parseSshdConfig(main, MAIN, { source: memorySource({ [MAIN]: main, [INC]: inc }) });
  } catch (error) {
    if (error instanceof SshConfigError) return null; // sshd refuses the file: nothing to scan
    throw error;
  }
}

describe("a connection matching several Match blocks gets nothing worse than the scan reports", () => {
  test("random configurations, every connection of the universe, weighing every combination", () => {
    fc.assert(fc.property(configuration, (c) => {
      const config = load(c);
      if (config !== null) assertScanCovers(config, checkSshConfig(config));
    }), { numRuns: 300 });
  });

  test("the same with the over-approximation used past the work budget", () => {
    fc.assert(fc.property(configuration, fc.constantFrom(0, 200, 2_000), (c, combinationBudget) => {
      const config = load(c);
      if (config !== null) assertScanCovers(config, checkSshConfig(config, { combinationBudget }));
    }), { numRuns: 300 });
  });

  test("criteria are called jointly impossible only when no connection of the universe matches them all", () => {
    fc.assert(fc.property(fc.array(fc.constantFrom(...CRITERIA), { minLength: 1, maxLength: 4 }), (lines) => {
      const criteria = lines.flatMap((l) => parseCriteria(l) as Criterion[]);
      const witness = CONTEXTS.find((ctx) => criteria.every((cr) => criterionHolds(cr, ctx)));
      if (witness !== undefined) assert.ok(criteriaSatisfiable(criteria), `${lines.join(" / ")} hold for ${JSON.stringify(witness)}`);
    }), { numRuns: 2_000 });
  });
});
