// Red team, round forty, second look: `bulwark check authlog` (src/checks/authlog/) after a93a6ab, which judges exactly
// (out-of-order.ts, analyzer.ts #order and #judgeOutOfOrder) every address, /64 and user whose failure is stamped more
// than --find-time before one read earlier for it in the same file: from then on all its failures are kept (seeded with
// what its two windows held), under one bound for all such keys (limits.outOfOrder, 2,000,000), and judged by stamp at
// the end; past the bound, or when failures dropped before the disorder lie within --find-time of later ones
// (`nearLost`) and no window was found, `authlog.analysis-incomplete` (high) names the key (at most 20 names).
// Attackers: a remote SSH client (its failures only), a local user writing to the journal or syslog (`logger`), another
// host sending to a central syslog file: the last two choose their lines' stamps and where they fall. In-process
// library runs only (analyzer, findings, analyzeStream with and without the worker); no files, no network.
//
// Tried: the admitted loss (four real, forged, four real) and its price; forged keys named before the attacker's;
// filling the 2,000,000 bound and the 20 names; the 20,000 kept logins; disorder in the /64 and in the user key; forged
// stamps exactly --find-time after (the `<`); a burst straddling logrotate with the forged lines in the newer file;
// honest rotated files joined on stdin newest first; a DST fall-back with a job failing every 10 or 12 minutes; the
// worker against one thread; many keys each out of order once (cost, measured by hand).
//
// Found (todo tests below, each "finding: …"; fixed since: 5, 6, 1, 4, 3, 2 by naming, then by judging: the bound is
// shared fairly, a largest key giving up its oldest failure to a smaller one):
// 1. The names are a list of 20 filled in table order: 20 forged keys, each 6 lines (five failures an hour apart, one
//    stamped before them) read before the attack, fill `uncertain`; the admitted loss (4 real, 5 forged stamped after,
//    4 real: 5 forged lines) then leaves the password login after the burst with no critical finding and an
//    analysis-incomplete that names only the decoys (title: three decoys). 125 lines in all. Fix: name the keys that
//    matter first (a key with a login from it or for it after its failures: its pair, at high), not the first 20 in
//    table order; or keep all uncertain names in the evidence (they are records already, bounded by the tables).
// 2. The bound is shared and first come, first served: one forged address and user (both keys count each line, so
//    about 1,000,000 lines at the default bound, read in ~9 s) fill it, 20 more forged keys fill `unheld`'s 20 names,
//    and the attacker's own key, out of order after that, is judged as read only: red team 38b's attack (two forged
//    failures per real one, stamped in 2099) hides the brute force and the login again; the high finding names only
//    decoys. Fix: a share per key (a key past it keeps its latest failures by stamp, dropping the oldest), or name in
//    `unheld` every key that has a login after its unheld failures, raising that login (high, "judged incompletely").
// 3. The exact windows are not looked at by the 20,000-login bound: 20,000 forged "Accepted publickey" lines before
//    the attack, and the real password login after a 38b burst (2 forged per real, 2099) is neither kept nor re-judged
//    against the exact ban; `loginsNotRejudgedMatter` only looks at attacks read in a later file (#attackRead), so no
//    incomplete finding: brute-force (medium) only, the compromise unreported. Before a93a6ab a single file never
//    needed a second look. Fix: in #judgeOutOfOrder note each window like #attackRead (a window in no file may precede
//    any unkept login): w.ms <= #unkeptLatestMs + slack sets loginsNotRejudgedMatter; better, also re-judge unkept logins
//    of keys out of order (keep them apart from the 20,000, one per out-of-order key).
// 4. The rule is per file: a burst straddling logrotate (4 real in auth.log.1; 4 real, the login and 4 forged failures
//    stamped hours later in auth.log), read as `auth.log*` expands (newest first), is a clean report: each file is in
//    order, the read-order half sees forged lines between the halves and the by-stamp half keeps the forged. Oldest
//    first it is critical. Logrotate runs at a known hour (cron.daily). Fix: carry each key's earliest and latest stamp
//    across files; a failure in a later-read file stamped within [earliest - find-time, latest - find-time) is
//    interleaved with another file's failures: out of order.
// 5. honest use: `cat auth.log auth.log.1 | bulwark check authlog -` (zcat -f auth.log* does the same) with an admin's
//    six typos over a day and three the day before raises analysis-incomplete (high): the older file's failures are
//    out of order, and `nearLost` (t <= lostMaxMs + find-time) has no lower bound, so every failure stamped before the
//    dropped ones counts as near them. --fail-on high fires on honest logs. Fix: keep each key's earliest stamp read
//    before the disorder; nearLost only when t >= earliest - find-time as well.
// 6. honest use: a DST fall-back (zone-less stamps repeat 01:00–02:00) with a job failing every 10 or 12 minutes (a
//    monitor with a stale password) raises analysis-incomplete (high) naming its address and user, though
//    docs/checks.md says the fall-back "costs memory, not findings". lostMaxMs is the oldest of the latest five by
//    stamp, and the repeated hour's failures lie within --find-time of it (the first pass, judged in order before the
//    disorder, held no window). Fix: an uncertain key with no accepted login from it or for it after its failures is
//    medium (the high exists for the login it could hide), high only with one; or seed with the dropped failures'
//    count within --find-time of lostMaxMs (a small per-key counter) and say "near" only when kept + dropped can reach
//    --max-retry.
//
// Held (tests below): with 1–4 forged lines between the groups the attack is critical; with 5 (the admitted loss) the
// high finding names the attacker's address and user when nothing else is named; forged stamps exactly --find-time
// after each real failure (no disorder by `<`), one second more (disorder), or rising under it: critical each way;
// disorder forged before the burst or after it: critical; an IPv6 client giving every connection a new address of its
// /64, with forged failures of other addresses of that /64 (the /64 key out of order): the /64 offends and the login is
// critical; a botnet on one user with forged failures of that user from elsewhere (the user key alone out of order):
// the password login is critical; the worker gives what one thread gives on the 38b attack and the admitted loss.
//
// Read, not made a test: cost of many keys each out of order once, by hand (not asserted; two cores shared): 500,000
// addresses each with one failure and one stamped 7 hours before (1,000,000 lines): 15.6 s to read, 0.9 s to judge,
// 457 MB heap, 140 MB of typed arrays, RSS 1.15 GB (the same lines in order: 6.9 s, no typed arrays, RSS 703 MB);
// each key's list starts at 8 triples (192 bytes) though it holds two, so the documented "48 MB at most" (24 bytes ×
// 2,000,000) is passed with 1,000,000 held (96 MB of lists) (since fixed: a list starts at the seed's size, one triple
// more, and the docs say 96 MB at most, lists doubling as they grow), and such records are pinned until the end: 2 lines an address (a ban needs 5) fill the 500,000-address table, later
// addresses go untracked (incomplete, high; the user rule still counts their failures). One key with 2,000,100
// failures: 8.7 s, RSS 321 MB. A job every 15 minutes across the fall-back is a brute force (medium) by the read-order
// half's two ends four reads apart (same stamp): not new (red team 40 says so), not high.
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { analyzeStream } from "../src/checks/authlog/reader.ts";
import { AuthLogAnalyzer } from "../src/checks/authlog/analyzer.ts";
import { authLogFindings } from "../src/checks/authlog/findings.ts";
import type { AuthLogResult } from "../src/checks/authlog/types.ts";
import { ADMIN, ATTACKER, B0, REF, accept, bsd, critical, fail, findingIds, incomplete, one, rfc3339, run, summary as baseSummary } from "./helpers/authlog-forged.ts";

const HOUR = 3_600_000;
/** Whether a high analysis-incomplete names `name` (its evidence or title). */
const names = (r: AuthLogResult, name: string): boolean => incomplete(r).some((f) => f.severity === "high" && (JSON.stringify(f.evidence).includes(name) || f.title.includes(name)));
/** What a run reports, for comparing two runs, with what it says of keys out of order. */
const summary = (r: AuthLogResult) => ({ ...baseSummary(r), outOfOrder: r.outOfOrder });

/** Eight real failures of deploy from the attacker, a second apart, each followed by `perReal` forged ones; then the login. */
function burst(perReal: number, forged: (k: number) => string): string[] {
  const lines: string[] = [];
  let k = 0;
  for (let real = 0; real < 8; real++) {
    lines.push(fail(bsd(B0 + real * 1000), ATTACKER, "deploy", 900 + real));
    for (let j = 0; j < perReal; j++, k++) lines.push(fail(forged(k), ATTACKER, "deploy", 7000 + k));
  }
  lines.push(accept(bsd(B0 + 300_000), ATTACKER, "deploy"));
  return lines;
}
/** 38b's attack, the cheap form: two forged failures per real one, stamped a day apart in 2099. */
const burst38b = (): string[] => burst(2, (k) => rfc3339(Date.UTC(2099, 0, 1 + k)));

/** The admitted loss: four real failures, `gap` forged ones stamped hours after, four real, the login. */
function loss(gap: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < 4; i++) lines.push(fail(bsd(B0 + i * 1000), ATTACKER, "deploy", 900 + i));
  for (let j = 0; j < gap; j++) lines.push(fail(bsd(B0 + HOUR * (1 + j)), ATTACKER, "deploy", 7000 + j));
  for (let i = 4; i < 8; i++) lines.push(fail(bsd(B0 + i * 1000), ATTACKER, "deploy", 900 + i));
  lines.push(accept(bsd(B0 + 300_000), ATTACKER, "deploy"));
  return lines;
}

/**
 * `count` forged keys found uncertain: each address (and its user) fails five times an hour apart, then once stamped
 * before those (out of order, within --find-time of the oldest held: `nearLost`), no window. Six lines each. (Since
 * findings 5 and 4 were fixed, "near" takes a kept failure within --find-time of the dropped ones' range, and the
 * dropped ones counted with the kept ones in a window reaching --max-retry: four failures a minute apart, five an hour
 * apart after them, which drop the four, then one stamped among the four. Ten lines each.)
 */
function uncertainDecoys(count: number): string[] {
  const lines: string[] = [];
  for (let d = 0; d < count; d++) {
    const address = `198.51.100.${d + 1}`;
    for (let i = 0; i < 4; i++) lines.push(fail(bsd(B0 - 10 * HOUR + i * 60_000), address, `decoy${d}`, 90 + i));
    for (let i = 0; i < 5; i++) lines.push(fail(bsd(B0 - 9 * HOUR + i * HOUR), address, `decoy${d}`, 100 + i));
    lines.push(fail(bsd(B0 - 10 * HOUR + 300_000), address, `decoy${d}`, 110));
  }
  return lines;
}

describe("the loss the author admits", () => {
  // ASVS 16.3.1. The price: n forged lines (five at the default --max-retry) between two groups of n − 1 real ones.
  test("held: with 1–4 forged failures between two groups of four real ones the login is critical; with 5 the key is named, high", () => {
    for (const gap of [1, 2, 3, 4]) assert.ok(critical(one(loss(gap))), `gap ${gap}: ${findingIds(one(loss(gap))).join(", ")}`);
    const r = one(loss(5));
    assert.ok(!critical(r), "five forged lines cost the critical finding (the admitted loss)");
    assert.ok(names(r, ATTACKER), findingIds(r).join(", "));
    assert.ok(names(r, "user deploy"), findingIds(r).join(", "));
  });

  // ASVS 16.3.1, 16.4.1. Finding 1: the 20 names are filled first come, first served.
  test(
    "attack: 20 forged uncertain keys (200 lines) read before the admitted loss do not crowd the attacker out of the high finding (was: the first 20 in table order were named, only decoys)",
    () => {
      const r = one([...uncertainDecoys(20), ...loss(5)]);
      assert.equal(r.outOfOrder.uncertain.length, 20);
      assert.ok(critical(r) || names(r, ATTACKER), `${findingIds(r).join(", ")}; named: ${r.outOfOrder.uncertain.slice(0, 3).join(", ")}…`);
      assert.ok(names(r, "user deploy"));
      // Every uncertain key counted; the decoys (no login after their failures) in a medium finding of their own.
      assert.equal(r.stats.outOfOrderUncertain, 42);
      assert.equal(r.stats.outOfOrderUncertainLogin, 2);
      assert.ok(!names(r, "198.51.100.1"), "the high finding names the keys with a login only");
    },
  );
});

describe("the bound on failures kept for out-of-order keys", () => {
  // ASVS 16.3.1, 16.4.2. Finding 2. A small bound stands for the default's 2,000,000 (one forged address and user fill
  // it with about 1,000,000 lines: each line counts for both keys).
  test(
    "attack: one forged key fills the bound and 20 more fill the names, and 38b's attack on the attacker's own key is still judged exactly: the login is critical, the forged key gives up its oldest and is named (was: judged as read only, named)",
    () => {
      const limit = 200;
      const lines = [fail(bsd(B0 - 2 * HOUR), "198.51.100.200", "junk", 1)];
      for (let i = 0; i < limit; i++) lines.push(fail(bsd(B0 - 9 * HOUR), "198.51.100.200", "junk", 2 + i));
      for (let d = 0; d < 20; d++) lines.push(fail(bsd(B0 - 2 * HOUR), `198.51.100.${d + 1}`, `x${d}`, 1), fail(bsd(B0 - 9 * HOUR), `198.51.100.${d + 1}`, `x${d}`, 2));
      lines.push(...burst38b());
      const r = one(lines, { limits: { outOfOrder: limit } });
      assert.ok(r.stats.outOfOrderUnheld > 0);
      assert.ok(critical(r), findingIds(r).join(", "));
      assert.ok(r.offenders.some((o) => o.address === ATTACKER));
      // The bound is fair (out-of-order.ts): the forged keys, the largest, gave failures up; the small ones none.
      assert.deepEqual([...r.outOfOrder.unheld].sort(), ["198.51.100.200", "user junk"]);
      assert.equal(r.stats.outOfOrderUnheldLogin, 0);
      assert.ok(names(r, "198.51.100.200"));
      assert.ok(!names(r, ATTACKER) && !names(r, "user deploy"), "judged, not named");
    },
  );

  // ASVS 16.4.2. The same attack, the bound not reached: judged exactly.
  test("held: the same 38b attack with the bound not reached is critical", () => {
    assert.ok(critical(one(burst38b())));
  });
});

describe("the 20,000 logins kept to be judged again", () => {
  // ASVS 16.3.1, 16.4.2. Finding 3: 20,000 forged key logins (default limits.logins), then 38b's attack.
  test(
    "attack: 20,000 forged accepted logins before 38b's attack leave the login after the burst unjudged against the exact ban, but not without an incomplete finding (was: none)",
    () => {
      const flood = Array.from({ length: 20_000 }, (_, i) => accept(bsd(B0 - 2 * HOUR + i), `10.0.${i >> 8}.${i & 255}`, `u${i}`, "publickey"));
      const r = one([...flood, ...burst38b()]);
      assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER], "the exact judgement finds the ban");
      assert.ok(r.stats.loginsNotRejudged > 0);
      assert.ok(critical(r) || incomplete(r).length > 0, findingIds(r).join(", "));
    },
  );
});

describe("files", () => {
  const older = [fail(bsd(B0 - HOUR), ADMIN, "alice", 10), ...Array.from({ length: 4 }, (_, i) => fail(bsd(B0 + i * 1000), ATTACKER, "deploy", 900 + i))];
  const newer = [
    ...Array.from({ length: 4 }, (_, i) => fail(bsd(B0 + (4 + i) * 1000), ATTACKER, "deploy", 904 + i)),
    accept(bsd(B0 + 60_000), ATTACKER, "deploy"),
    ...Array.from({ length: 4 }, (_, k) => fail(bsd(B0 + HOUR * (1 + k)), ATTACKER, "deploy", 7000 + k)),
  ];

  // ASVS 16.3.1. Finding 4: the per-file rule. Oldest first it is found.
  test("held: a burst straddling logrotate, files oldest first (auth.log.1 auth.log), is critical", () => {
    assert.ok(critical(run([["auth.log.1", older], ["auth.log", newer]])));
  });
  test(
    "attack: a burst straddling logrotate, four forged failures stamped hours later appended to auth.log, files as auth.log* expands (newest first), is not a clean report (was: #order reset fileMaxMs at each file: a clean report)",
    () => {
      const r = run([["auth.log", newer], ["auth.log.1", older]]);
      assert.ok(critical(r) || names(r, ATTACKER), findingIds(r).join(", ") || "no finding at all");
    },
  );

  // ASVS 16.2.2 (honest use). After finding 4's fix: an admin's two typos minutes before logrotate and six after it
  // (one minutes after, five an hour apart), then a password login: the older file's typos are within --find-time of
  // the newer file's first, so the key is judged exactly, in either order; nothing more.
  test("honest use: rotated files meeting at logrotate with an admin's typos on both sides and a login after, in either order, raise no high finding", () => {
    const R = B0 + 3 * HOUR;
    const before = [fail(bsd(R - 300_000), ADMIN, "alice", 10), fail(bsd(R - 180_000), ADMIN, "alice", 11)];
    const after = [fail(bsd(R + 120_000), ADMIN, "alice", 12), ...Array.from({ length: 5 }, (_, i) => fail(bsd(R + (i + 1) * HOUR), ADMIN, "alice", 20 + i)), accept(bsd(R + 6 * HOUR + 60_000), ADMIN, "alice")];
    for (const files of [[["auth.log.1", before], ["auth.log", after]], [["auth.log", after], ["auth.log.1", before]]] as const) {
      const r = run(files);
      assert.deepEqual(r.offenders, []);
      assert.deepEqual(authLogFindings(r).filter((f) => f.severity === "high" || f.severity === "critical").map((f) => f.id), [], files[0][0]);
    }
  });

  // ASVS 16.2.2 (honest use). Finding 5.
  test(
    "honest use: rotated files joined on stdin newest first (cat auth.log auth.log.1 | …), an admin's typos on both days, raise no high finding (was: nearLost had no lower bound, so an older file's failures read after a newer one's were 'near' the dropped ones: analysis-incomplete, high)",
    () => {
      const newerDay = Array.from({ length: 6 }, (_, i) => fail(bsd(B0 + i * HOUR), ADMIN, "alice", 200 + i));
      const olderDay = Array.from({ length: 3 }, (_, i) => fail(bsd(B0 - 24 * HOUR + i * HOUR), ADMIN, "alice", 300 + i));
      // As two files: nothing at all.
      assert.deepEqual(findingIds(run([["auth.log", newerDay], ["auth.log.1", olderDay]])), []);
      const r = one([...newerDay, ...olderDay]);
      assert.deepEqual(r.offenders, []);
      assert.deepEqual(authLogFindings(r).filter((f) => f.severity === "high" || f.severity === "critical").map((f) => f.id), []);
    },
  );

  // ASVS 16.2.2 (honest use). Finding 6. Real time 00:00–04:00; stamps repeat 01:00–02:00 after 02:00.
  test(
    "honest use: a DST fall-back with a job failing every 10 or 12 minutes raises no high finding, a medium analysis-incomplete at most (was: analysis-incomplete, high, named the job's address and user)",
    () => {
      const D = Date.UTC(2026, 9, 25, 0);
      for (const period of [10, 12]) {
        const lines: string[] = [];
        for (let real = 0, pid = 100; real < 240; real += period, pid++) lines.push(fail(bsd(D + (real < 120 ? real : real - 60) * 60_000), "192.0.2.20", "nagios", pid));
        const r = one(lines, { referenceMs: Date.UTC(2026, 9, 26) });
        assert.ok(r.stats.outOfOrderKeys > 0, "the repeated hour puts the keys out of order");
        // Fixed as medium, not as nothing: the dropped failures are not kept, so whether they made a window with the
        // repeated hour's is not known; with no login from or for the key after its failures, what such a window could
        // hide is a brute force (medium), not a compromise (analyzer.ts #loginsAfter, findings.ts outOfOrderIncomplete).
        assert.ok(findingIds(r).every((id) => id === "authlog.analysis-incomplete/medium"), `every ${period} minutes: ${findingIds(r).join(", ")}`);
        // The same job logging in by password after its failures is high again: that login is what a window could make a compromise.
        const withLogin = one([...lines, accept(bsd(D + 185 * 60_000), "192.0.2.20", "nagios")], { referenceMs: Date.UTC(2026, 9, 26) });
        assert.ok(names(withLogin, "192.0.2.20") || critical(withLogin), `every ${period} minutes, with a login: ${findingIds(withLogin).join(", ")}`);
      }
    },
  );
});

describe("held", () => {
  // ASVS 16.3.1. Disorder needs a stamp more than --find-time before the key's latest: stamps exactly --find-time after
  // each real failure, one second more, or rising just under it.
  test("held: forged failures stamped exactly --find-time after the next real one (the `<` boundary), one second more, or rising under it, do not hide the burst", () => {
    for (const perReal of [1, 2, 4, 8]) {
      const modes: Record<string, (real: number, j: number) => number> = {
        exact: (real) => B0 + (real + 1) * 1000 + 600_000,
        "one second more": (real) => B0 + (real + 1) * 1000 + 601_000,
        rising: (real, j) => B0 + (real + 1) * 1000 + 600_000 - (perReal - 1 - j) * 1000,
      };
      for (const [how, stamp] of Object.entries(modes)) {
        const lines: string[] = [];
        let k = 0;
        for (let real = 0; real < 8; real++) {
          lines.push(fail(bsd(B0 + real * 1000), ATTACKER, "deploy", 900 + real));
          for (let j = 0; j < perReal; j++, k++) lines.push(fail(bsd(stamp(real, j)), ATTACKER, "deploy", 7000 + k));
        }
        lines.push(accept(bsd(B0 + 300_000), ATTACKER, "deploy"));
        const r = one(lines);
        assert.ok(critical(r), `${perReal} ${how}: ${findingIds(r).join(", ")}`);
        assert.equal(r.stats.outOfOrderKeys > 0, how === "one second more", `${perReal} ${how}: out of order`);
      }
    }
  });

  // ASVS 16.3.1. Out of order before the burst (forged first) or after it (forged between the burst and the login).
  test("held: the key put out of order before its burst or after it: the login is critical either way", () => {
    const forged = [fail(rfc3339(Date.UTC(2099, 0, 1)), ATTACKER, "deploy", 7000), fail(bsd(B0 - 2 * HOUR), ATTACKER, "deploy", 7001)];
    const real = Array.from({ length: 5 }, (_, i) => fail(bsd(B0 + i * 1000), ATTACKER, "deploy", 900 + i));
    const login = accept(bsd(B0 + 300_000), ATTACKER, "deploy");
    for (const [how, lines] of Object.entries({ before: [...forged, ...real, login], after: [...real, ...forged, login] })) {
      const r = one(lines);
      assert.ok(r.stats.outOfOrderKeys > 0, how);
      assert.ok(critical(r), `${how}: ${findingIds(r).join(", ")}`);
      assert.deepEqual(incomplete(r), [], how);
    }
  });

  // ASVS 16.3.1. The /64 key: a new address of the /64 for every connection and every forged line, each real one on
  // another name (no user key reaches five), four forged per real one in 2099.
  test("held: an IPv6 client rotating addresses in its /64, forged failures of other addresses of that /64 (the /64 out of order): the /64 offends and the login is critical", () => {
    const P = "2001:db8:66:1::";
    const lines: string[] = [];
    let k = 0;
    for (let real = 0; real < 8; real++) {
      lines.push(fail(bsd(B0 + real * 1000), `${P}${real + 1}`, `u${real}`, 900 + real));
      for (let j = 0; j < 4; j++, k++) lines.push(fail(rfc3339(Date.UTC(2099, 0, 1 + k)), `${P}${100 + k}`, `v${k}`, 7000 + k));
    }
    lines.push(accept(bsd(B0 + 300_000), `${P}99`, "deploy"));
    const r = one(lines);
    assert.ok(r.stats.outOfOrderKeys > 0);
    assert.deepEqual(r.offenders.map((o) => o.address), [`${P.slice(0, -2)}::/64`]);
    assert.ok(critical(r), findingIds(r).join(", "));
  });

  // ASVS 16.3.1. The user key alone: a botnet, one real failure of deploy per address, forged failures of deploy from
  // other addresses stamped in 2099 between them; the password login comes from an address that never failed.
  test("held: a botnet on one user with forged failures of that user from elsewhere (the user key out of order): the password login is critical", () => {
    const lines: string[] = [];
    let k = 0;
    for (let real = 0; real < 8; real++) {
      lines.push(fail(bsd(B0 + real * 1000), `203.0.113.${10 + real}`, "deploy", 900 + real));
      for (let j = 0; j < 4; j++, k++) lines.push(fail(rfc3339(Date.UTC(2099, 0, 1 + k)), `198.51.100.${100 + k}`, "deploy", 7000 + k));
    }
    lines.push(accept(bsd(B0 + 300_000), "203.0.113.99", "deploy"));
    const r = one(lines);
    assert.deepEqual(r.offenders, []);
    assert.deepEqual(r.attackedUsers.map((u) => u.user), ["deploy"]);
    assert.ok(critical(r), findingIds(r).join(", "));
  });

  // ASVS 16.3.1. The worker path gives what one thread gives (test/authlog-workers-red-team.test.ts compares alike).
  test("held: the worker and one thread report the same on 38b's attack, the admitted loss and a DST-shifted job", async () => {
    const D = Date.UTC(2026, 9, 25, 0);
    const dst: string[] = [];
    for (let real = 0, pid = 100; real < 240; real += 10, pid++) dst.push(fail(bsd(D + (real < 120 ? real : real - 60) * 60_000), "192.0.2.20", "nagios", pid));
    const logs = [[...uncertainDecoys(3), ...burst38b(), ...loss(5)], dst];
    for (const lines of logs) {
      const results: AuthLogResult[] = [];
      for (const workers of [false, true]) {
        const a = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0, workers });
        const text = Buffer.from(`${lines.join("\n")}\n`);
        await analyzeStream(a, "auth.log", Readable.from([text.subarray(0, 1000), text.subarray(1000)]));
        results.push(a.finish());
      }
      const [local, worker] = results as [AuthLogResult, AuthLogResult];
      assert.ok(local.stats.outOfOrderKeys > 0);
      assert.equal(worker.stats.outOfOrderKeys, local.stats.outOfOrderKeys);
      assert.deepEqual(summary(worker), summary(local));
    }
  });
});
