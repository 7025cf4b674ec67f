// Red team, round thirty-eight: `bulwark check authlog` (src/checks/authlog/) against whoever can put text into an auth
// log: a remote SSH client choosing its user name, a local unprivileged user writing to the journal (`logger`,
// `systemd-cat`: SYSLOG_IDENTIFIER, SYSLOG_PID and MESSAGE are theirs, _UID, _EXE, _SYSTEMD_UNIT, _PID journald's), and
// another host sending to a central syslog file (its stamps and host names are its own). Each test is one attack (or
// one honest use) asserting what a correct check does; each finding below is fixed, its test an attack that must fail
// ("was:" says what happened before); "held:" tests show the code holding.
// In-process library runs only (analyzer, findings, nft renderer: what the CLI prints); no files, no network.
//
// What sshd really writes, checked against OpenSSH's source (no sshd binary on this machine): a user name is cut at its
// first ':' (auth2.c, BSD auth style) and printed with %.100s in "Invalid user", "Failed …" and "maximum authentication
// attempts" lines; lines built on the connection preamble ("Connection closed by invalid user …", "Disconnecting
// invalid user …") print "invalid user NAME" with %.200s before sshd's own address and port (packet.c
// sshpkt_fmt_connection_id), and log.c writes at most 500 bytes per message: the real address is never cut off, and no
// name can hold "ssh2: ", "sshd[N]:" or an IPv6 address.
//
// Found, all fixed:
// 1. journal export: a local user's `logger -t syslogd 'last message repeated 20 times'` entry was read as the BSD
//    syslogd's repeat line and replayed the host's last sshd event as sshd's own: one mistyped password of the admin
//    became 21 failures, the admin's address went into the nft set and the admin's next login was a critical
//    "compromise" (line-stage.ts #otherLine ignored the entry's writer). Fixed: journald never folds repeats, so a
//    journal entry is never read as a repeat line (line-stage.ts line); it ends the held event as any other line does.
// 2. zone-less stamps, central log: one line at the top of a file, from any host and stamped seven months back, made a
//    host whose first line came after it be placed a year back (year-resolver.ts #firstYear nearest the file's latest
//    stamp, or, with the host name spoofed, the forward-jump "straggler" rule); read with the previous rotated file, the
//    brute force there was then stamped after the login, which was no longer reported. Fixed (year-resolver.ts):
//    without --year a host's first stamp is placed by the reference time, never by other hosts' stamps; a forward jump
//    of more than half a year is a late line of the previous year only when the running year's reading would lie in the
//    future; and no line of a followed host is placed more than a year before the reference.
// 3. the same with 4,098 made-up host names first (MAX_HOSTS): web was never followed, each of its lines was placed by
//    the sender's latest stamp, and the brute force and login split across two years inside one file: no finding.
//    Fixed with 2: an unfollowed host's lines are placed one by one by the reference time, which no line moves.
// 4. the same with three full-date lines under web's own name: a full date always set its host's year. Fixed
//    (year-resolver.ts resolve): a full date is placed as written and steers no host's zone-less year.
// 5. the windows compared a failure with the one maxRetry - 1 before it in read order: forged failures of the attacker's
//    own address stamped two years back, four after every four real ones, hid the brute force and the login. Fixed
//    (time-window.ts, analyzer.ts #count and #userFailure, slow-rules.ts pushName): each window is also judged by stamp
//    over the latest maxRetry failures (bounded, 2 × maxRetry numbers a key), and met either way counts, so fail2ban's
//    read-order result is kept and failures stamped before a burst cannot hide it; a spray's name list keeps its latest
//    names by stamp. Still open, as for any bounded record: failures stamped after the burst, interleaved more than
//    maxRetry - 1 to one, push a burst's failures out of the by-stamp half while keeping the read-order half apart.
// 6. link-local clients: the zone was dropped and fe80::/64 counted as one /64, so a LAN attacker's five failures from
//    five link-local addresses on one interface made the admin's key login from his own link-local address on another
//    interface a critical "compromise". Fixed (address.ts scanAddress, ipv6GroupOf): a link-local address keeps its zone
//    and is counted alone; --format nft lists it as a comment (a set cannot hold the interface).
// 7. NAT64/SIIT: 64:ff9b::/96 was counted as one /64, so one IPv4 attacker behind the translator made every IPv4
//    client's login a critical "compromise" and put 64:ff9b::/64 (the whole IPv4 Internet) into the nft set. Fixed
//    (address.ts ipv6GroupOf): an address in 64:ff9b::/96 or 64:ff9b:1::/48 is one IPv4 client, counted alone, as
//    src/accounts/flood/ip-bucket.ts counts it by its IPv4 address; its IPv6 form, what the packets carry on this host,
//    goes into the nft _v6 set.
// 8. per-user records were keyed on the name as the client spelled it: on a case-insensitive directory account (SSSD's
//    AD provider, winbind) a botnet's 24 guesses in six spellings and its login after them gave no finding at all.
//    Fixed (analyzer.ts userKey): the per-user rules fold names to lower case; evidence shows the name as first logged.
// (2–5 need a sender to a central syslog file, whose stamps and host names rsyslog writes as sent; docs/checks.md said
// such a forged packet "steers nothing", which these contradicted; it now says what is and is not steered.)
//
// Held: colon-free user names shaped like sshd's own words (fake "from VICTIM port 22 ssh2", "[preauth]", " on", fake
// Accepted text, "message repeated", an sshd prefix without its colon) in the whole sequence sshd 9.x writes, with its
// cuts; a root-run non-sshd writer naming itself sshd (_COMM too) on the real sshd's PID; a mid-file line seven months
// off from a spoofed host once the host has its year; one client's IPv6 address in several spellings.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AuthLogAnalyzer } from "../src/checks/authlog/analyzer.ts";
import { authLogFindings } from "../src/checks/authlog/findings.ts";
import { IgnoreList } from "../src/checks/authlog/ignore-list.ts";
import { renderNft } from "../src/checks/authlog/nft.ts";
import { analyzeLines } from "../src/checks/authlog/test-helpers.ts";
import type { AuthLogResult } from "../src/checks/authlog/types.ts";

/** The log is read on 7 December 2026 at noon UTC. */
const REF = Date.UTC(2026, 11, 7, 12);
/** The night before, 10:00 UTC on 6 December. */
const T0 = Date.UTC(2026, 11, 6, 10);

const ADMIN = "192.0.2.10";
const ATTACKER = "203.0.113.66";
const VICTIM = "198.51.100.20";

/** RFC 3339 stamp `s` seconds after T0, as rsyslog's file format writes it. */
const iso = (s: number): string => new Date(T0 + s * 1000).toISOString();

/** Files (name, lines) read in order by one analyzer, zone-less stamps in UTC. */
function run(files: ReadonlyArray<readonly [string, readonly string[]]>): AuthLogResult {
  const a = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0 });
  for (const [name, lines] of files) {
    a.beginFile(name);
    lines.forEach((l, i) => a.line(l, i + 1));
  }
  return a.finish();
}

const one = (lines: readonly string[]): AuthLogResult => analyzeLines(lines, { referenceMs: REF, utcOffsetMinutes: 0 });
const findingIds = (r: AuthLogResult): string[] => authLogFindings(r).map((f) => `${f.id}/${f.severity}`);
const nftOf = (r: AuthLogResult, ignore?: IgnoreList): string => renderNft(r.offenders.map((o) => o.address), ignore ? { ignore } : {});

/** One `journalctl -o json` entry `s` seconds after T0 on host web: journald's fields for the writer, then `fields`. */
function journal(s: number, writer: Record<string, string>, fields: Record<string, string>): string {
  return JSON.stringify({ __REALTIME_TIMESTAMP: String((T0 + s * 1000) * 1000), _BOOT_ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", _HOSTNAME: "web", ...writer, ...fields });
}
/** sshd-session (OpenSSH 9.8+) as root under ssh.service, PID `pid`. */
const SSHD = (pid: number): Record<string, string> => ({
  _TRANSPORT: "syslog", _UID: "0", _GID: "0", _COMM: "sshd-session", _EXE: "/usr/lib/openssh/sshd-session", _SYSTEMD_UNIT: "ssh.service", _PID: String(pid),
  SYSLOG_FACILITY: "4", SYSLOG_IDENTIFIER: "sshd-session", SYSLOG_PID: String(pid),
});
/** www-data's `logger` under php-fpm. */
const WWW_DATA: Record<string, string> = {
  _TRANSPORT: "syslog", _UID: "33", _GID: "33", _COMM: "logger", _EXE: "/usr/bin/logger", _SYSTEMD_UNIT: "php8.2-fpm.service", _PID: "31337",
};

describe("journald provenance", () => {
  // ASVS 16.4.1, 16.3.1. The journal check keys trust on journald's own fields: an entry claiming to be sshd's that
  // journald says `logger` (uid 33) wrote has its failures not counted. But a line of another program is never looked
  // at for its writer, and the BSD syslogd repeat line is one: "HOST syslogd: last message repeated N times" replays
  // the host's last sshd event N times, as sshd's own. journald never folds repeats (it rate-limits and says
  // "Suppressed N messages"), so in a journal export such a line can only be forged; www-data writes it with
  // `logger -t syslogd`, e.g. once a second, and whenever the admin's mistyped password is the host's last entry it
  // is multiplied. Nothing reaches authlog.untrusted-entries: the entry does not claim to be sshd.
  test(
    "attack: www-data's `logger -t syslogd 'last message repeated 20 times'` in the journal does not turn the admin's one mistyped password into a brute force (was: replayed as sshd's own, 21 failures, the admin an offender in the nft set and his next login critical)",
    () => {
      const lines = [
        journal(0, SSHD(7001), { MESSAGE: `pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=${ADMIN}  user=admin` }),
        journal(2, SSHD(7001), { MESSAGE: `Failed password for admin from ${ADMIN} port 50000 ssh2` }),
        journal(2.4, WWW_DATA, { SYSLOG_IDENTIFIER: "syslogd", SYSLOG_PID: "31337", MESSAGE: "last message repeated 20 times" }),
        journal(5, SSHD(7001), { MESSAGE: `Accepted password for admin from ${ADMIN} port 50000 ssh2` }),
      ];
      const r = one(lines);
      assert.equal(r.stats.untrustedEntries, 0, "the forged line does not claim to be sshd (the setup)");
      assert.deepEqual(r.offenders.map((o) => o.address), [], "the admin is no offender");
      assert.doesNotMatch(nftOf(r), new RegExp(ADMIN.replaceAll(".", "\\.")), "the admin is not blocked");
      assert.ok(!findingIds(r).some((id) => id.startsWith("authlog.success-after-failures")), `no compromise: ${findingIds(r).join(", ")}`);
      assert.equal(r.stats.failures, 1, "one failure, as sshd wrote");
    },
  );

  // ASVS 16.4.1. A root-run program that is not sshd (a cron job's `logger`, a monitoring agent) naming itself sshd,
  // _COMM included (prctl), on the PID of a real sshd-session: journald's _EXE says it is not an OpenSSH binary, so
  // its failures are not counted, and they neither join nor end the real connection.
  test("held: a root-run non-sshd writer with SYSLOG_IDENTIFIER and _COMM 'sshd' and the real sshd-session's PID frames no one", () => {
    const forger = { ...SSHD(7100), _COMM: "sshd", _EXE: "/usr/bin/logger", _SYSTEMD_UNIT: "cron.service", SYSLOG_IDENTIFIER: "sshd" };
    const lines = [journal(0, SSHD(7100), { MESSAGE: `Invalid user oracle from ${ATTACKER} port 40000` })];
    for (let i = 0; i < 8; i++) lines.push(journal(1 + i, forger, { MESSAGE: `Failed password for root from ${VICTIM} port ${41000 + i} ssh2` }));
    lines.push(journal(10, forger, { MESSAGE: `Connection closed by invalid user oracle ${ATTACKER} port 40000 [preauth]` }));
    for (let i = 0; i < 5; i++) lines.push(journal(11 + i, SSHD(7100), { MESSAGE: `Failed password for invalid user oracle from ${ATTACKER} port 40000 ssh2` }));
    const r = one(lines);
    assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER], "the real attacker offends, the victim does not");
    assert.equal(r.stats.untrustedEntries, 9);
    assert.equal(r.stats.untrustedFailures, 9, "the eight failures and the forged preauth close, none counted");
    assert.ok(findingIds(r).includes("authlog.untrusted-entries/medium"), findingIds(r).join(", "));
  });
});

describe("zone-less stamps in a central log", () => {
  // ASVS 16.2.2, 16.3.1. A central syslog server writes each sender's stamp as sent (rsyslog's traditional file format).
  // The attacker brute-forces "deploy" on web on 5 December and logs in on 6 December; the log rotated in between, and
  // the operator reads `auth.log*` (auth.log first, then auth.log.1): the login is judged against the brute force by
  // the stamps. A host the attacker controls (or any sender spoofing web's name) sends one line stamped 20 May right
  // after the rotation. web's first line in auth.log is then placed nearest that stamp: December 2025.
  const brute = Array.from({ length: 6 }, (_, i) => `Dec  5 03:00:0${i} web sshd[900]: Failed password for deploy from ${ATTACKER} port ${40000 + i} ssh2`);
  const older = ["Dec  5 02:59:00 web CRON[1]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", ...brute];
  const login = `Dec  6 08:00:00 web sshd[950]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`;
  const newer = (first: string[]): string[] => [...first, "Dec  6 07:59:00 web CRON[2]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", login];

  test(
    "attack: one line stamped seven months back at the top of the newer file (from another host, or spoofing web's name) does not hide the login after the brute force in the older file (was: web's December lines placed in 2025, the login before the ban, no finding)",
    () => {
      assert.ok(findingIds(run([["auth.log", newer([])], ["auth.log.1", older]])).includes("authlog.success-after-failures/critical"), "without the forged line (the baseline)");
      for (const forged of ["May 20 00:00:00 m rsyslogd: [origin software=\"rsyslogd\"] start", "May 20 00:00:00 web rsyslogd: [origin software=\"rsyslogd\"] start"]) {
        const r = run([["auth.log", newer([forged])], ["auth.log.1", older]]);
        assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), `${forged}: ${findingIds(r).join(", ")}`);
        const c = r.compromises.find((x) => x.user === "deploy");
        assert.equal(c && new Date(c.timeMs).toISOString(), "2026-12-06T08:00:00.000Z", `${forged}: the login's time`);
      }
    },
  );

  test("held: the same forged line in the middle of the file, after web's lines began, moves none of them", () => {
    for (const forged of ["May 20 00:00:00 m rsyslogd: hello", "May 20 00:00:00 web rsyslogd: hello", "Jan  2 00:00:00 web rsyslogd: hello"]) {
      const lines = newer([]);
      lines.splice(1, 0, forged);
      const r = run([["auth.log", lines], ["auth.log.1", older]]);
      assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), `${forged}: ${findingIds(r).join(", ")}`);
    }
  });
});

describe("stamps a central log's other senders choose", () => {
  // ASVS 16.2.2, 16.3.1. A remote syslog sender writes what stamps it likes, and lines under any host and program
  // name: nothing tells its sshd lines from web's. It cannot remove web's lines; what it must not be able to do is make
  // adding lines hide the brute force and the login web's sshd wrote. The year resolver follows at most 4,096 hosts;
  // a host past that was placed, line by line, in the year nearest the file's latest stamp, which any followed host's
  // line sets. The sender opens the file (after rotation) with 4,098 made-up host names, one of them stamped 1 May and
  // one 5 December, and then writes a line of one or the other before each of web's lines, four and four.
  test(
    "attack: a flood of made-up host names at the top of a central log, then lines stamped 1 May and 5 December between web's, does not hide web's brute force and the login after it (was: web unfollowed, its failures split across 2025 and 2026, no finding)",
    () => {
      const webLines: string[] = [];
      for (let i = 0; i < 12; i++) webLines.push(`Dec  5 03:00:${String(i).padStart(2, "0")} web sshd[900]: Failed password for deploy from ${ATTACKER} port ${40000 + i} ssh2`);
      const login = `Dec  5 03:05:00 web sshd[950]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`;
      assert.ok(findingIds(one([...webLines, login])).includes("authlog.success-after-failures/critical"), "web's lines alone (the baseline)");
      const lines = ["Dec  5 02:00:00 h1 app: up", "May  1 00:00:00 h0 app: up"];
      for (let i = 2; i < 4100; i++) lines.push(`Dec  5 02:00:00 f${i} app: up`);
      webLines.forEach((l, i) => lines.push(Math.floor(i / 4) % 2 === 0 ? "May  1 00:00:00 h0 app: up" : "Dec  5 03:00:00 h1 app: up", l));
      lines.push("Dec  5 03:00:00 h1 app: up", login);
      const r = one(lines);
      assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), findingIds(r).join(", ") || "no findings");
      assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
    },
  );

  // No flood needed when the sender spoofs web's own name: a line with a full date (RFC 3339, as rsyslog forwards) sets
  // its host's running year, whatever the year and however far from the host's last stamp. Three lines "web rsyslogd:"
  // stamped 5 December 2025, 2026 and 2025 again, one before every four of web's failures, put those failures in
  // alternate years.
  test(
    "attack: three full-date lines under web's own name, stamped a year apart, between web's BSD-stamped failures do not hide the brute force and the login after it (was: each set web's year, its failures split across two years, no finding)",
    () => {
      const lines: string[] = [];
      for (let i = 0; i < 12; i++) {
        if (i % 4 === 0) lines.push(`${(i / 4) % 2 ? "2026" : "2025"}-12-05T03:00:00Z web rsyslogd: imuxsock: begin to drop messages`);
        lines.push(`Dec  5 03:00:${String(i).padStart(2, "0")} web sshd[900]: Failed password for deploy from ${ATTACKER} port ${40000 + i} ssh2`);
      }
      lines.push("2026-12-05T03:00:00Z web rsyslogd: imuxsock: begin to drop messages");
      lines.push(`Dec  5 03:05:00 web sshd[950]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`);
      assert.ok(findingIds(one(lines.filter((l) => l.startsWith("Dec")))).includes("authlog.success-after-failures/critical"), "web's lines alone (the baseline)");
      const r = one(lines);
      assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), findingIds(r).join(", ") || "no findings");
      assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
    },
  );

  // The windows (analyzer.ts pushWindow) compare a failure's stamp with that of the failure maxRetry - 1 before it in the
  // order read, taking the log to be in time order. The sender adds failures of the attacker's own address and user,
  // stamped in 2024 (RFC 5424, full date), four after every four of web's real ones: in every run of five read, one end
  // is two years from the other.
  test(
    "attack: forged failures of the attacker's own address stamped two years back, four after every four real ones, do not hide the real brute force and the login after it (was: the read-order window never met, no finding)",
    () => {
      const lines: string[] = [];
      let real = 0;
      for (let i = 0; i < 24; i++) {
        if (Math.floor(i / 4) % 2 === 0) {
          lines.push(`Dec  6 03:00:${String(real).padStart(2, "0")} web sshd[900]: Failed password for deploy from ${ATTACKER} port ${40000 + real} ssh2`);
          real++;
        } else lines.push(`<38>1 2024-06-01T00:00:0${i % 10}Z m sshd 77 - - Failed password for deploy from ${ATTACKER} port 1 ssh2`);
      }
      lines.push(`Dec  6 03:05:00 web sshd[950]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`);
      assert.ok(findingIds(one(lines.filter((l) => l.includes(" web ")))).includes("authlog.success-after-failures/critical"), "web's lines alone (the baseline)");
      const r = one(lines);
      assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), findingIds(r).join(", ") || "no findings");
      assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
    },
  );
});

describe("IPv6 client addresses", () => {
  // ASVS 16.3.1. sshd logs a link-local client with its zone ("fe80::1%eth0", getnameinfo's form); the check drops the
  // zone and counts the address, and its /64, fe80::/64, which is every link-local host on every link of the server. A
  // LAN attacker on eth0 (a guest network) tries five passwords, each from another link-local address it gives itself;
  // the admin then logs in with his key from his workstation's link-local address on the management network (eth1).
  test(
    "attack: five failures from link-local addresses on one interface do not make the admin's key login from another interface a compromise (was: fe80::/64 banned, the admin's login critical)",
    () => {
      const lines = Array.from({ length: 5 }, (_, i) => `${iso(i)} web sshd[80${i}]: Failed password for invalid user guest from fe80::bad:${i + 1}%eth0 port ${50000 + i} ssh2`);
      lines.push(`${iso(600)} web sshd[900]: Accepted publickey for admin from fe80::ad%eth1 port 40000 ssh2: ED25519 SHA256:3q2+7w`);
      const r = one(lines);
      assert.ok(!findingIds(r).some((id) => id.startsWith("authlog.success-after-failures")), `the admin's key login is no compromise: ${findingIds(r).join(", ")}`);
      assert.doesNotMatch(nftOf(r), /fe80::\/64/, "the library's nft set does not block every link-local client");
    },
  );

  // ASVS 16.3.1. An IPv6-only server reached by IPv4 clients through a NAT64/SIIT translator (RFC 6052 well-known prefix
  // 64:ff9b::/96) sees every IPv4 client in one /64. One IPv4 attacker brute-forces root; one IPv4 user (the admin from
  // home) mistypes once and then logs in with his key.
  test(
    "attack: one IPv4 attacker behind the 64:ff9b::/96 translator does not make every IPv4 client's login a compromise nor put the whole IPv4 Internet into the nft set (was: 64:ff9b::/64 banned and in the nft set, the admin's login critical)",
    () => {
      const lines = Array.from({ length: 5 }, (_, i) => `${iso(i)} web sshd[80${i}]: Failed password for root from 64:ff9b::cb00:7142 port ${50000 + i} ssh2`);
      lines.push(`${iso(60)} web sshd[850]: Failed password for admin from 64:ff9b::c000:20a port 50100 ssh2`);
      lines.push(`${iso(600)} web sshd[900]: Accepted publickey for admin from 64:ff9b::c000:20a port 40000 ssh2: ED25519 SHA256:3q2+7w`);
      const r = one(lines);
      assert.ok(!findingIds(r).some((id) => id.startsWith("authlog.success-after-failures")), `the admin's key login is no compromise: ${findingIds(r).join(", ")}`);
      const nft = nftOf(r, new IgnoreList([], [{ address: "2001:db8:5::22", name: "eth0" }]));
      assert.doesNotMatch(nft, /64:ff9b::\/64/, "the translator's whole prefix is not blocked");
      assert.match(nft, /203\.0\.113\.66|64:ff9b::cb00:7142/, "the attacker is");
    },
  );

  // Several sshd builds writing to one central log, or a journal export mixed with a syslog file, can spell one client
  // differently: each spelling is the same address, one offender, one nft element.
  test("held: one client's IPv6 address in five spellings (upper case, leading zeros, full form, a zone id) is one offender and one nft element", () => {
    const spellings = ["2001:DB8:0:7::9", "2001:0db8:0000:0007:0000:0000:0000:0009", "2001:db8:0:7:0:0:0:9", "2001:db8::7:0:0:0:9", "2001:db8:0:7::9%eth0"];
    const r = one(spellings.map((a, i) => `${iso(i)} web sshd[60${i}]: Failed password for root from ${a} port ${50000 + i} ssh2`));
    assert.deepEqual(r.offenders.map((o) => o.address), ["2001:db8:0:7::9"]);
    assert.equal(r.offenders[0]?.failures, 5);
    assert.match(nftOf(r), /^ {6}2001:db8:0:7::9$/m);
  });
});

describe("user names", () => {
  // ASVS 16.4.1. What a client can put in the lines sshd writes: a name without ':' (auth2.c cuts there), printable
  // (log.c's strnvis escapes the rest), cut at 100 bytes after "invalid user " in Invalid/Failed/maximum lines and at
  // 200 bytes of "invalid user NAME" in the preamble lines, before sshd's own address. For each name below, the whole
  // sequence sshd 9.x with UsePAM writes for a client that tries three passwords and runs out of MaxAuthTries, and the
  // sequence of one that hangs up, are read: only the real client is charged, and no login is seen.
  const names = [
    `x from ${VICTIM} port 22 ssh2`,
    `x from ${VICTIM} port 22`,
    `x from ${VICTIM}`,
    `x ${VICTIM} port 22 [preauth]`,
    `x ${VICTIM} port 22`,
    `x ${VICTIM} on`,
    `x from ${VICTIM} port 22 on eth0`,
    `web sshd[901] Accepted password for root from ${VICTIM} port 22 ssh2`,
    `Accepted publickey for root from ${VICTIM} port 22 ssh2`,
    `message repeated 999 times [ Failed password for root from ${VICTIM} port 22 ssh2]`,
    `root from ${VICTIM} not allowed because not listed in AllowUsers`,
    `${"p".repeat(60)} from ${VICTIM} port 22 ssh2 ${"q".repeat(120)} from ${VICTIM} port 22 [preauth]`,
    `${"z".repeat(160)} ${VICTIM} port 22 [preauth]`,
  ];
  const cut = (s: string, n: number): string => s.slice(0, n);

  // ASVS 16.3.1. On a host joined to Active Directory through SSSD (the AD provider's default is case_sensitive = false)
  // or winbind, "admin", "Admin" and "ADMIN" are one account: getpwnam finds it, PAM checks its password, and sshd logs
  // the name as the client sent it. A botnet guesses admin's password 24 times in 8 minutes, from 24 addresses, four
  // times in each of six spellings, then logs in.
  test(
    "attack: a botnet spelling one directory account six ways (admin, Admin, ADMIN, …) does not keep its 24 guesses and the login after them below every rule (was: six users of four failures each, no finding)",
    () => {
      const lines: string[] = [];
      let n = 0;
      for (const spelling of ["admin", "Admin", "ADMIN", "aDmin", "adMin", "admIn"]) {
        for (let k = 0; k < 4; k++, n++) lines.push(`${iso(n * 20)} web sshd[${1000 + n}]: Failed password for ${spelling} from 198.18.${n}.7 port ${50000 + n} ssh2`);
      }
      lines.push(`${iso(n * 20)} web sshd[2000]: Accepted password for admin from 198.18.99.7 port 50000 ssh2`);
      const ids = findingIds(one(lines));
      assert.ok(ids.includes("authlog.success-after-failures/critical"), ids.join(", ") || "no findings");
      assert.ok(ids.includes("authlog.user-brute-force/medium"), ids.join(", ") || "no findings");
    },
  );

  test("held: colon-free names shaped like sshd's own words, in every line sshd 9.x writes them into, charge only the real client and forge no login", () => {
    const REAL = "203.0.113.77";
    for (const name of names) {
      assert.ok(!name.includes(":"), "sshd cuts a user name at its first ':'");
      const lines: string[] = [];
      let s = 0;
      for (let c = 0; c < 4; c++) {
        const pid = 5000 + c;
        const port = 40000 + c;
        const n100 = cut(name, 100);
        const pre = cut(`invalid user ${name}`, 200);
        const at = (): string => `${iso(s++)} web sshd[${pid}]:`;
        lines.push(`${at()} Invalid user ${n100} from ${REAL} port ${port}`);
        for (let k = 0; k < 3; k++) {
          lines.push(`${at()} pam_unix(sshd:auth): check pass; user unknown`);
          lines.push(`${at()} pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=${REAL}`);
          lines.push(`${at()} Failed password for invalid user ${n100} from ${REAL} port ${port} ssh2`);
        }
        if (c % 2 === 0) {
          lines.push(`${at()} error: maximum authentication attempts exceeded for invalid user ${n100} from ${REAL} port ${port} ssh2 [preauth]`);
          lines.push(`${at()} Disconnecting ${pre} ${REAL} port ${port}: Too many authentication failures [preauth]`);
        } else {
          lines.push(`${at()} Connection closed by ${pre} ${REAL} port ${port} [preauth]`);
        }
        lines.push(`${at()} PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=${REAL}`);
      }
      const charged = new Set<string>();
      const a = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0, onFailure: (f) => void charged.add(f.address) });
      a.beginFile("auth.log");
      lines.forEach((l, i) => a.line(l, i + 1));
      const r = a.finish();
      assert.deepEqual([...charged], [REAL], `${name}: charged`);
      assert.equal(r.stats.successes, 0, `${name}: no login`);
      assert.deepEqual(r.offenders.map((o) => o.address), [REAL], `${name}: offenders`);
      assert.doesNotMatch(nftOf(r), new RegExp(VICTIM.replaceAll(".", "\\.")), `${name}: nft`);
    }
  });
});
