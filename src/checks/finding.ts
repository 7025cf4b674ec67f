// The Finding: what every check returns. Its shape is a public contract (DESIGN.md).

export type Severity = "critical" | "high" | "medium" | "low" | "info";

/** Severities from most to least severe; index order is used for --fail-on comparisons. */
export const SEVERITIES: readonly Severity[] = ["critical", "high", "medium", "low", "info"];

export interface Finding {
  /** Stable dotted name such as `ssh.root-login`. Never renamed once published. */
  id: string;
  severity: Severity;
  title: string;
  detail: string;
  /** Structured facts that support the finding (file and line, IPs, statement ids...). */
  evidence: Record<string, unknown>;
  remediation: string;
}

/** True when `severity` is at least as severe as `threshold`. */
export function atLeast(severity: Severity, threshold: Severity): boolean {
  return SEVERITIES.indexOf(severity) <= SEVERITIES.indexOf(threshold);
}

export function isSeverity(value: string): value is Severity {
  return (SEVERITIES as readonly string[]).includes(value);
}

/** Sorts findings most severe first, then by id, for stable output. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) || a.id.localeCompare(b.id),
  );
}
