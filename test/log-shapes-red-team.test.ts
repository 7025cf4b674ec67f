// Red-team round "log shapes": `bulwark check authlog` against the lines today's sshd and syslog daemons write.
// The attacker: a botnet guessing SSH passwords (SourceLair 2014: root, a botnet, five hours, then a login; Drupal.org
// 2013) on a host whose operator runs `bulwark check authlog` over /var/log/auth.log (or a journald export) every night.
// It holds nothing but the ability to connect from many addresses and choose the user names it sends; it wants its
// guessing, and above all the login after it, not reported, or reported low. Ground truth for every sshd line below is
// OpenSSH portable's own log calls (auth.c auth_log/auth_maxtries_exceeded, auth2.c, auth-pam.c sshpam_query, packet.c
// sshpkt_vfatal/ssh_packet_disconnect, sshd.c child_reap/drop_connection, srclimit.c, monitor.c's " [preauth]"), read at
// 0ef0f5a (2026-08); the syslog shapes are rsyslog's RFC 3339 and RFC 5424 templates, journalctl's -o formats, FreeBSD
// syslogd -v/-vv and BusyBox syslogd (fail2ban 1.0.2's sshd prefregex reads the FreeBSD ones: fail2ban-regex agrees).
//
// Tried, and held (pinned here where nothing else pins them):
// - OpenSSH 10 keyboard-interactive/pam guessing, where sshd logs a valid user's first MaxAuthTries/2 failures only at
//   VERBOSE and PAM's "error: PAM: Authentication failure for root from …" is the one trace at INFO (sshd-session,
//   rsyslog RFC 3339 high-precision stamps): counted for root, and the login after it is critical.
// - OpenSSH 9.8+ pre-authentication shapes ("Failed none for invalid user", "Connection closed by invalid user …
//   [preauth]", "Disconnected from authenticating user …", "banner exchange: … invalid format", "maximum
//   authentication attempts exceeded …", "Disconnecting authenticating user …: Too many authentication failures")
//   between the listener's PerSourcePenalties and LoginGraceTime lines ("drop connection #0 from [A]:p on [L]:22
//   penalty: …", "srclimit_penalise: A/32: activating ipv4 penalty …", "Timeout before authentication for
//   connection from A to L, pid = P"): the address offends, the key login after is critical, the listener's lines
//   charge no one (the server's own address least of all).
// - journalctl -o short-precise and -o short-iso-precise exports, and rsyslog's RFC 5424 template with its
//   "message repeated N times" reduction.
// (Also tried in scratch runs and already pinned elsewhere: IPv6 zone ids, user names holding "from 1.2.3.4 port 22"
// or spaces in Invalid/Failed/Connection closed lines, rsyslog ISO stamps, short-iso, sshd-session in BSD lines.)
//
// Found (all three fixed since; the tests say what was, "was: …"):
// - An Accepted line whose user name holds a space (a directory account through SSSD or winbind: sssd.conf has
//   override_space because such names exist) is not read at all: the brute force is seen, the login after it never.
//   (fixed since: accepted() takes the user name as failed() does, everything before the first " from HOST" sshd's
//   format can end with, and carries the other reading for the connection tracker to resolve.)
// - Lines carrying the syslog facility and priority — FreeBSD syslogd -v ("<4.6>") and -vv ("<auth.info>") before
//   the host, as fail2ban's prefregex reads them, and BusyBox syslogd's default ("HOST auth.info sshd[N]: …", Alpine's
//   /var/log/messages) — are taken for another program's lines: a brute force and the root login after it give no
//   finding and not even a malformed count. (fixed since: splitLine skips a "<facility.priority>" word before the host
//   and a facility.level word of syslog's names between host and program, and keys the connection without it.)
// - journald exports in -o json, -o short-full and -o short-unix are read as junk, every line malformed, and the run
//   exits 0 with no finding: the fail-open the xz/zstd/bzip2 round fixed for compressed logs. (fixed since: parseStamp
//   reads short-full and short-unix, a json entry is read as the short-unix line journalctl would print, and a file
//   still mostly not read is authlog.log-not-read, high, so the run fails.)
// In-process library and CLI calls on temp dirs only.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { authLogFindings } from "../src/checks/authlog/findings.ts";
import type { Finding } from "../src/checks/finding.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { analyze, bsd, compromises, ids, QUIET, REF, T0, tempDirs } from "./helpers/authlog-night.ts";

// The night after: the log is read on 6 December (REF), the attack ran on 5 December from 10:00 UTC (T0).
const sandbox = tempDirs("bulwark-log-shapes-");

const ATTACKER = "203.0.113.9";
const SERVER = "192.0.2.1";




/** rsyslog's RSYSLOG_FileFormat (RFC 3339, microseconds): "2026-12-05T10:00:00.000123+00:00". */
function rfc3339(s: number): string {
  return new Date(T0 + s * 1000).toISOString().replace("Z", "123+00:00");
}

/** A compromise finding's login: the user and address it names. */
function login(f: Finding): { user: unknown; address: unknown } {
  return { user: f.evidence["user"], address: f.evidence["address"] };
}

/**
 * Six guesses at root from the attacker in one minute, each its own connection, then the password that worked: the
 * plainest SourceLair night. `prefix(s, pid)` writes everything before sshd's message.
 */
function bruteForceThenLogin(prefix: (s: number, pid: number) => string): string[] {
  const lines: string[] = [];
  for (let i = 0; i < 6; i++) lines.push(`${prefix(i * 10, 2100 + i)} Failed password for root from ${ATTACKER} port ${41000 + i} ssh2`);
  lines.push(`${prefix(120, 2200)} Accepted password for root from ${ATTACKER} port 41100 ssh2`);
  return lines;
}

describe("authlog: OpenSSH 9.8+/10 lines", () => {
  // ASVS 6.3.1, 16.3.1. auth.c auth_log raises a failure to INFO only for an invalid user, the password method, or
  // failures >= MaxAuthTries/2: a botnet that sends keyboard-interactive and gives each address two tries at root
  // leaves no "Failed keyboard-interactive/pam" line at all. What is at INFO is PAM's conversation result
  // (auth-pam.c: error("PAM: %s for %s%.100s from %.100s")), pam_unix's own line from the forked PAM process (another
  // PID), and the preauth close. Twelve addresses, three counted each (under --max-retry), 36 on root in eight minutes.
  test("attack: a botnet guesses root through keyboard-interactive/pam, two tries per address, on OpenSSH 10 (sshd-session, RFC 3339 high-precision stamps) where sshd logs a valid user's first tries only at VERBOSE — root is brute-forced and the keyboard-interactive login from a fresh address is critical (ASVS 6.3.1, 16.3.1)", () => {
    const lines: string[] = [];
    for (let i = 0; i < 12; i++) {
      const address = `198.51.100.${10 + i}`;
      const pid = 3000 + 2 * i;
      const t = i * 40;
      for (const dt of [1, 4]) {
        lines.push(`${rfc3339(t + dt)} web sshd-session[${pid + 1}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=${address}  user=root`);
        lines.push(`${rfc3339(t + dt + 2)} web sshd-session[${pid}]: error: PAM: Authentication failure for root from ${address}`);
      }
      lines.push(`${rfc3339(t + 9)} web sshd-session[${pid}]: Connection closed by authenticating user root ${address} port ${50000 + i} [preauth]`);
    }
    const WINNER = "192.0.2.200";
    lines.push(`${rfc3339(600)} web sshd-session[4000]: Accepted keyboard-interactive/pam for root from ${WINNER} port 51000 ssh2`);
    lines.push(`${rfc3339(600)} web sshd-session[4000]: pam_unix(sshd:session): session opened for user root(uid=0) by root(uid=0)`);
    const r = analyze(lines);
    const findings = authLogFindings(r);
    assert.deepEqual(r.offenders.map((o) => o.address), [], "no single address reached --max-retry: the botnet stays under it");
    assert.equal(r.attackedUsers[0]?.user, "root", `root must be a brute-forced user (counted: ${JSON.stringify(r.stats.byKind)})`);
    const c = compromises(findings);
    assert.equal(c.length, 1, `the keyboard-interactive login after the guessing must be critical; got ${ids(findings)}`);
    assert.equal(c[0]?.severity, "critical");
    assert.deepEqual(login(c[0] as Finding), { user: "root", address: WINNER });
  });

  // ASVS 6.3.1, 16.3.1. One address's pre-authentication traces as OpenSSH 9.8+ writes them (sshd-session; the
  // preauth child's lines reach syslog through the monitor with " [preauth]"), six counted failures, interleaved with
  // what the 9.8+ listener (sshd[900]) writes about the same client at INFO: PerSourcePenalties' "activating …
  // penalty" (srclimit.c logit_f) and "drop connection" lines, the latter naming the server's own address too, and
  // LoginGraceTime's timeout, which since 9.8 the listener logs ("Timeout before authentication for connection from A
  // to L, pid = P"). Then a key login from that address.
  test("attack: OpenSSH 9.8+ pre-authentication shapes from one address between the listener's PerSourcePenalties and LoginGraceTime lines — the address offends, its key login after is critical, and the listener's lines charge no one, the server's own address least of all (ASVS 6.3.1, 16.3.1)", () => {
    const at = (s: number, prog: string): string => `${bsd(s)} web ${prog}:`;
    const lines = [
      `${at(0, "sshd-session[101]")} Failed none for invalid user admin from ${ATTACKER} port 40001 ssh2`,
      `${at(1, "sshd-session[101]")} Connection closed by invalid user admin ${ATTACKER} port 40001 [preauth]`,
      `${at(2, "sshd[900]")} srclimit_penalise: ${ATTACKER}/32: activating ipv4 penalty of 17.000 seconds for penalty: failed authentication`,
      `${at(20, "sshd-session[102]")} Received disconnect from ${ATTACKER} port 40002:11: Bye Bye [preauth]`,
      `${at(20, "sshd-session[102]")} Disconnected from authenticating user root ${ATTACKER} port 40002 [preauth]`,
      `${at(21, "sshd[900]")} drop connection #0 from [${ATTACKER}]:40003 on [${SERVER}]:22 penalty: failed authentication`,
      `${at(40, "sshd-session[104]")} banner exchange: Connection from ${ATTACKER} port 40004: invalid format`,
      `${at(170, "sshd[900]")} Timeout before authentication for connection from ${ATTACKER} to ${SERVER}, pid = 105`,
      `${at(180, "sshd-session[106]")} error: maximum authentication attempts exceeded for root from ${ATTACKER} port 40006 ssh2 [preauth]`,
      `${at(180, "sshd-session[106]")} Disconnecting authenticating user root ${ATTACKER} port 40006: Too many authentication failures [preauth]`,
      `${at(181, "sshd[900]")} drop connection #0 from [${ATTACKER}]:40007 on [${SERVER}]:22 penalty: failed authentication`,
      `${at(240, "sshd-session[108]")} Connection closed by authenticating user root ${ATTACKER} port 40008 [preauth]`,
      `${at(300, "sshd-session[200]")} Accepted publickey for deploy from ${ATTACKER} port 40100 ssh2: ED25519 SHA256:Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg`,
    ];
    const r = analyze(lines);
    const findings = authLogFindings(r);
    assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER], `only the client offends (counted: ${JSON.stringify(r.stats.byKind)})`);
    const c = compromises(findings);
    assert.equal(c.length, 1, `a login from an offending address is critical whatever the method; got ${ids(findings)}`);
    assert.deepEqual(login(c[0] as Finding), { user: "deploy", address: ATTACKER });
  });
});

describe("authlog: syslog and journal shapes", () => {
  // ASVS 16.2.4. journalctl -o short-precise is the BSD shape with a zero-padded day and microseconds; -o
  // short-iso-precise is RFC 3339 with microseconds and a +hh:mm offset; rsyslog's RSYSLOG_SyslogProtocol23Format
  // (RFC 5424) keeps the message's leading space after "- -", and its $RepeatedMsgReduction still folds identical
  // messages into "message repeated N times: [ …]" inside it.
  test("attack: the same brute force and root login exported with journalctl -o short-precise and -o short-iso-precise, and written by rsyslog's RFC 5424 template with repeat reduction, are critical in each (ASVS 16.2.4, 16.3.1)", () => {
    const shapes: Record<string, string[]> = {
      "short-precise": bruteForceThenLogin((s, pid) => `${bsd(s).replace("Dec  5", "Dec 05")}.${String(1_000_000 + pid).slice(1)} web sshd-session[${pid}]:`),
      "short-iso-precise": bruteForceThenLogin((s, pid) => `${new Date(T0 + s * 1000 + 3_600_000).toISOString().slice(0, 19)}.${String(1_000_000 + pid).slice(1)}+01:00 web sshd-session[${pid}]:`),
      "rfc5424 with repeats": [
        `<38>1 ${rfc3339(0)} web sshd-session 2100 - -  Failed password for root from ${ATTACKER} port 41000 ssh2`,
        `<38>1 ${rfc3339(30)} web sshd-session 2100 - -  message repeated 4 times: [ Failed password for root from ${ATTACKER} port 41000 ssh2]`,
        `<38>1 ${rfc3339(120)} web sshd-session 2200 - -  Accepted password for root from ${ATTACKER} port 41100 ssh2`,
      ],
    };
    const outcomes = Object.entries(shapes).map(([name, lines]) => {
      const r = analyze(lines);
      const c = compromises(authLogFindings(r));
      return `${name}: ${c.length === 1 && c[0]?.severity === "critical" ? "critical" : `failures ${r.stats.failures}, logins ${r.stats.successes}, ${ids(authLogFindings(r))}`}`;
    });
    for (const o of outcomes) assert.match(o, /: critical$/, outcomes.join("; "));
  });

  // ASVS 16.2.4, 6.3.1, 16.3.1. A log line carrying the facility and priority is a real, documented shape: FreeBSD's
  // syslogd -v writes "<4.6>" and -vv "<auth.info>" between the stamp and the host (fail2ban's sshd prefregex has
  // `(?:<[^.]+\.[^.]+>\s+)?` for it, and fail2ban-regex matches these very lines; docs/checks.md promises fail2ban's
  // sshd filter), and BusyBox syslogd, Alpine Linux's default, writes "HOST auth.info sshd[N]: …" to
  // /var/log/messages unless started with -S (busybox sysklogd/syslogd.c: "%s %.64s %s %s\n", timestamp, hostname,
  // facility.priority, msg). splitLine (syslog-line.ts) looked for sshd's tag in the first token after the stamp and
  // the one after it only, so it found "<auth.info>" / "web", or "web" / "auth.info", called the line another program's
  // and skipped it: not a failure, not a login, not even malformed; the botnet's night and root's login were a clean
  // run. It now skips those optional words (syslog's own facility and level names only).
  test("attack: a brute force and the root login after it in lines carrying the syslog facility and priority (FreeBSD syslogd -v '<4.6>' and -vv '<auth.info>' before the host; BusyBox syslogd's default 'HOST auth.info sshd[N]:', Alpine's /var/log/messages) — read, and the login is critical (ASVS 16.2.4, 6.3.1, 16.3.1) (was: taken for another program's lines: no failure, no login, not even malformed, no finding)", () => {
    const shapes: Record<string, (s: number, pid: number) => string> = {
      "FreeBSD syslogd -v": (s, pid) => `${bsd(s)} <4.6> web sshd[${pid}]:`,
      "FreeBSD syslogd -vv": (s, pid) => `${bsd(s)} <auth.info> web sshd[${pid}]:`,
      "BusyBox syslogd (Alpine)": (s, pid) => `${bsd(s)} web auth.info sshd-session[${pid}]:`,
    };
    const outcomes = Object.entries(shapes).map(([name, prefix]) => {
      const r = analyze(bruteForceThenLogin(prefix));
      const findings = authLogFindings(r);
      const c = compromises(findings);
      const ok = c.length === 1 && c[0]?.severity === "critical";
      return `${name}: ${ok ? "critical" : `missed — ${r.stats.lines} lines, ${r.stats.sshdLines} read as sshd, ${r.stats.malformed} malformed, ${r.stats.failures} failures, ${r.stats.successes} logins, ${ids(findings)}`}`;
    });
    for (const o of outcomes) assert.match(o, /: critical$/, `a guessed root password and its login went unreported: ${outcomes.join("; ")}`);
  });

  // ASVS 16.2.4, 16.3.1 (fail-open). A host without rsyslog (RHEL 9, Fedora, Debian 12+ minimal, Arch) has only the
  // journal; the operator exports it for the nightly run. -o json is journalctl's machine format (one JSON object a
  // line: __REALTIME_TIMESTAMP in µs, _HOSTNAME, SYSLOG_IDENTIFIER, SYSLOG_PID, MESSAGE), -o short-full prints
  // "Sat 2026-12-05 10:00:00 UTC host sshd[N]: …", -o short-unix "1796464800.000123 host sshd[N]: …". parseStamp
  // (timestamp.ts) knew none of them: every line was "malformed", the summary said so in a count, and `check authlog`
  // exited 0 with no finding on a night holding a brute force and the root login after it — what the xz/zstd/bzip2
  // finding (test/checks-second-round-attacks.test.ts) called "read as junk and reported clean". Secure: read them, or
  // refuse the file (exit 2), or at least fail the run with a finding that the log was not understood.
  test("attack: a brute force and root login in a journald export written with journalctl -o json, -o short-full or -o short-unix — read, or refused, never a clean exit 0 (ASVS 16.2.4, 16.3.1) (was: every line malformed, no finding, exit 0)", async () => {
    const dir = sandbox();
    const WEEKDAY = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const msgs = bruteForceThenLogin(() => "").map((l) => l.trimStart());
    const times = [0, 10, 20, 30, 40, 50, 120].map((s) => T0 + s * 1000);
    const pids = [2100, 2101, 2102, 2103, 2104, 2105, 2200];
    const formats: Record<string, (i: number) => string> = {
      json: (i) =>
        JSON.stringify({
          __REALTIME_TIMESTAMP: String(BigInt(times[i] as number) * 1000n + 123n),
          PRIORITY: "6",
          SYSLOG_FACILITY: "4",
          _HOSTNAME: "web",
          SYSLOG_IDENTIFIER: "sshd-session",
          SYSLOG_PID: String(pids[i]),
          _PID: String(pids[i]),
          _COMM: "sshd-session",
          _SYSTEMD_UNIT: "ssh.service",
          MESSAGE: msgs[i],
        }),
      "short-full": (i) => {
        const d = new Date(times[i] as number);
        return `${WEEKDAY[d.getUTCDay()]} ${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} UTC web sshd-session[${pids[i]}]: ${msgs[i]}`;
      },
      "short-unix": (i) => `${(times[i] as number) / 1000}.000123 web sshd-session[${pids[i]}]: ${msgs[i]}`,
    };
    const outcomes: string[] = [];
    for (const [name, line] of Object.entries(formats)) {
      const file = join(dir, `journal-${name}.log`);
      writeFileSync(file, `${msgs.map((_, i) => line(i)).join("\n")}\n`);
      const r = await bulwarkInProcess(["check", "authlog", file, "--json"], { ...QUIET, BULWARK_DATA_DIR: join(dir, "no-site") });
      let summary = r.stderr.slice(0, 200);
      try {
        const doc = JSON.parse(r.stdout) as { findings?: Finding[]; stats?: { malformed?: number; sshdLines?: number } };
        summary = `${ids(doc.findings ?? [])}, ${doc.stats?.sshdLines} sshd lines, ${doc.stats?.malformed} malformed`;
      } catch {
        // Refused: stdout holds no document; stderr says why.
      }
      outcomes.push(`${name}: exit ${r.code} (${summary})`);
    }
    for (const o of outcomes) assert.doesNotMatch(o, /: exit 0 /, `a journald export holding a brute force and a root password login passed as clean: ${outcomes.join("; ")}`);
  });
});

describe("authlog: user names sshd logs", () => {
  // ASVS 6.3.1, 16.3.1. A directory account (SSSD or winbind against Active Directory) may hold a space: sAMAccountName
  // allows it, and sssd.conf has `override_space` precisely because such names reach NSS. sshd logs the name as the
  // client sent it (auth.c auth_log: "%s %s%s%s for %s%.100s from %.200s port %d ssh2"), so its failures read
  // "Failed password for john smith from A …" — counted, a brute force — and its login "Accepted password for john
  // smith from A …". accepted() (sshd-messages.ts) took the user as the one token after " for " and wanted " from "
  // right after it: the Accepted line was dropped (no login at all), and the compromise the check exists to report was
  // not reported (it now reads the user as failed() does, userFrom). Docs: sshd writes "the client's user name, spaces and all" (docs/checks.md, ## authlog).
  test("attack: a brute force on a directory account whose name holds a space ('john smith') and the password login after it from the same address — the Accepted line is read and the login is critical (ASVS 6.3.1, 16.3.1) (was: the Accepted line was not read: the brute force reported, the login after it never)", () => {
    const USER = "john smith";
    const lines: string[] = [];
    for (let i = 0; i < 6; i++) lines.push(`${bsd(i * 10)} web sshd-session[${2100 + i}]: Failed password for ${USER} from ${ATTACKER} port ${41000 + i} ssh2`);
    lines.push(`${bsd(120)} web sshd-session[2200]: Accepted password for ${USER} from ${ATTACKER} port 41100 ssh2`);
    const r = analyze(lines);
    const findings = authLogFindings(r);
    assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER], "precondition: the guessing is seen");
    const c = compromises(findings);
    assert.equal(
      c.length,
      1,
      `the login after the brute force was not reported (${ids(findings)}): "Accepted password for ${USER} from ${ATTACKER}" was read as ${r.stats.successes} login(s)`,
    );
    assert.deepEqual(login(c[0] as Finding), { user: USER, address: ATTACKER });
  });
});
