// One night of sshd lines for the authlog red-team tests: the log read on 6 December, the attack on 5 December from
// 10:00 UTC; BSD stamps, an analysis of lines, and temp dirs for log files removed after the calling test file.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { analyzeLines } from "../../src/checks/authlog/test-helpers.ts";
import type { AuthLogResult } from "../../src/checks/authlog/types.ts";
import type { Finding } from "../../src/checks/finding.ts";

/** When the log is read (the analysis's reference time). */
export const REF = Date.UTC(2026, 11, 6);
/** When the attack begins. */
export const T0 = Date.UTC(2026, 11, 5, 10);
/** The environment of a quiet CLI run on the embedded store. */
export const QUIET = { BULWARK_LOG_LEVEL: "silent", BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "" };

/** `lines` analysed as one log read at REF, in UTC. */
export const analyze = (lines: readonly string[]): AuthLogResult => analyzeLines(lines, { referenceMs: REF, utcOffsetMinutes: 0 });
/** "id/severity" of each finding, for messages. */
export const ids = (findings: readonly Finding[]): string => findings.map((f) => `${f.id}/${f.severity}`).join(", ") || "no findings";
/** The findings that say a login came after a brute force. */
export const compromises = (findings: readonly Finding[]): Finding[] => findings.filter((f) => f.id === "authlog.success-after-failures");

/** BSD syslog stamp (UTC, space-padded day) `s` seconds after T0, as rsyslog writes it. */
export function bsd(s: number): string {
  const d = new Date(T0 + s * 1000);
  return `Dec ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
}

/** A maker of temp dirs under `prefix`, all removed after the calling test file's tests. Call it at the top of the file. */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}
