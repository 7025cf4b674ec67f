// Line shapes beyond plain BSD syslog: the facility and priority some syslog daemons write, journalctl's json export,
// and files in no shape the check reads (written by hand from FreeBSD syslogd(8), BusyBox syslogd.c and journalctl(1)).
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthLogAnalyzer } from "./analyzer.ts";
import { authLogFindings } from "./findings.ts";
import { journalLine } from "./journal-json.ts";
import { splitLine, type SshdLine } from "./syslog-line.ts";
import { emptyStamp } from "./timestamp.ts";
import { analyzeLines } from "./test-helpers.ts";
import type { AuthLogResult } from "./types.ts";

const REF = Date.UTC(2026, 11, 6);
const ATTACKER = "203.0.113.9";
const run = (lines: string[]): AuthLogResult => analyzeLines(lines, { referenceMs: REF });
const ids = (r: AuthLogResult): string[] => authLogFindings(r).map((f) => `${f.id}/${f.severity}`).sort();

function split(line: string): { shape: string; host: string; connection: string; message: string } {
  const out: SshdLine = { stamp: emptyStamp(), hostStart: 0, hostEnd: 0, connection: "", messageAt: 0 };
  const shape = splitLine(line, out);
  return { shape, host: line.slice(out.hostStart, out.hostEnd), connection: shape === "sshd" ? out.connection : "", message: shape === "sshd" ? line.slice(out.messageAt) : "" };
}

/** Five failures from the attacker, then its root login: `prefix(i)` writes everything before sshd's message. */
function night(prefix: (i: number) => string): string[] {
  const lines = [0, 1, 2, 3, 4].map((i) => `${prefix(i)} Failed password for root from ${ATTACKER} port ${4000 + i} ssh2`);
  lines.push(`${prefix(5)} Accepted password for root from ${ATTACKER} port 4100 ssh2`);
  return lines;
}

// ASVS 16.2.4: fail2ban's sshd prefregex reads FreeBSD's forms; BusyBox's is Alpine's default /var/log/messages.
test("reads FreeBSD syslogd -v/-vv's '<4.6>'/'<auth.info>' before the host and BusyBox's 'auth.info' after it", () => {
  assert.deepEqual(split("Dec  5 10:00:00 <4.6> web sshd[7]: Failed none"), { shape: "sshd", host: "web", connection: "web sshd[7]:", message: "Failed none" });
  assert.deepEqual(split("Dec  5 10:00:00 <auth.info> web sshd[7]: x"), { shape: "sshd", host: "web", connection: "web sshd[7]:", message: "x" });
  assert.deepEqual(split("Dec  5 10:00:00 <security.4> web cron[7]: x"), { shape: "other", host: "web", connection: "", message: "" });
  // One connection whatever the level sshd logs a line at ("error: PAM: …" is auth.err).
  assert.deepEqual(split("Dec  5 10:00:00 web auth.info sshd-session[7]: x"), { shape: "sshd", host: "web", connection: "web sshd-session[7]:", message: "x" });
  assert.equal(split("Dec  5 10:00:00 web authpriv.err sshd-session[7]: error: PAM: y").connection, "web sshd-session[7]:");
  for (const [prefix, ok] of [
    ["Dec  5 10:00:00 <4.6> web sshd[1]:", true],
    ["Dec  5 10:00:00 <auth.info> web sshd[1]:", true],
    ["Dec  5 10:00:00 web auth.info sshd[1]:", true],
    ["Dec  5 10:00:00 web local7.warn sshd[1]:", true],
  ] as const) {
    assert.equal(ids(run(night(() => prefix))).includes("authlog.success-after-failures/critical"), ok, prefix);
  }
});

test("skips only syslog's facility and level names there: other words are another program's", () => {
  for (const line of [
    "Dec  5 10:00:00 web foo.info sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2",
    "Dec  5 10:00:00 web auth.loud sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2",
    "Dec  5 10:00:00 web 4.6 sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2",
    "Dec  5 10:00:00 web auth.info x sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2",
    "Dec  5 10:00:00 <foo.bar> web sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2",
  ]) {
    assert.equal(split(line).shape, "other", line);
  }
});

// ASVS 16.2.4: journalctl -o json, one entry a line; MESSAGE as an array of bytes when it is not UTF-8.
test("reads journalctl -o json entries as the short-unix lines journalctl would print", () => {
  const entry = (fields: Record<string, unknown>): string => JSON.stringify({ __REALTIME_TIMESTAMP: "1796464800000123", _HOSTNAME: "web", ...fields });
  assert.equal(
    journalLine(entry({ SYSLOG_IDENTIFIER: "sshd", SYSLOG_PID: "7", _PID: "8", MESSAGE: "Failed none" })),
    "1796464800.000123 web sshd[7]: Failed none",
  );
  assert.equal(journalLine(entry({ _COMM: "sshd-session", _PID: "8", MESSAGE: [0x4a, 0xe9] })), "1796464800.000123 web sshd-session[8]: J\u00e9");
  assert.equal(journalLine(`\u001e${entry({ MESSAGE: "x" })}`), "1796464800.000123 web -: x", "json-seq, no identifier");
  assert.equal(journalLine(entry({ _HOSTNAME: null, SYSLOG_IDENTIFIER: "sshd", SYSLOG_PID: "1]: y", MESSAGE: "x" })), "1796464800.000123 sshd: x");
  for (const bad of [
    "{not json",
    "[1,2]",
    entry({ MESSAGE: null }),
    entry({ MESSAGE: ["a", "b"] }),
    entry({ MESSAGE: [256] }),
    entry({ MESSAGE: "x", __REALTIME_TIMESTAMP: 1796464800000123 }),
    entry({ MESSAGE: "x", __REALTIME_TIMESTAMP: "-1" }),
  ]) {
    assert.equal(journalLine(bad), null, bad);
  }
  const lines = night((i) => "").map((l, i) =>
    entry({ __REALTIME_TIMESTAMP: `${1796464800 + i * 10}000000`, SYSLOG_IDENTIFIER: "sshd-session", SYSLOG_PID: String(100 + i), MESSAGE: l.trimStart() }),
  );
  const r = run(lines);
  assert.equal(r.stats.sshdLines, 6);
  assert.ok(ids(r).includes("authlog.success-after-failures/critical"), ids(r).join());
  // A program name with a space cannot make another program's entry sshd's.
  assert.equal(run([entry({ SYSLOG_IDENTIFIER: "x sshd", SYSLOG_PID: "1", MESSAGE: "Failed password for root from 203.0.113.9 port 1 ssh2" })]).stats.sshdLines, 0);
});

// ASVS 16.2.4, 16.3.1 (fail-open): a file in no shape the check reads was every line malformed, and the run clean.
test("a file most of whose lines are in no format the check reads is reported not read (high); a few foreign lines are not", () => {
  const monotonic = night((i) => `[  ${i}.000123] web sshd[${i}]:`);
  const r = run(monotonic);
  assert.deepEqual(ids(r), ["authlog.log-not-read/high"]);
  const f = authLogFindings(r)[0];
  assert.deepEqual(f?.evidence, { count: 1, files: [{ file: "auth.log", lines: 6, unread: 6 }], omitted: 0 });
  assert.match(f?.title ?? "", /6 of 6 line\(s\) of auth\.log/);

  // Half or fewer unread, blank lines and journal markers aside: read.
  const mixed = [...night((i) => `Dec  5 10:00:0${i} web sshd[${i}]:`), ...monotonic, "", "-- Boot 0123 --"];
  assert.equal(run(mixed).stats.unreadFiles, 0);
  assert.equal(run([]).stats.unreadFiles, 0, "an empty file (logrotate's fresh one) says nothing");
  assert.equal(run(["", "-- No entries --"]).stats.unreadFiles, 0);
});

test("with several files only the unread one is named, the others' findings stand, and a second finish counts it once", () => {
  const a = new AuthLogAnalyzer({ referenceMs: REF });
  a.beginFile("auth.log");
  night((i) => `Dec  5 10:00:0${i} web sshd[${i}]:`).forEach((l, i) => a.line(l, i + 1));
  a.beginFile("journal.txt");
  ["\u0000\u0001binary", "Sat junk", "{\"MESSAGE\":1}"].forEach((l, i) => a.line(l, i + 1));
  a.beginFile("auth.log.1");
  a.line("Dec  4 10:00:00 web CRON[1]: x", 1);
  a.finish();
  const r = a.finish();
  assert.equal(r.stats.unreadFiles, 1);
  assert.deepEqual(r.unreadFiles, [{ file: "journal.txt", lines: 3, unread: 3 }]);
  const found = authLogFindings(r).map((f) => f.id);
  assert.ok(found.includes("authlog.success-after-failures") && found.includes("authlog.log-not-read"), found.join());
});
