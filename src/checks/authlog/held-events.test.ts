// HeldEvents (held-events.ts) and how the analyzer uses it: a BSD syslogd "HOST last message repeated N times" line
// stands for N more of that host's previous line, counted only when that line was an sshd event. Tested on the
// module and on small logs in the forms FreeBSD/OpenBSD/NetBSD/sysklogd and macOS write.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthLogAnalyzer } from "./analyzer.ts";
import { HeldEvents } from "./held-events.ts";
import { ev, type SshdEvent } from "./sshd-event.ts";
import { MAX_REPEAT } from "./sshd-messages.ts";
import type { AuthLogOptions, AuthLogResult } from "./types.ts";

const REF = Date.UTC(2026, 10, 22, 12);

function failure(address: string): SshdEvent {
  return { ...ev("failed-password", "fail", false, address, "root"), method: "password" };
}

// --- The module ---

test("holds nothing at first", () => {
  const held = new HeldEvents();
  assert.equal(held.active, false);
  assert.equal(held.get("web"), undefined);
  assert.equal(held.get(""), undefined);
});

test("gives back a host's last sshd event with its connection, also after more lines of the same host", () => {
  const held = new HeldEvents();
  const event = failure("198.51.100.7");
  held.seen("web");
  held.hold("web", "web sshd[7]:", event);
  assert.equal(held.active, true);
  held.seen("web");
  assert.deepEqual(held.get("web"), { connection: "web sshd[7]:", event });
  assert.equal(held.get("db"), undefined, "another host holds nothing");
});

test("keeps a host's event when another host's line comes between, as an equal copy", () => {
  const held = new HeldEvents();
  const event = failure("198.51.100.7");
  held.seen("web");
  held.hold("web", "web sshd[7]:", event);
  held.seen("db");
  assert.equal(held.active, true);
  assert.deepEqual(held.get("web"), { connection: "web sshd[7]:", event });
  assert.equal(held.get("db"), undefined);
  held.hold("db", "db sshd[9]:", failure("192.0.2.1"));
  held.seen("web");
  assert.deepEqual(held.get("web")?.event, event);
  assert.equal(held.get("db")?.event.address, "192.0.2.1");
  assert.equal(held.get("db")?.connection, "db sshd[9]:");
});

test("a host's newer event replaces its older one, held or parked", () => {
  const held = new HeldEvents();
  held.seen("web");
  held.hold("web", "web sshd[1]:", failure("198.51.100.1"));
  held.seen("web");
  held.hold("web", "web sshd[2]:", failure("198.51.100.2"));
  assert.equal(held.get("web")?.event.address, "198.51.100.2");
  held.seen("db"); // parks web's event
  held.seen("web");
  held.hold("web", "web sshd[3]:", failure("198.51.100.3"));
  assert.equal(held.get("web")?.connection, "web sshd[3]:");
  held.seen("db"); // parks the newer one
  assert.equal(held.get("web")?.event.address, "198.51.100.3");
  // The older, parked event must not come back once the newer one is forgotten.
  held.seen("web");
  held.hold("web", "web sshd[4]:", failure("198.51.100.4"));
  held.seen("web");
  held.forget("web");
  assert.equal(held.get("web"), undefined);
});

test("forgets a host's event after its non-sshd line, held or parked, and only that host's", () => {
  const held = new HeldEvents();
  held.seen("web");
  held.hold("web", "web sshd[1]:", failure("198.51.100.1"));
  held.seen("web");
  held.forget("web");
  assert.equal(held.get("web"), undefined);
  assert.equal(held.active, false);

  held.seen("web");
  held.hold("web", "web sshd[1]:", failure("198.51.100.1"));
  held.seen("db");
  held.hold("db", "db sshd[2]:", failure("198.51.100.2"));
  held.seen("web");
  held.forget("web"); // web's event is parked
  assert.equal(held.get("web"), undefined);
  assert.equal(held.get("db")?.event.address, "198.51.100.2", "db's event stays");
  held.forget("mail"); // a host that held nothing
  assert.equal(held.get("db")?.event.address, "198.51.100.2");
});

test("clear() drops the held and the parked events", () => {
  const held = new HeldEvents();
  held.seen("web");
  held.hold("web", "web sshd[1]:", failure("198.51.100.1"));
  held.seen("db");
  held.hold("db", "db sshd[2]:", failure("198.51.100.2"));
  held.clear();
  assert.equal(held.active, false);
  assert.equal(held.get("web"), undefined);
  assert.equal(held.get("db"), undefined);
});

test("keeps the events of the hosts just before a repeat line when a flood of host names overflows the table", () => {
  const held = new HeldEvents();
  const hosts = 25_000; // past the table's bound of 10,000 hosts, twice
  let lost = 0;
  for (let i = 0; i < hosts; i++) {
    held.seen(`h${i}`);
    held.hold(`h${i}`, `h${i} sshd[${i}]:`, failure(`10.0.${(i >> 8) & 255}.${i & 255}`));
    // The host whose line came just before must still be held, also after the line that overflows the table.
    if (i > 0 && held.get(`h${i - 1}`)?.connection !== `h${i - 1} sshd[${i - 1}]:`) lost++;
  }
  assert.equal(lost, 0);
  held.seen("last-host");
  assert.equal(held.get(`h${hosts - 1}`)?.connection, `h${hosts - 1} sshd[${hosts - 1}]:`);
  assert.equal(held.get(`h${hosts - 2}`)?.connection, `h${hosts - 2} sshd[${hosts - 2}]:`);
});

// --- Through the analyzer ---

interface Run {
  result: AuthLogResult;
  /** Line numbers of the counted failures, one per failure. */
  lines: number[];
  /** Addresses of the counted failures, one per failure. */
  addresses: string[];
}

/** Analyzes `files` (each a list of lines) in order, as the check does with several files. */
function analyze(files: string[][], options: Partial<AuthLogOptions> = {}): Run {
  const lines: number[] = [];
  const addresses: string[] = [];
  const a = new AuthLogAnalyzer({
    referenceMs: REF,
    ...options,
    onFailure: (m) => {
      lines.push(m.line);
      addresses.push(m.address);
    },
  });
  files.forEach((file, i) => {
    a.beginFile(`auth.log.${i}`);
    file.forEach((text, n) => a.line(text, n + 1));
  });
  return { result: a.finish(), lines, addresses };
}
const one = (lines: string[], options: Partial<AuthLogOptions> = {}): Run => analyze([lines], options);

const FAIL_WEB = "Nov 21 04:00:01 web sshd[100]: Failed password for root from 198.51.100.7 port 5000 ssh2";
const FAIL_DB = "Nov 21 04:00:03 db sshd[200]: Failed password for admin from 192.0.2.44 port 6000 ssh2";

test("a repeat line after an sshd failure counts N more failures for that host, on the repeat line", () => {
  // Missed attack without it: FreeBSD's syslogd folds one connection's five tries into one line and a repeat line.
  const r = one([FAIL_WEB, "Nov 21 04:00:09 web last message repeated 4 times"]);
  assert.equal(r.result.stats.failures, 5);
  assert.deepEqual(r.lines, [1, 2, 2, 2, 2]);
  assert.equal(r.result.stats.byKind["failed-password"], 5);
  assert.deepEqual(r.result.offenders.map((o) => o.address), ["198.51.100.7"]);
  assert.equal(r.result.offenders[0]?.offenderAt?.line, 2);
});

test("counts each of several repeat lines in a row (syslogd writes one at each flush)", () => {
  const r = one([FAIL_WEB, "Nov 21 04:00:31 web last message repeated 2 times", "Nov 21 04:01:31 web last message repeated 1 time"]);
  assert.equal(r.result.stats.failures, 4);
  assert.deepEqual(r.lines, [1, 2, 2, 3]);
});

test("a repeat line after a non-sshd line of the same host counts nothing", () => {
  const r = one([FAIL_WEB, "Nov 21 04:00:05 web cron[300]: (root) CMD (run-parts /etc/periodic)", "Nov 21 04:00:09 web last message repeated 4 times"]);
  assert.equal(r.result.stats.failures, 1);
});

test("a host's older sshd event, parked when another host's line came, is not replayed after its newer lines", () => {
  const r = one([
    FAIL_WEB,
    FAIL_DB,
    "Nov 21 04:00:04 web sshd[101]: Failed password for root from 198.51.100.9 port 5001 ssh2",
    "Nov 21 04:00:05 web cron[300]: (root) CMD (true)",
    "Nov 21 04:00:09 web last message repeated 4 times",
  ]);
  assert.equal(r.result.stats.failures, 3);
});

test("a repeat line after an sshd line that is no authentication event counts nothing", () => {
  const r = one([FAIL_WEB, "Nov 21 04:00:05 web sshd[1]: Server listening on 0.0.0.0 port 22.", "Nov 21 04:00:09 web last message repeated 4 times"]);
  assert.equal(r.result.stats.failures, 1);
});

test("a repeat line after a successful login counts no failure", () => {
  const r = one(["Nov 21 04:00:01 web sshd[100]: Accepted publickey for alice from 198.51.100.7 port 5000 ssh2", "Nov 21 04:00:09 web last message repeated 3 times"]);
  assert.equal(r.result.stats.failures, 0);
});

test("another host's lines in between do not break the first host's repeat, nor is it charged to them", () => {
  const r = one([
    FAIL_WEB,
    FAIL_DB,
    "Nov 21 04:00:04 db cron[300]: (root) CMD (true)",
    "Nov 21 04:00:05 mail postfix/smtpd[9]: connect from unknown[192.0.2.9]",
    "Nov 21 04:00:09 web last message repeated 4 times",
  ]);
  assert.equal(r.result.stats.failures, 6);
  assert.deepEqual(r.addresses, ["198.51.100.7", "192.0.2.44", "198.51.100.7", "198.51.100.7", "198.51.100.7", "198.51.100.7"]);
  assert.deepEqual(r.lines, [1, 2, 5, 5, 5, 5]);
});

test("each host's repeat line replays its own host's event in a central log", () => {
  const r = one([FAIL_WEB, FAIL_DB, "Nov 21 04:00:09 web last message repeated 2 times", "Nov 21 04:00:10 db last message repeated 3 times", "Nov 21 04:00:11 web last message repeated 1 time"]);
  assert.deepEqual(r.addresses, ["198.51.100.7", "192.0.2.44", "198.51.100.7", "198.51.100.7", "192.0.2.44", "192.0.2.44", "192.0.2.44", "198.51.100.7"]);
});

test("a repeat line of a host whose last line was no sshd event counts nothing, though other hosts hold one", () => {
  const r = one([FAIL_WEB, "Nov 21 04:00:04 db last message repeated 5 times", "Nov 21 04:00:05 db cron[1]: x", "Nov 21 04:00:06 db last message repeated 5 times"]);
  assert.equal(r.result.stats.failures, 1);
});

test("a count above 1000 is read as 1000", () => {
  assert.equal(MAX_REPEAT, 1000);
  for (const n of ["1000", "1001", "5000", "4294967295"]) {
    const r = one([FAIL_WEB, `Nov 21 04:00:09 web last message repeated ${n} times`]);
    assert.equal(r.result.stats.failures, 1 + 1000, n);
  }
  assert.equal(one([FAIL_WEB, "Nov 21 04:00:09 web last message repeated 999 times"]).result.stats.failures, 1000);
});

test("a count of 0, negative or not a number counts nothing", () => {
  for (const n of ["0", "-3", "three", "3x", "", " 3", "0x10", "+2"]) {
    const r = one([FAIL_WEB, `Nov 21 04:00:09 web last message repeated ${n} times`]);
    assert.equal(r.result.stats.failures, 1, JSON.stringify(n));
  }
  for (const text of ["last message repeated 3 times, really", "last message repeated 3", "last message was repeated 3 times"]) {
    assert.equal(one([FAIL_WEB, `Nov 21 04:00:09 web ${text}`]).result.stats.failures, 1, text);
  }
});

test("reads the macOS form '--- last message repeated N times ---'", () => {
  const r = one([FAIL_WEB, "Nov 21 04:00:09 web --- last message repeated 2 times ---", "Nov 21 04:00:39 web --- last message repeated 1 time ---"]);
  assert.equal(r.result.stats.failures, 4);
  assert.deepEqual(r.lines, [1, 2, 2, 3]);
});

test("attack: counts FreeBSD 12+'s repeat line 'HOST syslogd: last message repeated N times' (was: only the tagless form of older BSDs, so five guesses per connection counted as one)", () => {
  // Since FreeBSD 12.0 syslogd writes the repeat line through fprintlog_successive(), as a message of its own, from
  // LocalHostName with the tag "syslogd" and always "times" (usr.sbin/syslogd/syslogd.c), e.g. in real FreeBSD logs
  // "Feb 13 14:00:00 hp-elite-mini-bsd syslogd: last message repeated 5 times". The check reads only the tagless form
  // of older BSDs, so on every supported FreeBSD five guesses per connection still count as one.
  const r = one([FAIL_WEB, "Nov 21 04:00:09 web syslogd: last message repeated 4 times"]);
  assert.equal(r.result.stats.failures, 5);
  assert.deepEqual(r.lines, [1, 2, 2, 2, 2]);
  assert.equal(one([FAIL_WEB, "Nov 21 04:00:09 web syslogd[812]: last message repeated 2 times"]).result.stats.failures, 3, "with a PID");
  for (const other of ["web syslogd: exiting on signal 15", "web syslogd:last message repeated 2 times", "web syslogd[]: last message repeated 2 times"]) {
    assert.equal(one([FAIL_WEB, `Nov 21 04:00:09 ${other}`]).result.stats.failures, 1, other);
  }
});

test("reads repeat lines in a log written without host names", () => {
  const fail = "Nov 21 04:00:01 sshd[100]: Failed password for root from 198.51.100.7 port 5000 ssh2";
  const r = one([fail, "Nov 21 04:00:09 last message repeated 3 times", "Nov 21 04:00:19 --- last message repeated 2 times ---"]);
  assert.equal(r.result.stats.failures, 6);
  assert.deepEqual(r.lines, [1, 2, 2, 2, 3, 3]);
  assert.equal(r.result.stats.malformed, 0);
  const broken = one([fail, "Nov 21 04:00:05 cron[300]: (root) CMD (true)", "Nov 21 04:00:09 last message repeated 3 times"]);
  assert.equal(broken.result.stats.failures, 1, "a non-sshd line in between ends the held event there too");
});

test("a new file clears the held events: a repeat line never reaches back into the previous file", () => {
  const r = analyze([[FAIL_WEB, FAIL_DB], ["Nov 21 05:00:00 web last message repeated 4 times", "Nov 21 05:00:01 db last message repeated 4 times"]]);
  assert.equal(r.result.stats.failures, 2);
  const hostless = analyze([["Nov 21 04:00:01 sshd[100]: Failed password for root from 198.51.100.7 port 5000 ssh2"], ["Nov 21 05:00:00 last message repeated 4 times"]]);
  assert.equal(hostless.result.stats.failures, 1);
});

test("rsyslog's 'message repeated N times: [ MSG]' still counts N more of MSG", () => {
  const r = one([
    FAIL_WEB,
    "Nov 21 04:00:09 web sshd[100]: message repeated 3 times: [ Failed password for root from 198.51.100.7 port 5000 ssh2]",
    "Nov 21 04:00:10 web sshd[101]: message repeated 2000 times: [ Failed password for root from 198.51.100.8 port 5001 ssh2]",
  ]);
  assert.equal(r.result.stats.failures, 1 + 3 + 1000);
  assert.deepEqual(r.lines.slice(0, 4), [1, 2, 2, 2]);
  assert.equal(r.addresses.filter((a) => a === "198.51.100.8").length, 1000);
});

test("repeated failures count toward the window at the repeat line's time", () => {
  // Four failures, then a repeat of the fourth 20 minutes later: outside the 10-minute window, no offender.
  const fails = [0, 1, 2, 3].map((s) => `Nov 21 04:00:0${s} web sshd[${100 + s}]: Failed password for root from 198.51.100.7 port 5000 ssh2`);
  const late = one([...fails, "Nov 21 04:20:00 web last message repeated 1 time"]);
  assert.equal(late.result.stats.failures, 5);
  assert.equal(late.result.offenders.length, 0);
  const soon = one([...fails, "Nov 21 04:01:00 web last message repeated 1 time"]);
  assert.deepEqual(soon.result.offenders.map((o) => o.address), ["198.51.100.7"]);
});

// ASVS 16.4.1. Red team 38, finding 1: journald never folds repeats, so in a journal export the line is forged
// (`logger -t syslogd`, any local user) and replayed the host's last sshd failure as sshd's own.
test("a 'last message repeated' journal entry replays nothing, and the held event is forgotten", () => {
  const T = Date.UTC(2026, 10, 21, 4);
  const entry = (s: number, fields: Record<string, string>): string =>
    JSON.stringify({ __REALTIME_TIMESTAMP: String((T + s * 1000) * 1000), _HOSTNAME: "web", _TRANSPORT: "syslog", ...fields });
  const sshd = { _UID: "0", _EXE: "/usr/sbin/sshd", _SYSTEMD_UNIT: "ssh.service", _PID: "700", SYSLOG_IDENTIFIER: "sshd" };
  const failed = entry(0, { ...sshd, MESSAGE: "Failed password for admin from 192.0.2.10 port 50000 ssh2" });
  for (const writer of [{ _UID: "33", _EXE: "/usr/bin/logger", _PID: "31337" }, { _UID: "0", _EXE: "/usr/sbin/syslogd", _PID: "1" }]) {
    const repeat = entry(1, { ...writer, SYSLOG_IDENTIFIER: "syslogd", MESSAGE: "last message repeated 20 times" });
    const bare = entry(2, { ...writer, SYSLOG_IDENTIFIER: "-", MESSAGE: "last message repeated 20 times" });
    const r = analyze([[failed, repeat, bare]]);
    assert.equal(r.result.stats.failures, 1, JSON.stringify(writer));
  }
  // A syslog file's repeat line still counts (the control).
  assert.equal(analyze([["Nov 21 04:00:00 web sshd[700]: Failed password for admin from 192.0.2.10 port 50000 ssh2", "Nov 21 04:00:01 web syslogd: last message repeated 20 times"]]).result.stats.failures, 21);
});
