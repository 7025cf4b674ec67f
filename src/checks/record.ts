// History of check runs: `bulwark check NAME --record` stores the run and its findings.
import { newId } from "../crypto/tokens.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { Clock } from "../lib/clock.ts";
import { escapeControls } from "../lib/terminal.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { SEVERITIES, type Finding, type Severity } from "./finding.ts";

export interface CheckRunInput {
  check: string;
  findings: Finding[];
  extra: Record<string, unknown>;
}

export interface CheckRunSummary {
  id: string;
  check: string;
  at: number;
  findings: number;
  maxSeverity: Severity | null;
}

export interface CheckRunStore {
  /** Stores a run and its findings in one transaction, with an audit event. Returns the run id. */
  record(run: CheckRunInput): Promise<string>;
  /** Recent runs, newest first, optionally of one check. */
  list(options?: { check?: string; limit?: number }): Promise<CheckRunSummary[]>;
  findings(runId: string): Promise<Finding[]>;
}

export function createCheckRunStore(deps: { database: Database; audit: AuditLog; clock: Clock; random: RandomSource }): CheckRunStore {
  const { database, audit, clock, random } = deps;
  return {
    async record(run: CheckRunInput): Promise<string> {
      const id = newId("run", random);
      const max = SEVERITIES.find((s) => run.findings.some((f) => f.severity === s)) ?? null;
      await database.transaction(async (trx) => {
        await trx
          .insertInto("check_runs")
          .values({ id, check_name: run.check, at: clock.now(), findings: run.findings.length, max_severity: max, extra: JSON.stringify(run.extra) })
          .execute();
        for (let i = 0; i < run.findings.length; i += 200) {
          const chunk = run.findings.slice(i, i + 200).map((f, j) => ({
            // The text fields quote what a check read (a bucket name from a policy, a file name): their control
            // characters are stored as \xNN, as they are printed. A NUL is text SQLite keeps and PostgreSQL refuses,
            // so raw it failed `--record` there before any finding was shown. Evidence is JSON, escaped already.
            run_id: id, ord: i + j, finding_id: f.id, severity: f.severity, title: escapeControls(f.title), detail: escapeControls(f.detail),
            evidence: JSON.stringify(f.evidence), remediation: escapeControls(f.remediation),
          }));
          await trx.insertInto("check_findings").values(chunk).execute();
        }
        await audit.appendIn(trx, { type: "check.recorded", subject: id, data: { check: run.check, findings: run.findings.length, maxSeverity: max } });
      });
      return id;
    },
    async list(options = {}): Promise<CheckRunSummary[]> {
      let q = database.db.selectFrom("check_runs").selectAll().orderBy("at", "desc").limit(Math.min(options.limit ?? 50, 1000));
      if (options.check) q = q.where("check_name", "=", options.check);
      const rows = await q.execute();
      return rows.map((r) => ({ id: r.id, check: r.check_name, at: Number(r.at), findings: Number(r.findings), maxSeverity: r.max_severity as Severity | null }));
    },
    async findings(runId: string): Promise<Finding[]> {
      const rows = await database.db.selectFrom("check_findings").selectAll().where("run_id", "=", runId).orderBy("ord").execute();
      return rows.map((r) => ({
        id: r.finding_id, severity: r.severity as Severity, title: r.title, detail: r.detail,
        evidence: JSON.parse(r.evidence) as Record<string, unknown>, remediation: r.remediation,
      }));
    },
  };
}
