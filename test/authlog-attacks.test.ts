// Attacks on `bulwark check authlog` by someone who can put text into an auth log: a remote client choosing its
// SSH user name, a host or program writing to the same (local or remote) syslog file. They want an innocent
// address blocked (into the --format nft sets), their own brute force or login hidden, or the check to crash.
// Each test is an attack that must fail. Tests named "attack: … (was: …)" were found failing and fixed; the
// parenthesis says what the code did before.
// In-process only (no CLI spawn): the analyzer, findings and nft renderer are what the CLI prints.
import assert from "node:assert/strict";
import { test } from "node:test";
import { authLogFindings } from "../src/checks/authlog/findings.ts";
import { renderNft } from "../src/checks/authlog/nft.ts";
import type { Finding } from "../src/checks/finding.ts";
import type { AuthLogOptions, AuthLogResult } from "../src/checks/authlog/types.ts";
import { analyzeLines } from "../src/checks/authlog/test-helpers.ts";
import { nftElements } from "./helpers/checks.ts";

const REF = Date.UTC(2026, 10, 22);

const analyze = (lines: Iterable<string>, options: Partial<AuthLogOptions> = {}): AuthLogResult => analyzeLines(lines, { referenceMs: REF, ...options });

function byId(findings: Finding[], id: string): Finding[] {
  return findings.filter((f) => f.id === id);
}


const ADMIN = "192.0.2.10";
const ATTACKER = "203.0.113.9";

// ---------------------------------------------------------------------------------------------------------
// (a) Framing an innocent address through the user name
// ---------------------------------------------------------------------------------------------------------

// ASVS 16.4.1 (log injection), 6.3.1. `ssh 'x 192.0.2.10 on'@host`, then hang up, five times: sshd writes the user
// name as given (spaces allowed, only ':' is cut) into "Connection closed by invalid user USER ADDR port N
// [preauth]". Read from the right, " on 203.0.113.9 port N" is taken as fail2ban's optional " on IFACE" tail and the
// address before it, chosen by the attacker, is charged. The sshd process had already named the real client.
test("attack: a user name ending in ' on' (ssh 'x ADMIN on'@host) does not make preauth closes blame ADMIN (was: ADMIN blocked by --format nft, its next login a critical 'compromise')", () => {
  const lines: string[] = [];
  for (let i = 0; i < 5; i++) {
    const port = 40000 + i;
    lines.push(`Nov 21 04:0${i}:00 web sshd[${100 + i}]: Invalid user x ${ADMIN} on from ${ATTACKER} port ${port}`);
    lines.push(
      i % 2 === 0
        ? `Nov 21 04:0${i}:01 web sshd[${100 + i}]: Connection closed by invalid user x ${ADMIN} on ${ATTACKER} port ${port} [preauth]`
        : `Nov 21 04:0${i}:01 web sshd[${100 + i}]: Disconnected from invalid user x ${ADMIN} on ${ATTACKER} port ${port} [preauth]`,
    );
  }
  lines.push(`Nov 21 09:00:00 web sshd[300]: Accepted publickey for admin from ${ADMIN} port 50000 ssh2: ED25519 SHA256:adminkey`);
  const r = analyze(lines);
  const offenders = r.offenders.map((o) => o.address);
  assert.ok(offenders.includes(ATTACKER), "the real client is still an offender");
  assert.ok(!nftElements(renderNft(offenders)).includes(ADMIN), `the admin's address must not reach the nft set: ${offenders.join(", ")}`);
  assert.deepEqual(byId(authLogFindings(r), "authlog.success-after-failures"), [], "the admin's own key login is no compromise");
});

// Same injection through the other message that names the user before the address: sshd's disconnect when the
// client switches user names mid-authentication ("Change of username or service not allowed"). ASVS 16.4.1.
test("attack: a user name ending in ' on' does not make sshd's 'Change of username' disconnect blame the address inside it (was: 127.0.0.1 charged and put into the nft set)", () => {
  const lines: string[] = [];
  for (let i = 0; i < 5; i++) {
    const port = 41000 + i;
    lines.push(`Nov 21 05:0${i}:00 web sshd[${400 + i}]: Invalid user x 127.0.0.1 on from ${ATTACKER} port ${port}`);
    lines.push(
      `Nov 21 05:0${i}:01 web sshd[${400 + i}]: Disconnecting invalid user x 127.0.0.1 on ${ATTACKER} port ${port}: ` +
        "Change of username or service not allowed: (x 127.0.0.1 on,ssh-connection) -> (root,ssh-connection) [preauth]",
    );
  }
  const r = analyze(lines);
  const offenders = r.offenders.map((o) => o.address);
  assert.deepEqual(offenders, [ATTACKER]);
  assert.deepEqual(nftElements(renderNft(offenders)), [ATTACKER]);
});

// The same ' on' trick against the messages where sshd writes "from ADDR" after the user name: the leftmost
// "from" whose tail is sshd's own (or the rightmost) is the real one, and these hold. ASVS 16.4.1.
test("attack: a user name ending in ' on' or ' port N on' does not redirect Invalid user, Failed password, max-auth or PAM lines", () => {
  const matches: string[] = [];
  const lines = [
    `Nov 21 06:00:00 web sshd[500]: Invalid user x from ${ADMIN} on from ${ATTACKER} port 40000`,
    `Nov 21 06:00:01 web sshd[500]: Failed password for invalid user x from ${ADMIN} on from ${ATTACKER} port 40000 ssh2`,
    `Nov 21 06:00:02 web sshd[501]: Invalid user x from ${ADMIN} port 22 on from ${ATTACKER} port 40001`,
    `Nov 21 06:00:03 web sshd[501]: Failed none for invalid user x from ${ADMIN} port 22 on from ${ATTACKER} port 40001 ssh2`,
    `Nov 21 06:00:04 web sshd[501]: error: maximum authentication attempts exceeded for invalid user x from ${ADMIN} port 22 ssh2 on from ${ATTACKER} port 40001 ssh2 [preauth]`,
    `Nov 21 06:00:05 web sshd[502]: Failed password for invalid user x ${ADMIN} on from ${ATTACKER} port 40002 ssh2`,
    `Nov 21 06:00:06 web sshd[502]: error: PAM: Authentication failure for illegal user x from ${ADMIN} on from ${ATTACKER}`,
  ];
  const r = analyze(lines, { onFailure: (m) => matches.push(m.address) });
  assert.equal(matches.length, lines.length, "every line is counted");
  assert.deepEqual([...new Set(matches)], [ATTACKER]);
  assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
});

// A local user runs `logger -t 'sshd[1]' 'Failed password for root from 127.0.0.1 port 22 ssh2'` five times (or a
// host on the remote-syslog network sends them): indistinguishable from sshd in a text log. fail2ban never bans the
// host's own addresses (ignoreself, on by default); the nft set blocks loopback SSH (tunnels, onion services,
// local automation). ASVS 16.4.1.
test("attack: forged sshd lines naming 127.0.0.1 and ::1 do not put loopback into the --format nft sets (was: both blocked)", () => {
  const lines: string[] = [];
  for (let i = 0; i < 5; i++) {
    lines.push(`Nov 21 07:00:0${i} web sshd[${600 + i}]: Failed password for root from 127.0.0.1 port 22 ssh2`);
    lines.push(`Nov 21 07:00:1${i} web sshd[${610 + i}]: Failed password for root from ::1 port 22 ssh2`);
    lines.push(`Nov 21 07:00:2${i} web sshd[${620 + i}]: Failed password for root from ${ATTACKER} port 22 ssh2`);
  }
  const r = analyze(lines);
  const elements = nftElements(renderNft(r.offenders.map((o) => o.address)));
  assert.ok(elements.includes(ATTACKER));
  assert.deepEqual(elements.filter((a) => a === "127.0.0.1" || a === "::1"), [], "loopback must not be blocked");
});

// A remote-syslog file holds several hosts' sshd whose PIDs collide; a failure waiting for its address on one host
// must not be charged to the client another host names next. ASVS 16.3.3.
test("attack: in a remote-syslog file, another host's sshd with the same PID cannot make its pending failure land on this host's client", () => {
  const lines = [];
  for (let i = 0; i < 5; i++) {
    lines.push(`Nov 21 08:0${i}:00 gw sshd[777]: Disconnecting: Too many authentication failures for root [preauth]`);
    lines.push(`Nov 21 08:0${i}:01 web sshd[777]: Connection closed by ${ADMIN} port 5000${i}`);
  }
  const r = analyze(lines);
  assert.deepEqual(r.offenders, []);
  assert.equal(r.stats.failures, 0);
});

// ---------------------------------------------------------------------------------------------------------
// PID reuse: a connection that ended without an end line
// ---------------------------------------------------------------------------------------------------------

// An attacker's connection ends with "fatal: Timeout before authentication" (or ssh_dispatch_run_fatal): no end line
// the tracker knows, so its state (user "x") stays. Days later the PID comes round again (pid_max wraps on a host a
// botnet keeps busy) for the admin's key login: the "second user name" makes every Failed publickey and even the
// Accepted line count as failures. fail2ban forgets a connection after 5 minutes (mlfidCache maxTime). ASVS 6.3.5.
test("attack: PID reuse after an attacker's connection timed out does not turn the admin's key logins days later into failures (was: failures, a brute force and a critical 'compromise')", () => {
  const lines: string[] = [];
  for (let p = 0; p < 5; p++) {
    lines.push(`Nov 18 03:00:0${p} web sshd[${5000 + p}]: Invalid user x from ${ATTACKER} port ${40000 + p}`);
    lines.push(`Nov 18 03:02:0${p} web sshd[${5000 + p}]: fatal: Timeout before authentication for ${ATTACKER} port ${40000 + p}`);
  }
  for (let p = 0; p < 3; p++) {
    lines.push(`Nov 21 09:0${p}:00 web sshd[${5000 + p}]: Failed publickey for admin from ${ADMIN} port ${50000 + p} ssh2: RSA SHA256:oldkey`);
    lines.push(`Nov 21 09:0${p}:00 web sshd[${5000 + p}]: Accepted publickey for admin from ${ADMIN} port ${50000 + p} ssh2: ED25519 SHA256:adminkey`);
  }
  const r = analyze(lines);
  assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
  assert.equal(r.stats.failures, 5, "only the attacker's five invalid users count");
  const findings = authLogFindings(r);
  assert.deepEqual(byId(findings, "authlog.success-after-failures"), []);
  assert.deepEqual(byId(findings, "authlog.user-brute-force"), []);
});

// ---------------------------------------------------------------------------------------------------------
// (b) Time stamps: hiding a brute force or the login after it
// ---------------------------------------------------------------------------------------------------------

// Seed 001: a botnet guesses deploy's password, then logs in with it. Between the two, one line from another host
// whose clock is six weeks behind (or a forged UDP syslog packet: rsyslog keeps the sender's stamp in a central
// file) reads as "time went back more than a month: New Year". Every later zone-less stamp moves a year ahead, so
// the login lies a year after the brute force and is not reported. ASVS 6.3.5, 16.3.1.
test("attack: one line of another host stamped six weeks back does not move later stamps a year ahead (was: the login after a brute force was no longer a compromise)", () => {
  const lines: string[] = [];
  for (let i = 0; i < 6; i++) lines.push(`Nov 21 04:00:0${i} web sshd[${10 + i}]: Failed password for deploy from 198.51.100.${i + 1} port 4000 ssh2`);
  lines.push("Oct 10 04:00:30 printer app[1]: paper jam");
  lines.push("Nov 21 04:02:00 web sshd[99]: Accepted password for deploy from 198.51.100.200 port 4000 ssh2");
  const critical = byId(authLogFindings(analyze(lines)), "authlog.success-after-failures");
  assert.equal(critical.length, 1, "the login after the brute force is critical");
  assert.equal(critical[0]?.evidence["at"], "2026-11-21T04:02:00.000Z");
});

// The same with a host whose clock runs five weeks ahead, interleaved with the attacker's tries: each of its lines
// and the next sshd line differ by more than a month, so every failure lands in another year. ASVS 6.3.1.
test("attack: lines of a host whose clock is five weeks ahead, interleaved with a brute force, do not hide it (was: each failure put in a different year)", () => {
  const times: string[] = [];
  const lines: string[] = [];
  for (let i = 0; i < 6; i++) {
    lines.push(`Nov 21 04:00:0${i} web sshd[${20 + i}]: Failed password for root from ${ATTACKER} port 4000 ssh2`);
    lines.push(`Dec 30 04:00:0${i} kiosk app[1]: heartbeat`);
  }
  const r = analyze(lines, { onFailure: (m) => times.push(new Date(m.timeMs).toISOString().slice(0, 10)) });
  assert.deepEqual([...new Set(times)], ["2026-11-21"]);
  assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
});

// (d) The inferred year has no bound: 273,734 "Jul 1"/"Jan 1" pairs (25 MB of any program's lines, as a remote
// syslog sender can write them) carry it to 275760, where a stamp of Sep 13 is past the largest Date. The check then
// throws a RangeError while writing the findings: nothing is reported, not even the root login. ASVS 16.5.3.
test("attack: a log built to carry the inferred year past Date's range still gets its root login reported (was: the findings threw a RangeError)", () => {
  function* log(): Generator<string> {
    for (let y = 2026; y < 275760; y++) {
      yield "Jul  1 00:00:00 h app[1]: x";
      yield "Jan  1 00:00:00 h app[1]: x";
    }
    yield "Jul  1 00:00:00 h app[1]: x";
    yield `Sep 13 00:00:01 web sshd[9]: Accepted password for root from ${ATTACKER} port 22 ssh2`;
  }
  const r = analyze(log());
  assert.equal(r.stats.rootLogins, 1);
  let findings: Finding[] = [];
  assert.doesNotThrow(() => {
    findings = authLogFindings(r);
  });
  assert.equal(byId(findings, "authlog.root-login")[0]?.severity, "high");
});

// A brute force and root's password login straddling New Year, read on January 2nd: the year rolls over between
// the lines, the window stays contiguous and the login is placed in the new year. ASVS 6.3.5.
test("attack: a brute force timed across New Year (Dec 31 23:58 to Jan 1 00:02) and the root login after it are still found", () => {
  const lines = [];
  for (const [i, hms] of ["23:58:05", "23:58:35", "23:59:05", "23:59:35", "23:59:55"].entries()) lines.push(`Dec 31 ${hms} web sshd[${30 + i}]: Failed password for root from ${ATTACKER} port 4000 ssh2`);
  for (let i = 0; i < 3; i++) lines.push(`Jan  1 00:0${i}:05 web sshd[${40 + i}]: Failed password for root from ${ATTACKER} port 4000 ssh2`);
  lines.push(`Jan  1 00:03:00 web sshd[50]: Accepted password for root from ${ATTACKER} port 4000 ssh2`);
  const r = analyze(lines, { referenceMs: Date.UTC(2027, 0, 2, 12) });
  assert.deepEqual(r.offenders.map((o) => [o.address, o.failures]), [[ATTACKER, 8]]);
  const critical = byId(authLogFindings(r), "authlog.success-after-failures");
  assert.equal(critical.length, 1);
  assert.equal(critical[0]?.evidence["at"], "2027-01-01T00:03:00.000Z");
});

// ---------------------------------------------------------------------------------------------------------
// (b) Successful root logins in every form sshd writes them
// ---------------------------------------------------------------------------------------------------------

// An intruder who got root would like the login to go unseen: certificate logins, keyboard-interactive/pam, GSSAPI,
// host-based, OpenSSH 9.8+'s sshd-session, journal and RFC 5424 lines, an IPv4-mapped or upper-case IPv6 client, a
// login folded by rsyslog into "message repeated". Each is a root login; the guessable-secret ones are high.
// ASVS 6.3.2, 6.3.5.
test("attack: root logins by certificate, keyboard-interactive, GSSAPI, host-based key and in every log format are all reported", () => {
  const lines = [
    `Nov 21 10:00:00 web sshd[1]: Accepted publickey for root from ${ATTACKER} port 1 ssh2: ED25519-CERT SHA256:abc ID ops@example (serial 7) CA ED25519 SHA256:def`,
    "Nov 21 10:00:01 web sshd-session[2]: Accepted gssapi-with-mic for root from 198.51.100.3 port 2 ssh2",
    "2026-11-21T10:00:02.123456+01:00 web sshd[3]: Accepted hostbased for root from ::FFFF:198.51.100.4 port 3 ssh2: ED25519 SHA256:h chost x.example",
    "<38>1 2026-11-21T10:00:03Z web sshd 4 - - Accepted keyboard-interactive/pam for root from 2001:DB8:0::7 port 4 ssh2",
    "Nov 21 10:00:04 web sshd[5]: message repeated 2 times: [ Accepted password for root from 198.51.100.5 port 5 ssh2]",
  ];
  const r = analyze(lines);
  assert.equal(r.stats.rootLogins, 6);
  assert.equal(r.stats.rootPasswordLogins, 3);
  const root = byId(authLogFindings(r), "authlog.root-login");
  assert.deepEqual(root.map((f) => f.severity), ["high", "medium"]);
  assert.deepEqual(root.map((f) => f.evidence["addresses"]), [
    ["2001:db8::7", "198.51.100.5"],
    [ATTACKER, "198.51.100.3", "198.51.100.4"],
  ]);
});
