// Red team, round thirty-eight, second look: `bulwark check authlog` (src/checks/authlog/) after the first round's
// fixes (daa444a): the by-stamp half of each sliding window (time-window.ts) and of the spraying rule's names
// (slow-rules.ts pushName), the year resolver placing a host's first zone-less stamp by the reference time
// (year-resolver.ts), journal entries never read as repeat lines (line-stage.ts), link-local and NAT64 addresses
// counted alone (address.ts ipv6GroupOf, nft.ts), and per-user rules folding names to lower case (analyzer.ts
// userKey). Attackers: a remote SSH client (its user name, escaped by sshd's log.c with VIS_OCTAL, so any byte past
// ASCII reaches the log as "\303\274"), a local user writing to the journal, and another host sending to a central
// syslog file (its stamps, its host names, where its lines fall between the real ones). In-process library runs only
// (analyzer, findings, nft renderer); no files, no network. "held:" tests show the code holding; "attack:" tests
// marked todo are findings, asserting what a correct check does.
//
// Found and fixed since:
// 1. the by-stamp window's open case was cheaper than docs/checks.md said ("more than --max-retry − 1 of them between
//    each two of its failures"): four forged failures of the attacker's own address and user after every four real
//    ones, stamped hours after the burst (zone-less, before the reference, or with a full date in 2099, which the year
//    resolver places as written), hid the brute force and the login after it. One forged line per real failure. Fixed:
//    a key's failure stamped more than --find-time before one read earlier in the same file puts the key out of order,
//    and from then on its failures are all kept (under one bound for all such keys) and judged exactly by stamp at the
//    end (out-of-order.ts; test/authlog-forty-red-team.test.ts).
// 2. the spraying rule had no read-order half: 20 forged failures of the attacker's address on made-up names, stamped
//    a couple of hours apart after its spray, read before it, filled the name list, and every real name was then "older
//    than every name held" and not kept (pushName). A spray of any size, and the password login after it, went
//    unreported for 20 lines in all. A regression of daa444a. Fixed: slow-rules.ts pushName keeps a read-order list of
//    names beside the by-stamp one.
// 3. honest use: 13 months of monthly rotated files (auth.log … auth.log.12, kept a year for compliance), read on 7
//    December without --year: auth.log.12's first stamp ("Dec  1", last year) took this year, as did every line up to
//    a day after the reference, so last year's brute force on deploy landed on this year's 6 December and deploy's own
//    password login that day was a critical "compromise". Fixed: each file's zone-less stamps are placed against the
//    earlier of the reference and the file's mtime (year-resolver.ts fileReferenceMs; reader.ts analyzeFile passes it),
//    since no line of a file was written after the file was. Without an mtime (stdin, a copy that lost it) as before.
// 4. one IPv4 client reaching the host both natively and through a NAT64/SIIT translator was two counters (its IPv4
//    address and 64:ff9b::a.b.c.d), though docs/checks.md calls such an address one IPv4 client: six failures in a
//    minute, three each way, and no offender. Fixed: a 64:ff9b::/96 address is counted under the IPv4 address it
//    embeds (address.ts clientKeyOf), shown in its translated form, and nft.ts blocks both forms (64:ff9b:1::/48 as
//    before: alone).
// 5. case folding stopped at ASCII: sshd logs "jürgen" as "j\303\274rgen" and "JÜRGEN" as "J\303\234RGEN"; on a
//    case-insensitive directory (SSSD, winbind) both are one account, but the folded keys differed: each non-ASCII
//    letter doubled the guesses a botnet got under every per-user rule. Fixed: analyzer.ts userKey decodes runs of
//    sshd's octal escapes that spell UTF-8, then folds to lower case and NFC.
// 6. memory: every record allocated 2 × --max-retry numbers (and a user 2 × --guess-min more) at its first failure; at
//    --max-retry 1000 --guess-min 1000 a one-off address cost 16 KB, twice for an IPv6 address (its /64), and the
//    documented 500,000-address bound was some 16 GB of typed arrays, filled by one IPv6 client rotating addresses.
//    Fixed: the rings start at 8 numbers and double as failures come (time-window.ts newRing, ringFor).
//
// Held: zone-less forged failures stamped after the reference (read a year back, so the by-stamp half keeps the
// burst); a log spanning New Year read on 2 January, with forged lines of web's name; an archive read with --year
// oldest first; a link-local offender is a comment in nft, its address on another interface (or a differently cased
// zone) is another host; a 64:ff9b:1::/48 offender blocks only itself, not its /64's other IPv4 clients; ASCII case
// variants of an invalid user are charged to no account; journal "last message repeated" entries in other shapes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AuthLogAnalyzer } from "../src/checks/authlog/analyzer.ts";
import { authLogFindings } from "../src/checks/authlog/findings.ts";
import { renderNft } from "../src/checks/authlog/nft.ts";
import { analyzeLines } from "../src/checks/authlog/test-helpers.ts";
import type { AuthLogOptions, AuthLogResult } from "../src/checks/authlog/types.ts";

/** The log is read on 7 December 2026 at noon UTC. */
const REF = Date.UTC(2026, 11, 7, 12);
const ATTACKER = "203.0.113.66";
const ADMIN = "192.0.2.10";
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** BSD syslog stamp ("Dec  6 03:00:00") of epoch ms, in UTC. */
function bsd(ms: number): string {
  const d = new Date(ms);
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
}
/** RFC 3339 stamp as rsyslog's RSYSLOG_FileFormat writes it. */
const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(".000Z", "Z");

const findingIds = (r: AuthLogResult): string[] => authLogFindings(r).map((f) => `${f.id}/${f.severity}`);
const one = (lines: readonly string[], options: Partial<AuthLogOptions> = {}): AuthLogResult =>
  analyzeLines(lines, { referenceMs: REF, utcOffsetMinutes: 0, ...options });
/** Files read in order; a file's third member is its mtime, as analyzeFile passes it (none: as from stdin). */
function run(ref: number, files: ReadonlyArray<readonly [string, readonly string[], number?]>, options: Partial<AuthLogOptions> = {}): AuthLogResult {
  const a = new AuthLogAnalyzer({ referenceMs: ref, utcOffsetMinutes: 0, ...options });
  for (const [name, lines, modifiedMs] of files) {
    a.beginFile(name, modifiedMs);
    lines.forEach((l, i) => a.line(l, i + 1));
  }
  return a.finish();
}
const compromised = (r: AuthLogResult): boolean => findingIds(r).some((id) => id.startsWith("authlog.success-after"));

describe("the by-stamp windows: lines stamped after the attack", () => {
  // ASVS 16.3.1, 16.4.1. A central log's sender chooses its lines' stamps and where they fall between web's. The
  // attacker brute-forces deploy on web from its own address, eight tries in eight seconds, and logs in. After every
  // four real failures it sends four forged ones of the same address and user, stamped an hour apart after the burst.
  // Read order: every run of five read has a real failure at one end and a forged one hours away at the other. By
  // stamp: the latest five are forged, hours apart, and every real failure is older than them all (NOT_KEPT).
  const burst = (forgedStamp: (k: number) => string): string[] => {
    const lines: string[] = [];
    let forged = 0;
    for (let real = 0; real < 8; ) {
      for (let j = 0; j < 4; j++, real++) lines.push(`Dec  6 03:00:0${real} web sshd[${900 + real}]: Failed password for deploy from ${ATTACKER} port ${40000 + real} ssh2`);
      if (forgedStamp === NONE) continue;
      for (let j = 0; j < 4; j++, forged++) lines.push(`${forgedStamp(forged)} web sshd[${7000 + forged}]: Failed password for deploy from ${ATTACKER} port ${50000 + forged} ssh2`);
    }
    lines.push(`Dec  6 03:05:00 web sshd[950]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`);
    return lines;
  };
  const NONE = (): string => "";

  test(
    "attack: one forged failure per real one, stamped after the burst (zone-less before the reference, or a full date in 2099), does not hide the brute force and the login after it (was: no offender, no user brute force, no compromise: pushByStamp kept the latest maxRetry by stamp, the forged ones, and pushReadOrder compared only the two ends of each run of maxRetry read)",
    () => {
      assert.ok(findingIds(one(burst(NONE))).includes("authlog.success-after-failures/critical"), "the burst alone (the baseline)");
      const stamps: Record<string, (k: number) => string> = {
        "zone-less, an hour apart, before the reference": (k) => bsd(Date.UTC(2026, 11, 6, 4 + k)),
        "full date in 2099": (k) => rfc3339(Date.UTC(2099, k, 1)),
      };
      for (const [how, stamp] of Object.entries(stamps)) {
        const r = one(burst(stamp));
        assert.equal(r.stats.failures, 16, `${how}: every failure is read`);
        assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER], `${how}: the attacker offends`);
        assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), `${how}: ${findingIds(r).join(", ") || "no findings"}`);
      }
    },
  );

  test("held: the same forged failures stamped after the reference without a year (\"Dec 20\" read on 7 December) are read a year back, and the burst is found by stamp", () => {
    const r = one(burst((k) => bsd(Date.UTC(2026, 11, 20 + k))));
    assert.equal(r.stats.failures, 16);
    assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
    assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), findingIds(r).join(", ") || "no findings");
  });

  // ASVS 16.3.1. The slow spraying rule (--spray-min names within 24 hours from one address) is judged by stamp only:
  // pushName keeps the names tried latest and drops a name older than every one held. The attacker sprays 60 made-up
  // names from its address, one every 30 minutes (under --find-time), then logs in to deploy by password: a high
  // finding. First, it sends 20 forged failures of its own address on 20 other names, stamped two hours apart after
  // the spray (or in 2099, 20 days apart).
  test(
    "attack: 20 forged failures on made-up names, stamped after the spray and read before it, do not hide a spray of any size and the password login after it (was: no finding: the by-stamp name list, new today, never let a spray name in)",
    () => {
      const S0 = Date.UTC(2026, 11, 5, 6);
      const spray = Array.from({ length: 60 }, (_, i) => `${bsd(S0 + i * 1_800_000)} web sshd[${100 + i}]: Failed password for invalid user u${i} from ${ATTACKER} port ${40000 + i} ssh2`);
      const login = `${bsd(S0 + 60 * 1_800_000)} web sshd[999]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`;
      assert.ok(findingIds(one([...spray, login])).includes("authlog.success-after-slow-failures/high"), "the spray alone (the baseline)");
      const stamps: Record<string, (k: number) => string> = {
        "zone-less, two hours apart, after the login": (k) => bsd(S0 + 31 * 3_600_000 + k * 7_200_000),
        "full date in 2099": (k) => rfc3339(Date.UTC(2099, 0, 1 + k)),
      };
      for (const [how, stamp] of Object.entries(stamps)) {
        const forged = Array.from({ length: 20 }, (_, k) => `${stamp(k)} web sshd[${7000 + k}]: Failed password for invalid user f${k} from ${ATTACKER} port ${50000 + k} ssh2`);
        const r = one([...forged, ...spray, login]);
        assert.ok(findingIds(r).includes("authlog.success-after-slow-failures/high"), `${how}: ${findingIds(r).join(", ") || "no findings"}`);
      }
    },
  );
});

describe("years of zone-less stamps", () => {
  // ASVS 16.2.2 (honest use). Compliance keeps a year of logs: logrotate monthly, rotate 12. Read on 7 December 2026
  // with `auth.log*`, auth.log holds 1–7 December 2026 and auth.log.12 December 2025. Last year on 6 December a botnet
  // brute-forced deploy (it does on most days); this year on 6 December deploy logged in by password from the office.
  // Each file comes with its mtime, as `check authlog auth.log*` reads it (reader.ts analyzeFile): auth.log written an
  // hour ago, auth.log.12 last written when it was rotated out, on 1 January 2026 (reader.test.ts reads such files).
  test(
    "attack: 13 months of monthly rotated files read without --year: last December's brute force on deploy does not make this December's own login of deploy a compromise (was: critical for the honest login: auth.log.12's first stamp, Dec 1, was placed in this year, not more than a day after the reference, and the brute force with it, 5 hours before the login)",
    () => {
      const current = [
        "Dec  1 00:00:05 web CRON[1]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        `Dec  6 08:00:00 web sshd[950]: Accepted password for deploy from ${ADMIN} port 41000 ssh2`,
      ];
      const lastYear = ["Dec  1 00:00:03 web CRON[1]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"];
      for (let i = 0; i < 6; i++) lastYear.push(`Dec  6 03:00:0${i} web sshd[900]: Failed password for deploy from 198.51.100.${i + 1} port ${40000 + i} ssh2`);
      lastYear.push("Dec 31 23:59:00 web CRON[9]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)");
      const r = run(REF, [["auth.log", current, REF - 3_600_000], ["auth.log.12", lastYear, Date.UTC(2026, 0, 1, 0, 0, 2)]]);
      const brute = r.attackedUsers.find((u) => u.user === "deploy");
      assert.equal(brute && new Date(brute.attackFirstMs).getUTCFullYear(), 2025, "last year's brute force is placed last year");
      assert.ok(!compromised(r), findingIds(r).join(", "));
    },
  );

  // ASVS 16.2.2. A log crossing New Year, read on 2 January without --year: the brute force straddles midnight and the
  // login follows. A sender adds lines of web's own name stamped "Jan  2 23:00" (ahead of the real New Year) and
  // "May 20", and one of another host at the top.
  test("held: a log spanning New Year read on 2 January places the brute force across midnight and the login after it in their years, forged lines of web's name or not", () => {
    const dec = ["Dec 31 23:50:00 web CRON[1]: pam_unix(cron:session): session closed for user root"];
    for (let i = 0; i < 3; i++) dec.push(`Dec 31 23:59:5${i} web sshd[90${i}]: Failed password for deploy from ${ATTACKER} port 4000${i} ssh2`);
    const jan: string[] = [];
    for (let i = 0; i < 3; i++) jan.push(`Jan  1 00:00:0${i} web sshd[91${i}]: Failed password for deploy from ${ATTACKER} port 4100${i} ssh2`);
    jan.push(`Jan  1 00:05:00 web sshd[950]: Accepted password for deploy from ${ATTACKER} port 42000 ssh2`);
    const REFJ = Date.UTC(2027, 0, 2, 9);
    const variants: Record<string, ReadonlyArray<readonly [string, readonly string[]]>> = {
      "one file": [["auth.log", [...dec, ...jan]]],
      "a forged Jan 2 line of web before New Year": [["auth.log", [...dec, "Jan  2 23:00:00 web rsyslogd: forged", ...jan]]],
      "forged lines at the top": [["auth.log", ["Jan  1 00:00:00 evil x: y", "May 20 00:00:00 web x: y", ...dec.slice(1), ...jan]]],
      "two files newest first": [["auth.log", jan], ["auth.log.1", dec]],
    };
    for (const [how, files] of Object.entries(variants)) {
      const r = run(REFJ, files);
      assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), `${how}: ${findingIds(r).join(", ")}`);
      assert.deepEqual(r.compromises.map((c) => new Date(c.timeMs).toISOString()), ["2027-01-01T00:05:00.000Z"], how);
    }
  });

  test("held: an archive read with --year, rotated files oldest first across New Year, years later: the brute force and the login keep their years", () => {
    const dec = [`Dec 31 23:59:50 web sshd[900]: Failed password for deploy from ${ATTACKER} port 40000 ssh2`];
    for (let i = 1; i < 5; i++) dec.push(`Dec 31 23:59:5${i} web sshd[90${i}]: Failed password for deploy from ${ATTACKER} port 4000${i} ssh2`);
    const jan = [`Jan  1 00:05:00 web sshd[950]: Accepted password for deploy from ${ATTACKER} port 42000 ssh2`];
    const r = run(Date.UTC(2030, 5, 1), [["auth.log.1", dec], ["auth.log", jan]], { year: 2026 });
    assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), findingIds(r).join(", "));
    assert.deepEqual(r.compromises.map((c) => new Date(c.timeMs).toISOString()), ["2027-01-01T00:05:00.000Z"]);
  });
});

describe("client addresses", () => {
  // ASVS 16.3.1. A dual-stack server also published behind a SIIT/NAT64 translator (64:ff9b::/96): one IPv4 attacker
  // alternates between the server's IPv4 address and the translated path, three tries each within a minute.
  test(
    "attack: one IPv4 client trying natively and through the 64:ff9b::/96 translator is one client: six failures in a minute make it an offender (was: two counters of three, 203.0.113.66 and 64:ff9b::cb00:7142, and no offender: a NAT64 address was counted by its IPv6 form alone)",
    () => {
      const lines: string[] = [];
      for (let i = 0; i < 3; i++) lines.push(`2026-12-06T10:00:0${i}Z web sshd[${800 + i}]: Failed password for invalid user oracle from ${ATTACKER} port ${5000 + i} ssh2`);
      for (let i = 0; i < 3; i++) lines.push(`2026-12-06T10:00:3${i}Z web sshd[${810 + i}]: Failed password for invalid user oracle from 64:ff9b::${ATTACKER} port ${5100 + i} ssh2`);
      const r = one(lines);
      assert.equal(r.stats.failures, 6);
      assert.equal(r.offenders.length, 1, `offenders: ${r.offenders.map((o) => `${o.address} (${o.failures})`).join(", ") || "none"}`);
      // Shown in the translated form (a failure came that way); nft blocks both ways in.
      assert.equal(r.offenders[0]?.address, "64:ff9b::cb00:7142");
      const nft = renderNft(r.offenders.map((o) => o.address));
      assert.match(nft, /^ {6}203\.0\.113\.66$/m);
      assert.match(nft, /^ {6}64:ff9b::cb00:7142$/m);
      // A login from either form after it is an offender's.
      for (const from of [ATTACKER, "64:ff9b::cb00:7142"]) {
        const login = one([...lines, `2026-12-06T10:02:00Z web sshd[900]: Accepted password for oracle from ${from} port 5200 ssh2`]);
        assert.ok(compromised(login), `login from ${from}: ${findingIds(login).join(", ")}`);
      }
    },
  );

  // ASVS 16.3.1. A LAN guest on eth0 fails five times from fe80::bad:1; the same address on eth1 (another link, another
  // host) and on "ETH0" (Linux interface names are case-sensitive: another interface) log in.
  test("held: a link-local offender is listed as an nft comment only, and its address on another interface is another host", () => {
    const lines = Array.from({ length: 5 }, (_, i) => `2026-12-06T10:00:0${i}Z web sshd[80${i}]: Failed password for invalid user guest from fe80::bad:1%eth0 port ${5000 + i} ssh2`);
    lines.push("2026-12-06T10:05:00Z web sshd[900]: Accepted password for admin from fe80::bad:1%eth1 port 40000 ssh2");
    lines.push("2026-12-06T10:05:01Z web sshd[901]: Accepted password for admin from fe80::bad:1%ETH0 port 40001 ssh2");
    const r = one(lines);
    assert.deepEqual(r.offenders.map((o) => o.address), ["fe80::bad:1%eth0"]);
    assert.ok(!compromised(r), findingIds(r).join(", "));
    const nft = renderNft(r.offenders.map((o) => o.address));
    assert.match(nft, /^# not blocked \(link-local, on interface eth0 only: block with iifname by hand\): fe80::bad:1%eth0$/m);
    assert.doesNotMatch(nft, /elements/, "no set holds any element");
  });

  // ASVS 16.3.1. RFC 8215's local-use prefix in RFC 6052's /48 format: 203.0.113.66 is 64:ff9b:1:cb00:71:4200:: and its
  // neighbour 203.0.113.67 is 64:ff9b:1:cb00:71:4300::, in the same /64. The attacker brute-forces; the neighbour
  // mistypes once and logs in.
  test("held: a 64:ff9b:1::/48 offender blocks only itself: another IPv4 client in its /64 is not framed", () => {
    const lines = Array.from({ length: 6 }, (_, i) => `2026-12-06T10:00:0${i}Z web sshd[80${i}]: Failed password for invalid user oracle from 64:ff9b:1:cb00:71:4200:: port ${5000 + i} ssh2`);
    lines.push("2026-12-06T10:01:00Z web sshd[850]: Failed password for admin from 64:ff9b:1:cb00:71:4300:: port 5100 ssh2");
    lines.push("2026-12-06T10:02:00Z web sshd[851]: Accepted password for admin from 64:ff9b:1:cb00:71:4300:: port 5100 ssh2");
    const r = one(lines);
    assert.deepEqual(r.offenders.map((o) => o.address), ["64:ff9b:1:cb00:71:4200::"]);
    assert.ok(!compromised(r), findingIds(r).join(", "));
    const nft = renderNft(r.offenders.map((o) => o.address));
    assert.match(nft, /^ {6}64:ff9b:1:cb00:71:4200::$/m);
    assert.doesNotMatch(nft, /\/(48|64|96)\b/, "no range");
  });
});

describe("user names", () => {
  // ASVS 16.3.1. sshd's log.c escapes every byte past ASCII (strnvis, VIS_OCTAL): a client typing "jürgen" is logged as
  // "j\303\274rgen", "JÜRGEN" as "J\303\234RGEN". On SSSD's AD provider (case_sensitive = false) both are the account
  // jürgen. A botnet guesses four times in each spelling within four minutes, then logs in.
  test(
    "attack: a directory account with a non-ASCII letter, spelled in both cases, does not double the guesses every per-user rule allows (was: no finding: userKey folded with toLowerCase, which left sshd's octal escapes alone, \\303\\274 ü and \\303\\234 Ü, so the two spellings were two users of four failures each)",
    () => {
      const lines: string[] = [];
      let n = 0;
      for (const spelling of ["j\\303\\274rgen", "J\\303\\234RGEN"]) {
        for (let k = 0; k < 4; k++, n++) {
          lines.push(`${rfc3339(Date.UTC(2026, 11, 6, 10, 0, n * 25))} web sshd[${1000 + n}]: Failed password for ${spelling} from 198.18.${n}.7 port ${50000 + n} ssh2`);
        }
      }
      lines.push(`${rfc3339(Date.UTC(2026, 11, 6, 10, 4))} web sshd[2000]: Accepted password for j\\303\\274rgen from 198.18.99.7 port 50000 ssh2`);
      const ids = findingIds(one(lines));
      assert.ok(ids.includes("authlog.success-after-failures/critical"), ids.join(", ") || "no findings");
      assert.ok(ids.includes("authlog.user-brute-force/medium"), ids.join(", ") || "no findings");
    },
  );

  test("held (baseline of the above): eight guesses in one spelling of the escaped name and the login after them are found", () => {
    const lines: string[] = [];
    for (let n = 0; n < 8; n++) lines.push(`${rfc3339(Date.UTC(2026, 11, 6, 10, 0, n * 25))} web sshd[${1000 + n}]: Failed password for j\\303\\274rgen from 198.18.${n}.7 port ${50000 + n} ssh2`);
    lines.push(`${rfc3339(Date.UTC(2026, 11, 6, 10, 4))} web sshd[2000]: Accepted password for J\\303\\274RGEN from 198.18.99.7 port 50000 ssh2`);
    const ids = findingIds(one(lines));
    assert.ok(ids.includes("authlog.success-after-failures/critical"), ids.join(", ") || "no findings");
  });

  // ASVS 16.3.1. On a host with local accounts (case-sensitive), "Admin" and "ADMIN" do not exist: sshd says "Invalid
  // user". A botnet hammers them; the real admin then logs in by password. Folding must not charge admin for them.
  test("held: failures on invalid case variants of an innocent user (Admin, ADMIN, aDMIN) are charged to no account, and the user's own login is not a compromise", () => {
    const lines: string[] = [];
    let n = 0;
    for (const spelling of ["Admin", "ADMIN", "aDMIN"]) {
      for (let k = 0; k < 8; k++, n++) {
        const at = rfc3339(Date.UTC(2026, 11, 6, 10, 0, n * 10));
        lines.push(`${at} web sshd[${1000 + n}]: Invalid user ${spelling} from 198.18.${n}.7 port ${50000 + n}`);
        lines.push(`${at} web sshd[${1000 + n}]: Failed password for invalid user ${spelling} from 198.18.${n}.7 port ${50000 + n} ssh2`);
      }
    }
    lines.push(`${rfc3339(Date.UTC(2026, 11, 6, 10, 5))} web sshd[2000]: Accepted password for admin from ${ADMIN} port 50000 ssh2`);
    const r = one(lines);
    assert.equal(r.stats.failures, 48, "each Invalid user line counts too, as fail2ban's");
    assert.deepEqual(r.attackedUsers.map((u) => u.user), []);
    assert.ok(!compromised(r), findingIds(r).join(", "));
  });
});

describe("journal repeat lines", () => {
  // ASVS 16.4.1. The first round's fix: no journal entry is read as a BSD repeat line. www-data writes it in the other
  // shapes the syslog reader knows: the hostless one (no _HOSTNAME: the line starts with its own words), FreeBSD's
  // "--- last message repeated N times ---", and with no SYSLOG_IDENTIFIER at all (journalctl prints _COMM).
  const T0 = Date.UTC(2026, 11, 6, 10);
  const entry = (s: number, fields: Record<string, string>): string =>
    JSON.stringify({ __REALTIME_TIMESTAMP: String((T0 + s * 1000) * 1000), _BOOT_ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", ...fields });
  const sshd = { _HOSTNAME: "web", _TRANSPORT: "syslog", _UID: "0", _GID: "0", _COMM: "sshd-session", _EXE: "/usr/lib/openssh/sshd-session", _SYSTEMD_UNIT: "ssh.service", _PID: "7001", SYSLOG_IDENTIFIER: "sshd-session", SYSLOG_PID: "7001" };
  const www = { _TRANSPORT: "syslog", _UID: "33", _GID: "33", _COMM: "logger", _EXE: "/usr/bin/logger", _SYSTEMD_UNIT: "php8.2-fpm.service", _PID: "31337" };

  test("held: www-data's repeat lines in the hostless, FreeBSD and identifier-less shapes replay no sshd failure of the admin", () => {
    const forged: Record<string, Record<string, string>> = {
      hostless: { ...www, SYSLOG_IDENTIFIER: "last", MESSAGE: "message repeated 20 times" },
      "no host, message only": { ...www, MESSAGE: "last message repeated 20 times" },
      freebsd: { ...www, _HOSTNAME: "web", SYSLOG_IDENTIFIER: "syslogd", MESSAGE: "--- last message repeated 20 times ---" },
      "no identifier": { ...www, _HOSTNAME: "web", _COMM: "syslogd", MESSAGE: "last message repeated 20 times" },
    };
    for (const [shape, fields] of Object.entries(forged)) {
      const r = one([
        entry(0, { ...sshd, MESSAGE: `Failed password for admin from ${ADMIN} port 50000 ssh2` }),
        entry(0.5, fields),
        entry(3, { ...sshd, MESSAGE: `Accepted password for admin from ${ADMIN} port 50000 ssh2` }),
      ]);
      assert.equal(r.stats.failures, 1, `${shape}: one failure, as sshd wrote`);
      assert.deepEqual(r.offenders, [], shape);
      assert.ok(!compromised(r), `${shape}: ${findingIds(r).join(", ")}`);
    }
  });
});

describe("memory per key", () => {
  // ASVS 15.2.2 (resources). --max-retry and --guess-min go up to 1,000 and the tables hold 500,000 addresses (and as
  // many /64s) and 100,000 users. One IPv6 client gives each connection a new address of its /64; a central log's
  // sender writes any number of addresses and (valid-looking) users. Here 1,000 one-off failures, each from an address
  // in its own /64 on its own user, at --max-retry 1000 --guess-min 1000.
  test(
    "attack: a one-off failure does not cost memory in proportion to --max-retry and --guess-min (was: about 64 KB of typed arrays per one-off failure, address 16 KB, its /64 16 KB, its user 32 KB: each ring was made at 2 × --max-retry or 2 × --guess-min numbers at a key's first failure)",
    () => {
      const a = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0, maxRetry: 1000, guessMin: 1000 });
      a.beginFile("auth.log");
      const before = process.memoryUsage().arrayBuffers;
      const N = 1000;
      for (let i = 0; i < N; i++) {
        const h = i.toString(16);
        a.line(`${rfc3339(Date.UTC(2026, 11, 6, 10, 0, i % 60))} web sshd[${1000 + i}]: Failed password for user${i} from 2001:db8:${h}:1::7 port ${40000 + i} ssh2`, i + 1);
      }
      const perFailure = (process.memoryUsage().arrayBuffers - before) / N;
      const r = a.finish();
      assert.equal(r.stats.failures, N);
      assert.ok(perFailure < 2048, `${Math.round(perFailure)} bytes of typed arrays per one-off failure`);
    },
  );
});
