// Red team, round thirty-nine: `bulwark check authlog` (src/checks/authlog/) after 5ddce85, which (a) counts an address of
// NAT64's well-known 64:ff9b::/96 under the IPv4 address it embeds (address.ts clientKeyOf; nft.ts blocks both forms),
// (b) keys user names after decoding sshd's octal escapes, lower-casing and NFC (analyzer.ts userKey), (c) places each
// file's zone-less stamps against the earlier of the reference time and the file's mtime (year-resolver.ts
// fileReferenceMs; reader.ts analyzeFile), and (d) grows each key's rings from 8 numbers (time-window.ts newRing,
// ringFor). Attackers: a remote SSH client (its user name bytes, which sshd's log.c writes with VIS_OCTAL, and its
// address, through a translator or not), a local user writing to syslog or the journal (`logger`, raw bytes, lines up
// to rsyslog's 8 KiB), another host sending to a central syslog file (stamps, host names, where its lines fall), and
// the owner of a log file (its mtime). Library runs (analyzer, findings, nft renderer, analyzeFile on files in a temp
// dir, removed after). "held:" tests show the code holding; tests marked todo are findings, asserting what a correct
// check does.
//
// Tried and found; all three fixed since (analyzer.ts userKey folds through upper case after NFC, and keys a name past
// ASCII longer than 256 characters lower-cased only; nft.ts renderNft keeps the IPv4 client in the _v4 set unless an
// ignore names it or that one translated address):
// 1. userKey folded with toLowerCase, a lower-case *mapping*, not Unicode case folding (CaseFolding.txt, or the upper-case
//    compare of AD/winbind): names a case-insensitive directory takes for one account still split. "ΝΙΚΟΣ" keys as
//    "νικος" (JS's final-sigma rule) but "νικοσ" as itself; "poſtgres" (U+017F long s, folds to s) is not "postgres";
//    "µaria" (U+00B5 micro sign, folds to μ) is not "μaria". A botnet alternating two spellings gets twice the guesses
//    every per-user rule allows, the docs' own 38b finding 5 one character further. (ß/ẞ against "ss" and Turkish
//    dotless ı against i fold together only under full or upper-case folding: mentioned, not asserted.)
// 2. userKey's String.prototype.normalize("NFC") sorts each run of combining marks by insertion (ICU's reordering
//    buffer): quadratic in the run. A forged failure line (logger, a central syslog sender, raw UTF-8 bytes) naming
//    "a" and 3,900 combining marks in descending class order costs some 27 ms in userKey, against 0.3 ms for an
//    8 KiB ASCII name (measured informally on this machine; no timing asserted): 100 times the per-byte cost of the
//    check, on every failure and every Accepted line. Before 5ddce85 the key was toLowerCase alone, linear.
// 3. nft: a record that offended natively takes its translated form once one failure comes through the translator,
//    and then an --ignore covering the translator's prefix (64:ff9b::/96, a workaround admins had for the older
//    /64 counting) keeps the IPv4 address out of the _v4 set too (nft.ts renderNft: ignore.reason(a) of the shown
//    form decides for both). Five native failures and one through the translator: nothing blocked; without that one
//    failure, 203.0.113.66 is blocked. Before 5ddce85 (two records) it was blocked as well.
//
// Held: the /96 client spelled every way sshd or a forger can (mixed case, uncompressed, leading zeros, a dotted-quad
// tail, with zeros in it) is one client, blocked in both forms; the clientKeyOf cache churned by 5,000 one-off
// translated addresses; an IPv4 offender's login through the translator and the reverse, across files read newest
// first; a spray split across both forms; --ignore of the IPv4 network or of the single translated address; invalid
// spellings that fold onto an account (Kelvin sign, overlong UTF-8, CESU surrogates, an escaped backslash before an
// octal run) charge it nothing and make its own login no compromise; a file whose mtime lies in the future, or in
// 1970, is placed by the reference time; a rotation at New Year with the live file appended after it (copytruncate), in
// one thread and with the worker; the rings grown from 8 judge every failure as a full ring would (an independent model
// of both windows, --max-retry 1 to 17 and --guess-min 1 to 40, out-of-order stamps, bans restarting the counts, and
// NAT64 spellings of one address mixed in).
//
// Not pursued: an mtime set back by a file's owner moves the file's lines a year back, but whoever can touch a log can
// edit it too; stdin ("-") has no mtime even when redirected from a regular file (documented: "Stdin has no
// modification time"); an offender that failed only natively is blocked only in the _v4 set, so it can go on through
// the translator until the next run (docs/checks.md blocks the translated form only once a failure came that way).
import assert from "node:assert/strict";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { clientKeyOf } from "../src/checks/authlog/address.ts";
import { AuthLogAnalyzer } from "../src/checks/authlog/analyzer.ts";
import { authLogFindings } from "../src/checks/authlog/findings.ts";
import { IgnoreList } from "../src/checks/authlog/ignore-list.ts";
import { renderNft } from "../src/checks/authlog/nft.ts";
import { analyzeFile, analyzeStream } from "../src/checks/authlog/reader.ts";
import { analyzeLines } from "../src/checks/authlog/test-helpers.ts";
import type { AuthLogOptions, AuthLogResult } from "../src/checks/authlog/types.ts";

/** The log is read on 7 December 2026 at noon UTC. */
const REF = Date.UTC(2026, 11, 7, 12);
const ATTACKER = "203.0.113.66";
const TRANSLATED = "64:ff9b::cb00:7142";
const ADMIN = "192.0.2.10";

const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(".000Z", "Z");
const findingIds = (r: AuthLogResult): string[] => authLogFindings(r).map((f) => `${f.id}/${f.severity}`);
const one = (lines: readonly string[], options: Partial<AuthLogOptions> = {}): AuthLogResult => analyzeLines(lines, { referenceMs: REF, utcOffsetMinutes: 0, ...options });
const compromised = (r: AuthLogResult): boolean => findingIds(r).some((id) => id.startsWith("authlog.success-after"));
/** A name as sshd's log.c writes it (strnvis, VIS_OCTAL): every byte past ASCII as \ooo. */
const escaped = (name: string): string => [...Buffer.from(name, "utf8")].map((b) => (b > 0x7f ? `\\${b.toString(8).padStart(3, "0")}` : String.fromCharCode(b))).join("");
/** Raw UTF-8 as it lies in a file a forger wrote: the analyzer reads lines as latin1, one char per byte. */
const raw = (text: string): string => Buffer.from(text, "utf8").toString("latin1");
const fail = (ms: number, pid: number, user: string, from: string, invalid = false): string =>
  `${rfc3339(ms)} web sshd[${pid}]: Failed password for ${invalid ? "invalid user " : ""}${user} from ${from} port ${40000 + (pid % 20000)} ssh2`;
const accept = (ms: number, pid: number, user: string, from: string, method = "password"): string => `${rfc3339(ms)} web sshd[${pid}]: Accepted ${method} for ${user} from ${from} port 41000 ssh2`;
const T0 = Date.UTC(2026, 11, 6, 10);

describe("user names", () => {
  // ASVS 16.3.1, 6.3.1. A directory account (SSSD's AD provider, winbind: case-insensitive, the docs' premise for
  // folding) with a Greek name, an account with an s, one with a μ. A botnet guesses four times in each of two
  // spellings the directory takes for one account (Unicode case folding: ς and σ, ſ and s, µ and μ are one; upper-case
  // compare as AD does: both are Σ, S, Μ), within four minutes, from eight addresses; then logs in by password.
  test(
    "attack: spellings one by Unicode case folding (final sigma, long s, micro sign) are one user: eight guesses in two spellings are a brute force and the login after it a compromise",
    () => {
      const pairs: ReadonlyArray<readonly [string, string]> = [
        ["ΝΙΚΟΣ", "νικοσ"],
        ["poſtgres", "postgres"],
        ["µaria", "μaria"],
      ];
      for (const [a, b] of pairs) {
        const lines: string[] = [];
        for (let n = 0; n < 8; n++) lines.push(fail(T0 + n * 25_000, 1000 + n, escaped(n % 2 === 0 ? a : b), `198.18.${n}.7`));
        // The baseline: eight guesses in one spelling are found.
        const alone = one(lines.map((l, n) => (n % 2 === 1 ? l.replace(`for ${escaped(b)} from`, `for ${escaped(a)} from`) : l)));
        assert.ok(findingIds(alone).includes("authlog.user-brute-force/medium"), `${a} alone: ${findingIds(alone).join(", ")}`);
        lines.push(accept(T0 + 240_000, 2000, escaped(b), "198.18.99.7"));
        const r = one(lines);
        assert.equal(r.stats.failures, 8);
        assert.deepEqual(r.attackedUsers.map((u) => u.failures), [8], `${a} / ${b}: ${r.attackedUsers.map((u) => `${u.user} (${u.failures})`).join(", ") || "no user attacked"}`);
        assert.ok(compromised(r), `${a} / ${b}: ${findingIds(r).join(", ") || "no findings"}`);
      }
    },
  );

  // ASVS 16.3.1 (resources: 15.2.2). A local user's `logger --size 8192` (or a central syslog sender) writes raw UTF-8: a
  // failure whose user name is "a" and 3,900 combining marks, all acute (class 230) first, then all grave-below (220):
  // NFC must reorder them, and ICU's normaliser inserts each one where it belongs. Counted here, not timed: how long a
  // run of combining marks reaches String.prototype.normalize. sshd's own line (log.c, at most 1 KiB, each mark
  // written as two octal escapes, 8 characters) holds at most 128; 512 leaves room for any sane bound.
  test(
    "attack: a forged 8 KiB user name of combining marks does not cost the check quadratic work per line (no more than 512 marks in a row reach the NFC normaliser)",
    () => {
      const name = raw(`a${"\u0301".repeat(1950)}${"\u0316".repeat(1950)}`);
      const lines = Array.from({ length: 20 }, (_, i) => fail(T0 + i * 1000, 3000 + i, name, `198.18.1.${i + 1}`));
      assert.ok((lines[0] as string).length < 8192, "under the line limit");
      const original = String.prototype.normalize;
      let longestRun = 0;
      String.prototype.normalize = function (this: string, form?: string): string {
        const runs = String(this).match(/\p{M}+/gu) ?? [];
        for (const run of runs) longestRun = Math.max(longestRun, [...run].length);
        return original.call(this, form);
      };
      let r: AuthLogResult;
      try {
        r = one(lines);
      } finally {
        String.prototype.normalize = original;
      }
      assert.equal(r.stats.failures, 20, "every forged failure is read");
      assert.ok(longestRun <= 512, `a run of ${longestRun} combining marks reached the normaliser`);
    },
  );

  // ASVS 16.3.1. False critical: a remote client (or a forger) guesses at spellings that fold, byte for byte or by
  // NFC, onto "keith" or "admin" but that no account has: sshd logs them as invalid users. Overlong UTF-8 and CESU
  // surrogates are no UTF-8 (the strict decoder keeps them as written), an escaped backslash before an octal run is a
  // backslash and digits, the Kelvin sign (U+212A) is folded to k (NFC and lower case) but charged to no one, invalid.
  test("held: invalid spellings folding onto an account (Kelvin sign, overlong and CESU encodings, an escaped backslash before octal digits) charge it nothing, and its own login is no compromise", () => {
    const spellings: Record<string, string> = {
      kelvin: `\\342\\204\\252eith`,
      overlong: `\\301\\253eith`,
      "overlong of ü": `j\\340\\203\\274rgen`,
      cesu: `keith\\355\\240\\200`,
      backslash: `\\\\153eith`,
    };
    for (const [how, name] of Object.entries(spellings)) {
      const lines: string[] = [];
      for (let n = 0; n < 8; n++) {
        lines.push(`${rfc3339(T0 + n * 10_000)} web sshd[${1000 + n}]: Invalid user ${name} from 198.18.${n}.7 port ${50000 + n}`);
        lines.push(fail(T0 + n * 10_000, 1000 + n, name, `198.18.${n}.7`, true));
      }
      lines.push(accept(T0 + 300_000, 2000, "keith", ADMIN));
      lines.push(accept(T0 + 300_000, 2001, "j\\303\\274rgen", ADMIN));
      const r = one(lines);
      assert.deepEqual(r.attackedUsers, [], how);
      assert.ok(!compromised(r), `${how}: ${findingIds(r).join(", ")}`);
    }
    // And valid ones (a forged line without "invalid user"): the strict decoder keeps overlong and CESU as written.
    for (const name of [`\\301\\253eith`, `keith\\355\\240\\200`, `\\\\153eith`]) {
      const r = one([...Array.from({ length: 8 }, (_, n) => fail(T0 + n * 10_000, 1000 + n, name, `198.18.${n}.7`)), accept(T0 + 300_000, 2000, "keith", ADMIN)]);
      assert.deepEqual(r.attackedUsers.map((u) => u.user), [name]);
      assert.ok(!compromised(r), `${name}: ${findingIds(r).join(", ")}`);
    }
  });
});

describe("NAT64 clients", () => {
  // ASVS 16.3.1. sshd writes inet_ntop's spelling (64:ff9b::cb00:7142); a forger, or a syslog relay, any other: the
  // dotted-quad tail, upper case, uncompressed groups with leading zeros, a dotted tail with leading zeros.
  test("held: one client spelled every way (mixed case, uncompressed, leading zeros, dotted-quad tail) and natively is one offender, blocked in both forms", () => {
    const forms = [ATTACKER, "64:ff9b::203.0.113.66", "64:FF9B::CB00:7142", "0064:ff9b:0000:0000:0000:0000:cb00:7142", "64:ff9b::203.000.113.066", "64:ff9b:0::0:CB00:7142"];
    const lines = forms.map((from, i) => fail(T0 + i * 5000, 800 + i, "oracle", from, true));
    const r = one(lines);
    assert.equal(r.stats.failures, 6);
    assert.deepEqual(r.offenders.map((o) => [o.address, o.failures, o.bans]), [[TRANSLATED, 6, 1]]);
    const nft = renderNft(r.offenders.map((o) => o.address));
    assert.match(nft, /^ {6}203\.0\.113\.66$/m);
    assert.match(nft, /^ {6}64:ff9b::cb00:7142$/m);
    assert.match(nft, /^# SSH offenders found by bulwark check authlog: 1 IPv4, 1 IPv6\.$/m);
  });

  // ASVS 16.3.1. clientKeyOf keeps 4,096 addresses and is cleared when full; the analyzer's one-entry cache compares the
  // record's shown address. 5,000 one-off translated clients, then the attacker alternating forms between more of them.
  test("held: 5,000 one-off translated clients churning the clientKeyOf cache leave the attacker's two forms one count, and its login from the native form an offender's", () => {
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++) lines.push(fail(T0 + i * 10, 10_000 + i, "guest", `64:ff9b::${(0x0a000000 + i).toString(16).replace(/^(.+)(.{4})$/, "$1:$2")}`, true));
    for (let i = 0; i < 6; i++) {
      lines.push(fail(T0 + 60_000 + i * 1000, 20_000 + i, "oracle", i % 2 === 0 ? ATTACKER : TRANSLATED, true));
      lines.push(fail(T0 + 60_000 + i * 1000, 21_000 + i, "guest", `64:ff9b::a00:${(i + 0x2000).toString(16)}`, true));
    }
    lines.push(accept(T0 + 120_000, 30_000, "oracle", ATTACKER, "publickey"));
    const r = one(lines);
    assert.equal(r.stats.failures, 5012);
    assert.deepEqual(r.offenders.map((o) => [o.address, o.failures]), [[TRANSLATED, 6]]);
    assert.deepEqual(r.compromises.map((c) => [c.address, c.offender?.address]), [[ATTACKER, TRANSLATED]]);
  });

  // ASVS 16.3.1. Files read newest first (auth.log*): the login is read before the brute force, and the second look
  // at the end goes by the stamps (#offenderInOtherFile, #slowSuspect with clientKeyOf).
  test("held: a brute force natively in auth.log.1 and a login through the translator in auth.log (and the reverse), read newest first, is a compromise; a spray split across both forms and a password login make the slow finding", () => {
    for (const [brute, login] of [
      [ATTACKER, TRANSLATED],
      [TRANSLATED, ATTACKER],
    ] as const) {
      const a = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0 });
      a.beginFile("auth.log", REF - 60_000);
      a.line(accept(T0 + 600_000, 900, "deploy", login, "publickey"), 1);
      a.beginFile("auth.log.1", T0 + 300_000);
      for (let i = 0; i < 5; i++) a.line(fail(T0 + i * 1000, 800 + i, "oracle", brute, true), i + 1);
      const r = a.finish();
      assert.deepEqual(r.compromises.map((c) => [c.address, c.user]), [[login, "deploy"]], `${brute} then ${login}`);
      assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), findingIds(r).join(", "));
    }
    // Spraying: 20 names from one client at 30-minute intervals (no brute force), half each way, then a password login.
    const lines = Array.from({ length: 20 }, (_, i) => fail(T0 + i * 1_800_000, 100 + i, `u${i}`, i % 2 === 0 ? ATTACKER : TRANSLATED, true));
    for (const from of [ATTACKER, TRANSLATED]) {
      const r = one([...lines, accept(T0 + 20 * 1_800_000, 999, "deploy", from)]);
      assert.deepEqual(r.offenders, []);
      assert.ok(findingIds(r).includes("authlog.success-after-slow-failures/high"), `${from}: ${findingIds(r).join(", ")}`);
    }
  });

  // ASVS 16.3.1 (no self-denial). The admins' IPv4 network kept out (--ignore 192.0.2.0/24): their translated form is too
  // (documented). The single translated address of a client kept out: the record it shows is that address.
  test("held: --ignore of the IPv4 network keeps a client's translated form out; --ignore of a translated address keeps that client out in both forms", () => {
    const admin = Array.from({ length: 6 }, (_, i) => fail(T0 + i * 1000, 700 + i, "admin", i % 2 === 0 ? ADMIN : "64:ff9b::c000:20a"));
    const shown = one(admin).offenders.map((o) => o.address);
    assert.deepEqual(shown, ["64:ff9b::c000:20a"]);
    for (const entry of ["192.0.2.0/24", "64:ff9b::c000:20a"]) {
      const nft = renderNft(shown, { ignore: new IgnoreList([entry]) });
      assert.match(nft, /^# SSH offenders found by bulwark check authlog: 0 IPv4, 0 IPv6\.$/m, entry);
      assert.doesNotMatch(nft, /elements/, entry);
    }
  });

  // ASVS 16.3.1. A server behind a SIIT translator whose admin kept the translator's whole prefix out of the blocklist
  // (--ignore 64:ff9b::/96: before 38b, 64:ff9b::/64 was one network and blocking it blocked every IPv4 client). The
  // attacker brute-forces natively (five failures in a minute: an offender at its IPv4 address), then tries once more
  // through the translator.
  test(
    "attack: one failure through the translator does not take a native offender's IPv4 address out of the _v4 set when --ignore covers the translator's prefix",
    () => {
      const native = Array.from({ length: 5 }, (_, i) => fail(T0 + i * 10_000, 800 + i, "root", ATTACKER));
      for (const entry of ["64:ff9b::/96", "64:ff9b::/32"]) {
        const ignore = new IgnoreList([entry]);
        const baseline = renderNft(one(native).offenders.map((o) => o.address), { ignore });
        assert.match(baseline, /^ {6}203\.0\.113\.66$/m, `${entry}: natively alone, blocked`);
        const r = one([...native, fail(T0 + 60_000, 900, "root", TRANSLATED)]);
        assert.deepEqual(r.offenders.map((o) => [o.address, o.failures]), [[TRANSLATED, 6]]);
        const nft = renderNft(r.offenders.map((o) => o.address), { ignore });
        assert.match(nft, /^ {6}203\.0\.113\.66$/m, `${entry}:\n${nft}`);
      }
    },
  );
});

describe("each file's year by its mtime", () => {
  // Files in a temp dir, read by analyzeFile (which takes the mtime) as `check authlog` reads them.
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "bulwark-authlog-rt39-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const bsd = (ms: number): string => {
    const d = new Date(ms);
    const month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][d.getUTCMonth()];
    return `${month} ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
  };
  async function readAll(files: ReadonlyArray<readonly [string, readonly string[], number | null]>, workers: boolean, ref = REF): Promise<AuthLogResult> {
    const a = new AuthLogAnalyzer({ referenceMs: ref, utcOffsetMinutes: 0, workers });
    for (const [name, lines, mtime] of files) {
      const path = join(dir, name);
      await writeFile(path, `${lines.join("\n")}\n`);
      if (mtime !== null) await utimes(path, new Date(mtime), new Date(mtime));
      await analyzeFile(a, path);
    }
    return a.finish();
  }

  // ASVS 16.2.2. A host whose clock ran a week ahead wrote the file (or it was copied from one): its mtime lies after
  // the reference. The brute force yesterday and the login after it are this year's, as without an mtime; and a file
  // whose mtime was set to 0 or 1 s (a build store, `touch -d @0`) says nothing.
  test("held: an mtime after the reference, or in 1970, places the lines by the reference time: yesterday's brute force and login stay a compromise", async () => {
    const lines = Array.from({ length: 5 }, (_, i) => `${bsd(T0 + i * 1000)} web sshd[${800 + i}]: Failed password for deploy from ${ATTACKER} port ${40000 + i} ssh2`);
    lines.push(`${bsd(T0 + 60_000)} web sshd[900]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`);
    for (const mtime of [REF + 7 * 86_400_000, 0, 1000]) {
      for (const workers of [false, true]) {
        const r = await readAll([[`auth.log.${mtime}`, lines, mtime]], workers);
        assert.deepEqual(r.compromises.map((c) => new Date(c.timeMs).toISOString()), ["2026-12-06T10:01:00.000Z"], `mtime ${mtime}, workers ${workers}`);
      }
    }
  });

  // ASVS 16.2.2, 16.3.1. Honest use, weekly rotation with copytruncate at New Year: logrotate copies auth.log to
  // auth.log.1 at 00:00:05 on 1 January (the copy's mtime) and truncates auth.log, which goes on being appended to. The
  // brute force ran over midnight (its last failures in both files: copied, then written after the copy) and the
  // attacker logged in at 00:02. Read on 2 January, newest first, without --year.
  test("held: a brute force straddling a copytruncate rotation at New Year and the login after it are placed in their years, in one thread and with the worker", async () => {
    const NY = Date.UTC(2027, 0, 1);
    const rotated = [`${bsd(NY - 7 * 86_400_000)} web CRON[1]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)`];
    for (let i = 0; i < 3; i++) rotated.push(`${bsd(NY - 3000 + i * 1000)} web sshd[${800 + i}]: Failed password for deploy from ${ATTACKER} port ${40000 + i} ssh2`);
    // Written between the copy and the truncation: in both files (copytruncate's overlap), stamped after New Year.
    rotated.push(`${bsd(NY + 2000)} web sshd[803]: Failed password for deploy from ${ATTACKER} port 40003 ssh2`);
    const live = [`${bsd(NY + 2000)} web sshd[803]: Failed password for deploy from ${ATTACKER} port 40003 ssh2`];
    live.push(`${bsd(NY + 8000)} web sshd[804]: Failed password for deploy from ${ATTACKER} port 40004 ssh2`);
    live.push(`${bsd(NY + 120_000)} web sshd[950]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`);
    for (const workers of [false, true]) {
      const r = await readAll([["auth.log", live, NY + 3_600_000], ["auth.log.1", rotated, NY + 5000]], workers, Date.UTC(2027, 0, 2, 9));
      assert.deepEqual(r.compromises.map((c) => new Date(c.timeMs).toISOString()), ["2027-01-01T00:02:00.000Z"], `workers ${workers}: ${findingIds(r).join(", ")}`);
      assert.ok(findingIds(r).includes("authlog.success-after-failures/critical"), findingIds(r).join(", "));
    }
  });

  // ASVS 16.2.2. Stdin has no mtime (documented): a stream is placed by the reference time, as before 5ddce85.
  test("held: a stream (stdin) is placed by the reference time: this week's brute force and login are a compromise", async () => {
    const text = [0, 1, 2, 3, 4].map((i) => `${bsd(T0 + i * 1000)} web sshd[${800 + i}]: Failed password for deploy from ${ATTACKER} port ${40000 + i} ssh2`);
    text.push(`${bsd(T0 + 60_000)} web sshd[900]: Accepted password for deploy from ${ATTACKER} port 41000 ssh2`);
    const a = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0 });
    await analyzeStream(a, "-", Readable.from([Buffer.from(`${text.join("\n")}\n`)]));
    const r = a.finish();
    assert.deepEqual(r.compromises.map((c) => new Date(c.timeMs).toISOString()), ["2026-12-06T10:01:00.000Z"]);
  });
});

describe("rings grown as failures come", () => {
  // An independent model of both windows (docs/checks.md, time-window.ts): after each failure, met when the last n read
  // lie within the window, or when the failure was kept among the latest n by stamp (a full half drops a time older
  // than every one held) and those n lie within the window. An address restarts both at a ban; a user never does.
  function model(times: readonly number[], n: number, windowMs: number, restart: boolean): boolean[] {
    let read: number[] = [];
    let latest: number[] = [];
    return times.map((t) => {
      read.push(t);
      if (read.length > n) read.shift();
      const readMet = read.length === n && Math.abs(t - (read[0] as number)) <= windowMs;
      const kept = latest.length < n || n === 1 || t >= (latest[latest.length - 1] as number) || t > (latest[0] as number);
      if (kept) {
        latest.push(t);
        latest.sort((x, y) => x - y);
        if (latest.length > n) latest.shift();
      }
      const stampMet = kept && latest.length === n && (latest[n - 1] as number) - (latest[0] as number) <= windowMs;
      const met = readMet || stampMet;
      if (met && restart) [read, latest] = [[], []];
      return met;
    });
  }
  /** Whether a key's failures, read in this order in one file, were logged out of order: one stamped more than --find-time (10 minutes) before one read earlier. */
  const outOfOrder = (times: readonly number[]): boolean => {
    let max = Number.NEGATIVE_INFINITY;
    for (const t of times) {
      if (t < max - 600_000) return true;
      if (t > max) max = t;
    }
    return false;
  };
  // One address in six spellings (native and translated), another; three users, one in escaped upper and lower case.
  const ADDRESSES = [[ATTACKER, TRANSLATED, "64:ff9b::203.0.113.66", "64:FF9B:0:0:0:0:CB00:7142"], ["198.51.100.7"]] as const;
  const USERS = [["alice"], ["bob", "BOB"], ["\\303\\274ser", "\\303\\234SER"]] as const;
  const event = fc.record({ a: fc.integer({ min: 0, max: 1 }), u: fc.integer({ min: 0, max: 2 }), spelling: fc.nat(3), minute: fc.integer({ min: 0, max: 20 }), far: fc.integer({ min: -20, max: 20 }) });
  const lineOf = (e: { a: number; u: number; spelling: number }, ms: number, i: number): string => {
    const a = ADDRESSES[e.a] as readonly string[];
    const u = USERS[e.u] as readonly string[];
    return fail(ms, 1000 + i, u[e.spelling % u.length] as string, a[e.spelling % a.length] as string);
  };

  // ASVS 16.3.1. Stamps out of order (a central log's sender chooses them), bans restarting an address's counts, rings
  // crossing 8 → 16 → 2n at --max-retry 1, 2, 3, 4, 5, 8, 9, 17.
  test("held: every address's bans and every user's brute-force window, at --max-retry 1 to 17, are those of the model", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 3, 4, 5, 8, 9, 17), fc.array(event, { minLength: 20, maxLength: 200 }), (n, events) => {
        // Most within 20 minutes; one in four 13 to 20 hours away (before or after), as forged stamps are.
        const times = events.map((e) => T0 + e.minute * 60_000 + (Math.abs(e.far) > 12 ? e.far * 3_600_000 : 0));
        const r = one(events.map((e, i) => lineOf(e, times[i] as number, i)), { maxRetry: n });
        assert.equal(r.stats.failures, events.length);
        for (let a = 0; a < ADDRESSES.length; a++) {
          const mine = times.filter((_, i) => events[i]?.a === a);
          const bans = model(mine, n, 600_000, true).filter(Boolean).length;
          const rec = r.offenders.find((o) => clientKeyOf(o.address) === clientKeyOf(ADDRESSES[a]?.[0] as string));
          // A key logged out of order (out-of-order.ts) is also judged exactly by stamp at the end: that only adds bans.
          if (outOfOrder(mine)) assert.ok((rec?.bans ?? 0) >= bans, `address ${a}, n ${n}`);
          else assert.equal(rec?.bans ?? 0, bans, `address ${a}, n ${n}`);
        }
        for (let u = 0; u < USERS.length; u++) {
          const idx = events.flatMap((e, i) => (e.u === u ? [i] : []));
          const met = model(idx.map((i) => times[i] as number), n, 600_000, false);
          const first = met.indexOf(true);
          const last = met.lastIndexOf(true);
          const rec = r.attackedUsers.find((x) => (USERS[u] as readonly string[]).includes(x.user));
          const want = first < 0 ? null : [times[idx[first] as number], times[idx[last] as number], last + 1];
          if (outOfOrder(idx.map((i) => times[i] as number))) {
            // Judged exactly too: windows by stamp are added, so the attack starts no later and ends no earlier.
            if (want !== null) assert.ok(rec && rec.attackFirstMs <= (want[0] as number) && rec.attackLastMs >= (want[1] as number), `user ${u}, n ${n}`);
          } else assert.deepEqual(rec ? [rec.attackFirstMs, rec.attackLastMs, rec.attackFailures] : null, want, `user ${u}, n ${n}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  // ASVS 16.3.1. The guessing rule's ring (2 × --guess-min, over the 24-hour window) grown the same way: --guess-min 1, 2,
  // 3, 4, 5, 8, 9, 17, 40, failures spread over four days out of order. --max-retry 1 lists every user with a failure.
  test("held: every user's guessing marks, at --guess-min 1 to 40, are those of the model", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 3, 4, 5, 8, 9, 17, 40), fc.array(event, { minLength: 20, maxLength: 200 }), (g, events) => {
        const times = events.map((e) => T0 + (e.minute + e.far * 3) * 1_200_000);
        const r = one(events.map((e, i) => lineOf(e, times[i] as number, i)), { maxRetry: 1, guessMin: g });
        for (let u = 0; u < USERS.length; u++) {
          const idx = events.flatMap((e, i) => (e.u === u ? [i] : []));
          const met = model(idx.map((i) => times[i] as number), g, 24 * 3_600_000, false);
          const last = met.lastIndexOf(true);
          const rec = r.attackedUsers.find((x) => (USERS[u] as readonly string[]).includes(x.user));
          assert.equal(rec === undefined, idx.length === 0, `user ${u}`);
          assert.equal(rec?.guessed?.lastMs ?? null, last < 0 ? null : times[idx[last] as number], `user ${u}, g ${g}`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
