// Red team, round "clock jumps": one server's own clock is stepped while the product runs (an NTP correction after a VM
// resume, an operator's `date -s`, an hour's leap from a wrong timezone setting): set back by a step, minutes or an hour,
// or forward by days, then corrected. The attacker controls no clock but profits from the jump: someone who watched the
// owner type a second-factor code and replays it once the clock has gone back; a guesser locked out of an account who
// hopes a step back lifts the window; an intruder who can write the database (no master key) and deletes the audit log's
// checkpoints to hide a rewrite on a store initialised while the host's clock ran ahead. On SQLite, where there is no
// database server's clock to compare with, the maintenance pass's reaction to a forward jump was attacked too.
// Not repeated (pinned elsewhere): sessions and links dated ahead after a step back (future-dated rule:
// revocation-clock-skew, session-twenty, closed-links, clock-skew-red-team), the skew guard on PostgreSQL
// (docs-claims-fifth, clock-skew-limit), the signing-key rotation after a clock behind (rotate-signing-key's dating).
// Held: each TOTP step once across a step back of one step and of an hour (last_step only grows; ASVS 6.5.1); the
// login's failure window across a step back of an hour (windows have no upper bound, so failures dated ahead count); a
// routine checkpoint in the process that stored one refuses to sign after the checkpoints are deleted.
// Found (fixed since): (1) on SQLite a forward jump of days, lasting one maintenance pass, deleted live rows for good —
// a sign-up a minute old as "abandoned", and every session and unused link — with nothing noticing the jump (no database
// clock to compare with; CLOCK_JUDGED_STEPS were skipped only on a PostgreSQL skew reading). Now the pass compares the
// wall time the clock moved since the last pass with the elapsed (monotonic) time (Clock.elapsed, clockJump in
// src/http/maintenance.ts): beyond the skew limit apart, the steps that judge rows by the clock are skipped for that
// pass, said at error level, and the next pass judges from the clock as it then reads. (2) `audit verify` took a store
// whose keys are dated ahead of the clock as young (firstCheckpointProblem: now - since <= 1 h, negative included), so
// for a day after a clock that ran a day ahead at init was corrected, a log whose checkpoints were deleted verified. Now
// young means dated at most the dated-ahead tolerance ahead (60 s by default) and at most an hour back; keys dated
// further ahead are a problem named as such, in verify and in routine signing alike.
// Temp dirs and loopback only; SQLite (the authFixture), a fake clock (fx.clock) stepped by the tests.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { authFixture, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { CLOCK_JUDGED_STEPS, startMaintenance, type Maintenance } from "../src/http/maintenance.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe("red team: the server's own clock jumps (SQLite)", () => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  before(async () => {
    fx = await authFixture({ BULWARK_REGISTRATION: "open" });
  });
  after(async () => {
    await fx.close();
  });

  it("attack: the owner's TOTP code is replayed after the server's clock steps back one 30-second step, and again after a step back of an hour (the code the owner used an hour ago is 'current' again) — each time step is accepted once, whatever the clock did (ASVS 6.5.1)", async () => {
    const u = await flows.withTOTP("replay-after-step-back@example.org");
    const used = fx.clock.now();
    const code = totpCode(u.secret, used);
    const owner = await flows.pending(u);
    const ok = await owner.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
    assert.equal(ok.statusCode, 200, `control: the owner's code signs in: ${ok.body}`);

    // One step back: the code's step is the server's "next" step again, inside its ±1 window.
    fx.clock.advance(-STEP);
    const thief = await flows.pending(u);
    const replay = await thief.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
    assert.notEqual(replay.statusCode, 200, `a TOTP code spent by the owner was accepted again after the clock stepped back 30 s: ${replay.body}`);

    // An hour on, the owner signs in again (their step is spent); then the clock steps back that hour, and the code
    // they used then is the server's current one once more.
    fx.clock.set(used + HOUR);
    const later = totpCode(u.secret, fx.clock.now());
    const again = await flows.pending(u);
    assert.equal((await again.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: later } })).statusCode, 200, "control: the owner signs in an hour later");
    fx.clock.set(used);
    const thief2 = await flows.pending(u);
    const replay2 = await thief2.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
    assert.notEqual(replay2.statusCode, 200, `the code the owner used an hour ago was accepted after the clock stepped back an hour: ${replay2.body}`);
    fx.clock.set(used + HOUR + 2 * STEP);
  });

  it("attack: a guesser locked out of an account's login window waits for the server's clock to step back an hour — the window still holds (failures dated ahead of the clock still count) (ASVS 6.3.1)", async () => {
    const u = await fx.user("window-step-back@example.org");
    const b = fx.browser({ newDevice: true });
    let last = 0;
    for (let i = 0; i < 12 && last !== 429; i++) last = (await b.login(u.email, "wrong password, wrong again")).statusCode;
    assert.equal(last, 429, "control: the account's window fills and refuses");
    const start = fx.clock.now();
    fx.clock.advance(-HOUR);
    const after = await b.login(u.email, "still guessing, one more time");
    assert.equal(after.statusCode, 429, `a step back of an hour lifted the login window: ${after.statusCode} ${after.body}`);
    // The right password is still refused (not evaluated) while the window holds.
    assert.equal((await b.login(u.email, u.password)).statusCode, 429, "the right password got through the window after the step back");
    fx.clock.set(start + 10 * MINUTE);
  });

  /** A running server's maintenance: started with it, before any jump (a pass judges a jump from the last reading). */
  function runningMaintenance(): Maintenance {
    return startMaintenance(fx.app, { intervalMs: HOUR, firstPassDelayMs: HOUR });
  }
  const judged = (removed: Record<string, number>): string[] => [...CLOCK_JUDGED_STEPS].filter((name) => name in removed);

  it("attack: the server's clock jumps forward eight days (a VM resumed with a wrong clock) long enough for one maintenance pass on SQLite, then is corrected — a sign-up made a minute before, its link live in real time, is not deleted as abandoned: the pass finds the clock jumped and judges no row by it (nothing live purged; no ASVS id: availability and data loss) (was: deleted as abandoned, with nothing noticing the jump)", async (t) => {
    // Adapted with the fix: the maintenance starts before the jump, as a running server's does at its start, and the
    // jump moves the wall clock alone (ManualClock.jump), as a stepped host clock does; advance/set move elapsed time too.
    const maintenance = runningMaintenance();
    const errors = t.mock.method(fx.app.logger, "error");
    try {
      const start = fx.clock.now();
      const signUp = await flows.unfinishedSignUp("jump-forward-signup@example.org");
      fx.clock.advance(MINUTE);
      // The jump: eight days ahead (past BULWARK_SIGNUP_ABANDONED_HOURS, 168 h), one maintenance pass, then NTP steps it back.
      fx.clock.jump(8 * DAY);
      const removed = await maintenance.runOnce();
      fx.clock.advance(MINUTE);
      fx.clock.jump(-8 * DAY);
      assert.equal(fx.clock.now(), start + 2 * MINUTE);
      const still = await fx.app.db.db.selectFrom("users").select("id").where("id", "=", signUp.id).executeTakeFirst();
      assert.ok(still,
        `a sign-up made 2 minutes ago (real time) was deleted as abandoned by the maintenance pass run while the clock was 8 days ahead ` +
        `(removed: ${JSON.stringify(removed)}); on SQLite nothing compares the clock with anything (clockSkewFromDatabase is null), ` +
        "so a forward jump of a running server purges live rows for good");
      assert.deepEqual(judged(removed), [], `the pass across the jump ran steps that judge rows by the clock: ${JSON.stringify(removed)}`);
      assert.ok(errors.mock.calls.some((c) => /clock jumped 691200\.0 s forward since the last pass/.test(String(c.arguments[1]))),
        `the jump is said at error level: ${JSON.stringify(errors.mock.calls.map((c) => c.arguments[1]))}`);

      // The correction is a jump back, skipped too; then the clock is believed, and the sign-up is two minutes old.
      assert.deepEqual(judged(await maintenance.runOnce()), [], "the pass across the correction judges nothing either");
      fx.clock.advance(15 * MINUTE);
      const later = await maintenance.runOnce();
      assert.deepEqual(judged(later), [...CLOCK_JUDGED_STEPS], "the pass after that runs every step");
      assert.ok(await fx.app.db.db.selectFrom("users").select("id").where("id", "=", signUp.id).executeTakeFirst(), "and the sign-up is still there");
    } finally {
      await maintenance.stop();
    }
  });

  it("attack: the server's clock steps back an hour for one maintenance pass — the sessions of the last hour, dated ahead of it, are not purged; the step is skipped once, and time moved by the tests (advance, set, even backwards) trips nothing (no ASVS id: availability)", async (t) => {
    const maintenance = runningMaintenance();
    const errors = t.mock.method(fx.app.logger, "error");
    try {
      const u = await flows.signedIn("jump-back-session@example.org");
      const sessions = async (): Promise<number> => (await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", u.id).execute()).length;
      assert.equal(await sessions(), 1, "control: one session");
      // Ordinary moves of fake time are time passing (elapsed moves with them): every step runs.
      fx.clock.advance(MINUTE);
      assert.deepEqual(judged(await maintenance.runOnce()), [...CLOCK_JUDGED_STEPS], "control: a pass a minute later runs every step");
      fx.clock.set(fx.clock.now() + 20 * MINUTE);
      assert.deepEqual(judged(await maintenance.runOnce()), [...CLOCK_JUDGED_STEPS], "control: so does one after set() twenty minutes on");
      fx.clock.advance(-10 * MINUTE);
      assert.deepEqual(judged(await maintenance.runOnce()), [...CLOCK_JUDGED_STEPS], "control: and after advance() back ten minutes");
      assert.equal(errors.mock.calls.length, 0, `control: nothing said: ${JSON.stringify(errors.mock.calls.map((c) => c.arguments[1]))}`);
      assert.equal(await sessions(), 1, "control: the session is live (11 minutes old)");

      // The step back: the session is dated an hour ahead of the clock (future-dated, purged by a pass that believed it).
      fx.clock.jump(-HOUR);
      const across = await maintenance.runOnce();
      assert.deepEqual(judged(across), [], `the pass across the step back ran steps that judge rows by the clock: ${JSON.stringify(across)}`);
      assert.equal(await sessions(), 1, "the session the owner holds was purged by a pass while the clock was an hour behind");
      assert.ok(errors.mock.calls.some((c) => /clock jumped 3600\.0 s back since the last pass/.test(String(c.arguments[1]))),
        `the step back is said at error level: ${JSON.stringify(errors.mock.calls.map((c) => c.arguments[1]))}`);
      // Once: the next pass judges from the clock as it reads (a step that stays is believed after one pass).
      fx.clock.advance(15 * MINUTE);
      assert.deepEqual(judged(await maintenance.runOnce()), [...CLOCK_JUDGED_STEPS], "the pass after it runs every step again");
      fx.clock.jump(HOUR);
    } finally {
      await maintenance.stop();
    }
  });
});

describe("red team: the audit log on a store initialised while the host's clock ran a day ahead", () => {
  it("attack: an intruder who can write the database deletes every audit checkpoint of a store whose keys were made while the clock ran a day ahead (corrected since) — `audit verify` fails, naming keys dated ahead, and routine signing does not vouch for the log (ASVS 16.4.2) (was: verify passed for a day: keys dated ahead were taken as young)", async () => {
    // authFixture initialises the store (keys, init's checkpoint) at its clock's time: that is the "ahead" time.
    const fx = await authFixture();
    try {
      const aheadAt = fx.clock.now();
      await fx.user("audit-ahead@example.org");
      await fx.app.audit.checkpoint();
      assert.ok((await fx.app.audit.checkpoints()).length > 0, "control: the store holds checkpoints");
      assert.equal((await fx.app.audit.verify()).ok, true, "control: verify passes");

      // The intruder deletes the checkpoints (and could then rewrite the log whole: nothing signed holds it).
      await fx.app.db.db.deleteFrom("audit_checkpoints").execute();
      // Control: two hours after init by the clock that made the keys, verify names the deletion.
      fx.clock.set(aheadAt + 2 * HOUR);
      assert.equal((await fx.app.audit.verify()).ok, false, "control: a store two hours old with no checkpoint fails verify");
      // But NTP had corrected that clock: real time is a day behind what the host believed when it initialised the store,
      // and the store is two hours old in real use (beyond FIRST_CHECKPOINT_WITHIN_MS, the hour a log may go unsigned).
      fx.clock.set(aheadAt - DAY + 2 * HOUR);
      const report = await fx.app.audit.verify();
      // The maintenance pass's routine checkpoint (AuditLog.checkpoint) must refuse to sign such a log too.
      const signed = await fx.app.audit.checkpoint().then(() => true, () => false);
      assert.equal(report.ok, false,
        "audit verify passed a log of a store two hours old in real time whose checkpoints were all deleted: firstCheckpointProblem " +
        "takes keys dated ahead of the clock (now - since < 0) as young, so for a day after the correction a rewritten log with no " +
        `checkpoint verifies${signed ? ", and a routine checkpoint signed it (vouching for whatever the intruder wrote)" : ""}`);
      assert.equal(signed, false, "a routine checkpoint signed a log whose checkpoints were deleted");
      assert.match(report.problem?.problem ?? "", /keys, the signing keys among them, are dated ahead of this clock .*22 hours ahead/, "verify names keys dated ahead");
    } finally {
      await fx.close();
    }
  });
});
