// Red-team round "new code twenty-seven b": this afternoon's new code (d6629bcb..HEAD): RotateOptions.record (a hook run
// last in a session rotation's transaction: MFA step-ups, password change, sign out others), the last-seen touch that
// skips a held row on PostgreSQL (FOR UPDATE SKIP LOCKED) until half the idle timeout has gone unrecorded.
// Attacker: the environment at the worst moment (a record that fails for a reason other than a busy store: a broken
// audit store, a bug), and anyone who can hold a session's row (a frozen node inside a transaction, a DBA's session).
// Tried: a password change whose auth.session.replaced record throws (not busy); a TOTP step-up at the gate whose
// auth.mfa.verified throws (not busy); sign out others whose auth.session.ended-others throws; the sender's retry of a
// delivered notice's recording while a frozen node holds the outbox row (its renewals time out too) until the lease
// lapses; a held session row while the owner keeps using the session up to, and past, half the idle timeout.
// Held: every record failure rolled the whole rotation back (old password, other sessions, the browser's session and
// its TOTP step as they were; the retry works, recorded once); the half-idle threshold switches the touch from skipping
// to waiting exactly at half the idle timeout (the waited touch writes last-seen), so a session in use does not idle out.
// Found (fixed since: the recording retry renews its claim even when the lease lapsed, `Outbox.renew({ lapsed })`:
// the claim token, not the lease's end, says whose the row is): (1) OutboxSender.#recorded gave up on an intact claim once the message's lease has lapsed behind a held row:
// outbox.renew kept only a lease not yet over, #recorded read "not kept" as "claim lost" and returned false without
// trying the claim-fenced mark, and the notice the relay accepted was delivered again by the next claim.
// Loopback and temp dirs only; the PostgreSQL part is skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import type { Kysely } from "kysely";
import { authFixture, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { noticeDeliveryAudit } from "../src/http/mail-runner.ts";
import { systemRandom } from "../src/lib/random.ts";
import { isSecurityNotice } from "../src/notify/delivery-audit.ts";
import type { Outbox } from "../src/notify/outbox.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";
import type { Schema } from "../src/store/schema.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { postgresUnavailable, startPostgres, type PgCluster } from "./helpers/postgres.ts";
import { watchLockWaits } from "./helpers/lock-waits.ts";

type AppendIn = (db: Kysely<Schema>, input: { type: string }) => Promise<unknown>;

/** Makes the audit log's appendIn throw a plain (not busy) error for events of `type`; returns the undo. */
function breakRecord(fx: AuthFixture, type: string): () => void {
  const audit = fx.app.audit as unknown as { appendIn: AppendIn };
  const original = audit.appendIn;
  audit.appendIn = async function (this: unknown, db, input) {
    if (input.type === type) throw new Error(`disk full (test): ${type}`);
    return original.call(this, db, input);
  };
  return () => {
    audit.appendIn = original;
  };
}

async function eventsOf(fx: AuthFixture, type: string, subject: string): Promise<number> {
  return (await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", type).where("subject", "=", subject).execute()).length;
}

describe("RotateOptions.record failing for a reason other than a busy store (SQLite)", () => {
  it("attack: a password change whose auth.session.replaced record throws (not busy) — rolled back whole: the old password still signs in, the new one does not, the other browser and this one stay signed in, no auth.password.changed and no password-changed notice; the retry changes it (ASVS 6.2.2, 7.4.3, 16.3.1)", async () => {
    const fx = await authFixture();
    try {
      const flows = authFlows(() => fx);
      const owner = await flows.signedIn("pw-broken-record@example.org");
      const other = fx.browser();
      assert.equal((await other.login(owner.email, owner.password)).statusCode, 200);
      await fx.deliver();
      const queuedBefore = (await fx.app.db.db.selectFrom("outbox_messages").select("id").where("kind", "=", "security.password-changed").execute()).length;
      const fresh = "amber lanterns over quiet harbours";
      const undo = breakRecord(fx, "auth.session.replaced");
      const res = await owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: fresh } });
      undo();
      assert.ok(res.statusCode >= 500, `control: the change failed: ${res.statusCode} ${res.body}`);
      const problems: string[] = [];
      if ((await owner.b.request("GET", "/auth/session")).json().authenticated !== true) problems.push("the browser that asked lost its session");
      if ((await other.request("GET", "/auth/session")).json().authenticated !== true) problems.push("the other browser was signed out");
      if ((await fx.browser().login(owner.email, fresh)).statusCode === 200) problems.push("the new password signs in");
      if ((await fx.browser().login(owner.email, owner.password)).statusCode !== 200) problems.push("the old password no longer signs in");
      if ((await eventsOf(fx, "auth.password.changed", owner.id)) !== 0) problems.push("auth.password.changed was recorded");
      const queuedAfter = (await fx.app.db.db.selectFrom("outbox_messages").select("id").where("kind", "=", "security.password-changed").execute()).length;
      if (queuedAfter !== queuedBefore) problems.push("a password-changed notice was queued");
      assert.deepEqual(problems, [], `the change's record failed (500), yet part of it stayed: ${problems.join("; ")}`);
      const retry = await owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: fresh } });
      assert.equal(retry.statusCode, 200, `the retry changes it: ${retry.body}`);
      assert.equal(await eventsOf(fx, "auth.session.replaced", owner.id), 1, "recorded once");
      assert.equal((await fx.app.audit.verify()).ok, true);
    } finally {
      await fx.close();
    }
  });

  it("attack: the owner's right TOTP code at the gate while auth.mfa.verified cannot be written (not busy) — the failure leaves no aal-2 session, the gate session as it was and the step unspent: the same code works on the retry, a replay after it is refused (ASVS 6.5.1, 7.2.4, 16.3.1)", async () => {
    const fx = await authFixture();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("totp-broken-record@example.org");
      const gate = await flows.pending(u);
      const replacedRows = async (): Promise<number> => (await fx.app.db.db.selectFrom("replaced_sessions").select("id").execute()).length;
      const replacedBefore = await replacedRows();
      const aal2Before = (await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", u.id).where("aal", "=", 2).execute()).length;
      const code = totpCode(u.secret, fx.clock.now());
      const undo = breakRecord(fx, "auth.mfa.verified");
      const res = await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
      undo();
      assert.ok(res.statusCode >= 500, `control: the step-up failed: ${res.statusCode} ${res.body}`);
      const aal2After = (await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", u.id).where("aal", "=", 2).execute()).length;
      assert.equal(aal2After, aal2Before, "no aal-2 session was left behind by the failed step-up (none named, none held by a browser)");
      assert.equal(await replacedRows(), replacedBefore, "the gate session was not replaced");
      const retry = await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
      assert.equal(retry.statusCode, 200, `the same code works on the retry (the step was not spent): ${retry.body}`);
      assert.equal(await eventsOf(fx, "auth.mfa.verified", u.id), 1, "recorded once");
      const replay = await (await flows.pending(u)).request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
      assert.equal(replay.statusCode, 401, `a replay of the spent step is refused: ${replay.body}`);
    } finally {
      await fx.close();
    }
  });

  it("attack: sign out others while auth.session.ended-others cannot be written (not busy) — every session stays as it was (this browser's too), and the retry ends the others, recorded once (ASVS 7.4.3, 16.3.1)", async () => {
    const fx = await authFixture();
    try {
      const owner = await authFlows(() => fx).signedIn("others-broken-record@example.org");
      const other = fx.browser();
      assert.equal((await other.login(owner.email, owner.password)).statusCode, 200);
      const route = "/auth/sessions";
      const undo = breakRecord(fx, "auth.session.ended-others");
      const res = await owner.b.request("DELETE", route, { csrf: true });
      undo();
      assert.ok(res.statusCode >= 500, `control: signing out others failed: ${res.statusCode} ${res.body}`);
      assert.equal((await other.request("GET", "/auth/session")).json().authenticated, true, "the other browser is still signed in");
      assert.equal((await owner.b.request("GET", "/auth/session")).json().authenticated, true, "this browser kept its session");
      const retry = await owner.b.request("DELETE", route, { csrf: true });
      assert.equal(retry.statusCode, 200, retry.body);
      assert.equal((await other.request("GET", "/auth/session")).json().authenticated, false, "the retry ended the other session");
      assert.equal(await eventsOf(fx, "auth.session.ended-others", owner.id), 1, "recorded once");
    } finally {
      await fx.close();
    }
  });
});

/** What PostgreSQL raises past lock_timeout (55P03): storeBusyError's "busy store". */
function lockTimeout(): Error {
  return Object.assign(new Error("canceling statement due to lock timeout"), { code: "55P03" });
}

describe("the sender's retry of a recording behind a busy store", () => {
  it("attack: a frozen node holds a delivered security notice's outbox row (its 'sent' mark and the lease renewals time out) until the message's lease has lapsed, then lets go; no other sender ever took the claim — the retry records it under its intact claim and the owner gets the notice once (ASVS 6.3.7, 16.5.3) (was: the lapsed lease read as a lost claim, lostClaims 1, the notice delivered again)", async () => {
    const fx = await authFixture();
    try {
      const owner = await authFlows(() => fx).signedIn("lapsed-lease@example.org");
      await fx.deliver(); // what the sign-in queued
      const changed = await owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: "amber lanterns over quiet harbours" } });
      assert.equal(changed.statusCode, 200, changed.body);
      const real = fx.app.accounts.outbox;
      // The row is held from the moment the relay accepted the notice: every write to it waits past the bound (55P03),
      // each wait and backoff taking minutes of the frozen node's time, until the holder lets go.
      let held = false;
      let failedTries = 0;
      const outbox = new Proxy(real, {
        get(target, key, receiver) {
          if (key === "transaction") {
            return async (work: Parameters<Outbox["transaction"]>[0]) => {
              if (held) {
                failedTries++;
                fx.clock.advance(3 * 60_000);
                if (failedTries === 2) held = false; // the holder lets go after this wait
                throw lockTimeout();
              }
              return target.transaction(work);
            };
          }
          if (key === "renew") {
            return async (input: Parameters<Outbox["renew"]>[0]) => {
              if (held) throw lockTimeout();
              return target.renew(input);
            };
          }
          const value = Reflect.get(target, key, receiver) as unknown;
          return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      // A slow relay: it accepts the notice ten minutes in (inside the 11-minute delivery budget).
      const transport = recordingTransport(async (m) => {
        if (!isSecurityNotice(m.kind) || failedTries > 0 || held) return;
        fx.clock.advance(10 * 60_000);
        held = true;
      });
      const sender = (): OutboxSender => new OutboxSender(
        { outbox, transport, clock: fx.clock, random: systemRandom, audit: noticeDeliveryAudit(fx.app), logger: { warn: () => {} } },
        { name: "node-a" },
      );
      const report = await sender().runOnce();
      assert.equal(failedTries, 2, "control: the recording met the busy store twice, then the row was free");
      const row = await fx.app.db.db.selectFrom("outbox_messages").select(["status", "claimed_by"]).where("kind", "=", "security.password-changed").executeTakeFirstOrThrow();
      // Nobody took the claim over: the row is still node-a's, so the fenced 'sent' mark would have been recorded.
      const intact = row.status === "sending" && row.claimed_by !== null;
      fx.clock.advance(20 * 60_000);
      await sender().drain();
      const copies = transport.sent.filter((m) => m.kind === "security.password-changed").length;
      assert.equal(copies, 1,
        `the password-changed notice the relay accepted was delivered ${copies} times (first batch: ${JSON.stringify(report)}, row after it: ${JSON.stringify(row)}, ` +
        `claim intact: ${intact}): OutboxSender.#recorded renewed the lease before its retry with outbox.renew, which keeps only a lease not yet over ` +
        "(claimed_until > now); the renewals before had timed out on the held row (skipped as busy), so by the time the row was free the lease had lapsed, " +
        "renew returned no id and #recorded returned false ('claim lost') without trying markSent, whose fence (claimed_by = this sender) still held. " +
        "The row stayed 'sending' under an expired lease and the next claim delivered the notice again — the second copy the retry exists to prevent");
    } finally {
      await fx.close();
    }
  });
});

const unavailable = postgresUnavailable();
const skip = unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {};
let cluster: PgCluster | null = null;
let schemas = 0;
/** The lock bound of this file's PostgreSQL fixture: 2 s (BULWARK_DB_LOCK_TIMEOUT_SECONDS), not the product's 5 s default. */
const LOCK_BOUND_SECONDS = 2;
before(async () => {
  if (!unavailable) cluster = await startPostgres();
});
after(async () => {
  await cluster?.stop();
});

describe("the last-seen touch behind a held session row: the half-idle threshold (PostgreSQL)", skip, () => {
  it("attack: a frozen node holds the owner's session row while the owner keeps using it — short of half the idle timeout the touch is skipped at once (200, last-seen stale), at half the idle timeout it waits for the row and writes it, so the session in use never idles out (ASVS 7.3.1, 16.5.3)", async () => {
    assert.ok(cluster, "PostgreSQL did not start");
    const url = await cluster.createSchema(`rt27b_${process.pid}_${++schemas}`);
    const fx = await authFixture({ BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: testMasterKey("new-code-twentyseven-b"), BULWARK_DB_LOCK_TIMEOUT_SECONDS: String(LOCK_BOUND_SECONDS) });
    const dba = new pg.Client({ connectionString: url });
    await dba.connect();
    try {
      const owner = await authFlows(() => fx).signedIn("half-idle@example.org");
      const { idleTimeoutMs } = fx.app.accounts.sessions.policy;
      const seen = async (): Promise<number> => Number((await fx.app.db.db.selectFrom("sessions").select("last_seen_at").where("user_id", "=", owner.id).executeTakeFirstOrThrow()).last_seen_at);
      const start = await seen();
      await dba.query("BEGIN");
      await dba.query("SELECT id FROM sessions WHERE user_id = $1 FOR UPDATE", [owner.id]);
      // Requests every few minutes while the row is held, short of half the idle timeout since the last write.
      fx.clock.set(start + idleTimeoutMs / 2 - 1);
      // Skipped, not waited for: the row is held for the whole request, so a touch that queued for it could only have
      // ended in the 2 s lock_timeout (55P03); none did, and the answer came while the row was still held.
      const watch = watchLockWaits({ ignore: [dba] });
      let early;
      try {
        early = await owner.b.request("GET", "/auth/session");
      } finally {
        watch.restore();
      }
      assert.equal(early.statusCode, 200, early.body);
      assert.deepEqual(watch.waits, [], "the touch short of half the idle timeout waited for the held row until its lock bound instead of skipping it");
      // At half the idle timeout unrecorded: the touch waits for the row (it would fail as busy past the bound; the row is
      // let go half a second in, well within it).
      fx.clock.set(start + idleTimeoutMs / 2);
      let answered = false;
      const pending = owner.b.request("GET", "/auth/session").finally(() => (answered = true));
      await new Promise((r) => setTimeout(r, 500));
      const waited = !answered;
      await dba.query("ROLLBACK");
      const late = await pending;
      assert.equal(late.statusCode, 200, late.body);
      assert.ok(waited, "at half the idle timeout unrecorded, the touch waited for the held row instead of skipping it");
      assert.equal(await seen(), fx.clock.now(), "the waited touch wrote last-seen");
      // The owner goes on using it: nearly a full idle timeout after the skipped touch, the session stands.
      fx.clock.set(start + idleTimeoutMs / 2 + idleTimeoutMs - 1);
      assert.equal((await owner.b.request("GET", "/auth/session")).json().authenticated, true, "the session in use did not idle out");
    } finally {
      await dba.query("ROLLBACK").catch(() => {});
      await dba.end().catch(() => {});
      await fx.close();
    }
  });
});
