// Red team, round forty: `bulwark check authlog` (src/checks/authlog/) after keys logged out of time order are judged
// exactly (out-of-order.ts): a failure of an address, /64 or user stamped more than --find-time before one read earlier
// for it in the same file puts the key out of order; from then on every failure of it is kept (with what its window
// held then), under one bound for all such keys (limits.outOfOrder), and judged by stamp at the end as a log in time
// order is. Attackers: a sender to a central syslog file, a local user writing to the journal: they choose their lines'
// stamps and where they fall. In-process library runs only (analyzer, findings); no files, no network.
//
// Held: the attack of red team 38b (finding 1) with 2, 10 and 100 forged failures per real one, forged lines stamped
// before the burst, forged lines of another key; enough forged lines to push real failures out of the window before the
// disorder is seen are never a clean report; past the bound, analysis-incomplete (high) names the key. Honest use stays
// as it was: a central syslog of two hosts 30 s apart, rotated files in either order and a journal export put no key out
// of order; a DST fall-back (zone-less stamps repeating 01:00–02:00) does, and finds what was there and nothing more.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ADMIN, ATTACKER, B0, accept, bsd, critical, fail, findingIds, incomplete, one, rfc3339, run, summary } from "./helpers/authlog-forged.ts";

/** Eight real failures of deploy from the attacker, a second apart, each followed by `forged(k)` lines; then the login. */
function burst(perReal: number, forged: (k: number) => string, address = ATTACKER, user = "deploy"): string[] {
  const lines: string[] = [];
  let k = 0;
  for (let real = 0; real < 8; real++) {
    lines.push(fail(bsd(B0 + real * 1000), ATTACKER, "deploy", 900 + real));
    for (let j = 0; j < perReal; j++, k++) lines.push(fail(forged(k), address, user, 7000 + k));
  }
  lines.push(accept(bsd(B0 + 300_000), ATTACKER, "deploy"));
  return lines;
}

describe("forged failures stamped out of order", () => {
  // ASVS 16.3.1, 16.4.1. Red team 38b's attack, more forged lines per real one: each run of five read spans hours, and
  // the latest five by stamp are forged. The real failures read after forged ones are out of order: from the first,
  // the address and the user keep every failure and are judged by stamp.
  test("attack: 2, 10 and 100 forged failures per real one, stamped after the burst (hours apart, or days apart in 2099), do not hide the brute force nor the login after it", () => {
    for (const perReal of [2, 10, 100]) {
      const stamps: Record<string, (k: number) => string> = {
        "zone-less, an hour apart": (k) => bsd(B0 + 3_600_000 * (1 + (k % 20))),
        "2099, a day apart": (k) => rfc3339(Date.UTC(2099, 0, 1 + k)),
      };
      for (const [how, stamp] of Object.entries(stamps)) {
        const r = one(burst(perReal, stamp));
        assert.equal(r.stats.failures, 8 + 8 * perReal, `${perReal} ${how}`);
        assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER], `${perReal} ${how}: the attacker offends`);
        assert.ok(r.attackedUsers.some((u) => u.user === "deploy"), `${perReal} ${how}: deploy is brute-forced`);
        assert.ok(critical(r), `${perReal} ${how}: ${findingIds(r).join(", ")}`);
        // With 10 or more forged lines after the first real failure, it has left both halves before the second puts the
        // key out of order: the ban falls on the sixth real failure, not the fifth (out-of-order.ts, nearLost).
        const since = r.offenders[0]?.offenderSinceMs ?? 0;
        assert.ok(since >= B0 + 4000 && since <= B0 + 7000, `${perReal} ${how}: the ban falls on a real failure of the burst`);
      }
    }
  });

  // ASVS 16.3.1. The by-stamp half already keeps the latest failures, so lines stamped before the burst cannot push
  // them out; they put the key out of order all the same, and the exact judgement agrees.
  test("attack: forged failures stamped before the burst (hours before, or in 1999) do not hide it", () => {
    for (const [how, stamp] of Object.entries({ "hours before": (k: number) => bsd(B0 - 3_600_000 * (1 + k)), "1999": (k: number) => rfc3339(Date.UTC(1999, 0, 1 + k)) })) {
      const r = one(burst(4, stamp));
      assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER], how);
      assert.ok(critical(r), `${how}: ${findingIds(r).join(", ")}`);
    }
  });

  // ASVS 16.3.1, 16.4.1. Enough forged lines between two groups of four real failures push the first group out of both
  // halves before the disorder is seen (five read since, five later by stamp); what is kept from then on holds four
  // real failures. The exact judgement cannot see the first group: the key is named, high, never a clean report.
  test("attack: five forged failures between groups of four real ones (the first group out of the window before the disorder) are never a clean report: the attacker offends, or analysis-incomplete (high) names it", () => {
    const lines: string[] = [];
    let k = 0;
    for (let g = 0; g < 2; g++) {
      for (let i = 0; i < 4; i++) lines.push(fail(bsd(B0 + (4 * g + i) * 1000), ATTACKER, "deploy", 900 + 4 * g + i));
      for (let j = 0; j < 5; j++, k++) lines.push(fail(bsd(B0 + 3_600_000 * (1 + k)), ATTACKER, "deploy", 7000 + k));
    }
    lines.push(accept(bsd(B0 + 300_000), ATTACKER, "deploy"));
    const r = one(lines);
    const named = incomplete(r).filter((f) => f.severity === "high" && JSON.stringify(f.evidence).includes(ATTACKER));
    assert.ok(r.offenders.some((o) => o.address === ATTACKER) || named.length > 0, findingIds(r).join(", "));
    assert.ok(named.length > 0 || critical(r), findingIds(r).join(", "));
  });

  // ASVS 16.3.1. The sender forges failures of the admin's address and user, stamped out of order around the admin's
  // own two typos: the admin's keys are judged exactly, and exactly is what was there (two failures, not a brute force).
  test("held: forged failures of another key (the admin's address and user), out of order, make neither an offender nor the admin's login a compromise; the attacker's own burst is still found", () => {
    const lines = [
      fail(bsd(B0 - 60_000), ADMIN, "alice", 800),
      fail(rfc3339(Date.UTC(2099, 0, 1)), ADMIN, "alice", 801),
      fail(bsd(B0 - 50_000), ADMIN, "alice", 802),
      fail(bsd(B0 - 7_200_000), ADMIN, "alice", 803),
      accept(bsd(B0 - 40_000), ADMIN, "alice"),
      ...burst(1, (k) => rfc3339(Date.UTC(2099, 1, 1 + k))),
    ];
    const r = one(lines);
    assert.ok(r.stats.outOfOrderKeys > 0, "the admin's keys are out of order");
    assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
    assert.ok(!r.compromises.some((c) => c.user === "alice"), findingIds(r).join(", "));
    assert.ok(critical(r));
    assert.deepEqual(incomplete(r), []);
  });

  // ASVS 16.4.2. The bound on failures kept for out-of-order keys (limits.outOfOrder, 2,000,000 by default) is reached:
  // what is past it is judged as read only, and the report says so, naming the key.
  test("held: past the bound on failures kept for out-of-order keys, analysis-incomplete (high) names the key", () => {
    const r = one(burst(4, (k) => bsd(B0 + 3_600_000 * (1 + k))), { limits: { outOfOrder: 6 } });
    assert.ok(r.stats.outOfOrderUnheld > 0);
    const found = incomplete(r);
    assert.equal(found.length, 1, findingIds(r).join(", "));
    assert.equal(found[0]?.severity, "high");
    assert.ok(found[0]?.title.includes(ATTACKER), found[0]?.title);
    assert.ok((found[0]?.evidence["unheld"] as string[]).includes(ATTACKER));
    // Unbounded, the same log is judged exactly and is complete.
    assert.deepEqual(incomplete(one(burst(4, (k) => bsd(B0 + 3_600_000 * (1 + k))))), []);
  });
});

describe("honest logs", () => {
  // ASVS 16.2.2 (honest use). A central syslog file: web's lines and db's, db's clock 30 s behind, interleaved as they
  // arrive. Both hosts take a brute force of root from one address; web's admin logs in with a key.
  test("held: a central syslog of two hosts with 30 s of clock skew puts no key out of order and reports as before", () => {
    const lines: string[] = [];
    for (let i = 0; i < 40; i++) {
      lines.push(fail(bsd(B0 + i * 10_000), ATTACKER, "root", 100 + i).replace(" web ", " web "));
      lines.push(fail(bsd(B0 + i * 10_000 - 30_000), ATTACKER, "root", 200 + i).replace(" web ", " db "));
      if (i % 7 === 0) lines.push(fail(bsd(B0 + i * 10_000 - 30_000), `198.51.100.${i}`, "oracle", 300 + i).replace(" web ", " db "));
    }
    lines.push(`${bsd(B0 + 600_000)} web sshd[950]: Accepted publickey for alice from ${ADMIN} port 41000 ssh2`);
    const r = one(lines);
    assert.equal(r.stats.outOfOrderKeys, 0);
    assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
    assert.deepEqual(incomplete(r), []);
    assert.ok(!critical(r));
  });

  // ASVS 16.2.2. Zone-less local stamps when DST ends: 01:00–02:00 comes twice (as the same instants here). A few
  // failures of a user and an address either side, none a brute force: out of order, judged exactly, nothing found and
  // no incomplete analysis. A brute force in the repeated hour is found. (Not new: fail2ban's read-order half compares
  // only the two ends of each run of --max-retry read, so five failures of one key from 01:00 to the second 01:05 were
  // a window before and still are.)
  test("held: a DST fall-back (zone-less stamps repeating 01:00–02:00) finds nothing that was not there, and a brute force in the repeated hour", () => {
    const D = Date.UTC(2026, 9, 25, 0);
    const pass = (minutes: readonly number[], pid: number): string[] => minutes.map((m, i) => fail(bsd(D + 3_600_000 + m * 60_000), ADMIN, "alice", pid + i));
    const honest = [...pass([10, 50], 100), ...pass([5, 30], 200), accept(bsd(D + 3_600_000 + 40 * 60_000), ADMIN, "alice")];
    const r = one(honest, { referenceMs: Date.UTC(2026, 9, 26) });
    assert.ok(r.stats.outOfOrderKeys > 0, "the repeated hour puts the keys out of order");
    assert.deepEqual(r.offenders, []);
    assert.deepEqual(r.attackedUsers, []);
    assert.deepEqual(findingIds(r), []);
    const attack = [...pass([10, 50], 100), ...Array.from({ length: 6 }, (_, i) => fail(bsd(D + 3_600_000 + 30 * 60_000 + i * 1000), ATTACKER, "deploy", 300 + i)), accept(bsd(D + 3_600_000 + 32 * 60_000), ATTACKER, "deploy")];
    const r2 = one(attack, { referenceMs: Date.UTC(2026, 9, 26) });
    assert.deepEqual(r2.offenders.map((o) => o.address), [ATTACKER]);
    assert.ok(critical(r2), findingIds(r2).join(", "));
  });

  // ASVS 16.2.2. logrotate's files given newest first (as auth.log* expands) or oldest first: each file is in order, so
  // no key is out of order, and both orders report the same.
  test("held: rotated files given in either order put no key out of order and report the same", () => {
    const older = [...Array.from({ length: 6 }, (_, i) => fail(bsd(B0 + i * 1000), ATTACKER, "deploy", 100 + i)), fail(bsd(B0 + 3_600_000), ADMIN, "alice", 150)];
    const newer = [fail(bsd(B0 + 86_400_000), ATTACKER, "deploy", 200), accept(bsd(B0 + 600_000 + 3_600_000 * 2), ATTACKER, "deploy"), fail(bsd(B0 + 86_400_000 + 5000), ADMIN, "alice", 250)];
    const oldestFirst = run([["auth.log.1", older], ["auth.log", newer]]);
    const newestFirst = run([["auth.log", newer], ["auth.log.1", older]]);
    assert.equal(oldestFirst.stats.outOfOrderKeys, 0);
    assert.equal(newestFirst.stats.outOfOrderKeys, 0);
    assert.deepEqual(summary(newestFirst), summary(oldestFirst));
    assert.ok(critical(oldestFirst));
  });

  // ASVS 16.2.2. `journalctl -o json` of sshd: entries in the journal's order, stamps in microseconds.
  test("held: a journal export puts no key out of order and finds the brute force", () => {
    const entry = (s: number, message: string, pid: number): string =>
      JSON.stringify({
        __REALTIME_TIMESTAMP: String((B0 + s * 1000) * 1000), _BOOT_ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", _HOSTNAME: "web", _TRANSPORT: "syslog", _UID: "0", _GID: "0",
        _COMM: "sshd-session", _EXE: "/usr/lib/openssh/sshd-session", _SYSTEMD_UNIT: "ssh.service", _PID: String(pid), SYSLOG_FACILITY: "4", SYSLOG_IDENTIFIER: "sshd-session", SYSLOG_PID: String(pid), MESSAGE: message,
      });
    const lines = Array.from({ length: 6 }, (_, i) => entry(i, `Failed password for deploy from ${ATTACKER} port ${40000 + i} ssh2`, 900 + i));
    for (let i = 0; i < 3; i++) lines.push(entry(3600 + i * 700, `Failed password for alice from ${ADMIN} port ${42000 + i} ssh2`, 800 + i));
    lines.push(entry(60, `Accepted password for deploy from ${ATTACKER} port 41000 ssh2`, 950));
    const r = one(lines);
    assert.equal(r.stats.failures, 9);
    assert.equal(r.stats.outOfOrderKeys, 0);
    assert.deepEqual(r.offenders.map((o) => o.address), [ATTACKER]);
    assert.ok(critical(r));
  });
});
