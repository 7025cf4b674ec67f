// Red-team round "bounded waits b": the PostgreSQL wait bounds (every pooled connection starts with lock_timeout
// BULWARK_DB_LOCK_TIMEOUT_SECONDS, LOCK_TIMEOUT_MS = 5 s by default, 2 s in this file, and statement_timeout 5 min;
// past either a request answers 503 BULWARK_ERR_DB_BUSY, a CLI exits 3), part two. The attacker is the environment
// at the worst moment, or anyone who can hold a row past the bound (a
// frozen node inside a transaction, a DBA's open session): a second, superuser pg client on the same schema holds a
// lock while Bulwark's work waits on it. The first round (test/bounded-waits-red-team.test.ts) covered login, reset
// completion, a lock-accounts batch and settings leaks; not repeated here.
// Tried: the outbox sender recording a delivered security notice behind a held audit head; a TOTP step-up
// (/auth/mfa/verify) behind the same; an ordinary authenticated GET whose session's last-seen touch meets a held
// session
// row; an API token's first use whose last-used write meets a held token row; `keys rotate-master`'s transaction behind
// a held audit head.
// Held: rotate-master (one transaction: refused as busy, the old master key stays in force and working, the
// keyring is not left half-rotated in memory, and a retry rotates).
// Found: (1) a security notice the relay accepted whose 'sent' mark waits on the audit head past the bound is
// delivered again once its lease ends (the lock wait that used to end in a commit now ends in a second copy; the
// second copy test/notice-delivery-audit.test.ts accepts is for an audit store that fails, not for a lock wait past the bound)
// (fixed since: the sender retries a recording the busy store refused — backoff, the message's lease renewed under its
// claim, for up to one lease — instead of raising, so the notice is recorded once and the batch goes on);
// (2) a TOTP step-up whose audit record waits past the bound answers 503 after it committed: the step is spent, an
// aal-2 session stands that no browser holds and no event names, and the owner's retry with the same code is refused;
// (fixed since: auth.mfa.verified, and a recovery code's notice, are written last in the rotation's transaction
// (RotateOptions.record), so a 503 rolls back the rotation and the spend; a successful step-up's replay is still refused);
// (3) a GET whose last-seen touch meets a held session row answers 503 after the bound, where a stale last-seen would do
// (fixed since: on PostgreSQL the touch skips a held row (FOR UPDATE SKIP LOCKED) and the next request tries again; it
// waits as before once half the idle timeout has gone unrecorded, so skipped touches never idle out a session in use);
// (4) an API token's request whose last-used write meets a held token row answers 503 after the bound, likewise (fixed since:
// the same skip of a held row; last use is only shown in the token list).
// Loopback and temp dirs only; skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import type { LightMyRequestResponse } from "fastify";
import { HOST, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { noticeDeliveryAudit } from "../src/http/mail-runner.ts";
import { systemRandom } from "../src/lib/random.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { isSecurityNotice } from "../src/notify/delivery-audit.ts";
import { rotateMasterKey, recordedMasterKeyCheck } from "../src/store/key-store.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { pgSites, within, HOLD_AUDIT_HEAD } from "./helpers/pg-site.ts";

const MASTER = testMasterKey("bounded-waits-b-red-team");
// Each attack waits out the bound: a 2 s bound for the file's sites.
const { unavailable, site, lockBoundMs } = pgSites("bwaitb", MASTER, { lockTimeoutSeconds: 2 });
/** Real time a wait past the bound takes to be refused, with room. */
const PAST_BOUND_MS = lockBoundMs + 3_000;
/** The sender's default lease: a claim left by a failed recording is taken again after it. */
const LEASE_MS = 15 * 60_000;
const skip = unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {};


/** Runs `request` while the DBA holds `lock` (a SELECT … FOR UPDATE) in an open transaction; the lock is let go after. */
async function behindHeld(dba: pg.Client, lock: string, params: unknown[], request: () => Promise<LightMyRequestResponse>): Promise<{ res: LightMyRequestResponse; inTime: boolean }> {
  await dba.query("BEGIN");
  const held = await dba.query(lock, params);
  assert.ok((held.rowCount ?? 0) > 0, `control: the DBA holds a row (${lock})`);
  const pending = request();
  const answered = await within(pending, PAST_BOUND_MS);
  await dba.query("ROLLBACK");
  return { res: answered ?? (await pending), inTime: answered !== null };
}


describe("the outbox sender behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: a security notice the relay accepted, whose 'sent' mark and audit event wait past the bound on a held audit head — the owner gets the notice once: the recording is retried, not the delivery, and the batch goes on (ASVS 6.3.7, 16.5.3) (was: 55P03 was raised, the row stayed 'sending' and was delivered again after its lease; the worker stopped)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const owner = await flows.signedIn("notice-owner@example.org");
      await fx.deliver(); // what the sign-in queued
      const changed = await owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: "amber lanterns over quiet harbours" } });
      assert.equal(changed.statusCode, 200, changed.body);
      // The relay accepts the notice; as it does, a frozen node (a DBA) takes the audit head and holds it past the bound.
      let holding = false;
      const transport = recordingTransport(async (m) => {
        if (!isSecurityNotice(m.kind) || holding) return;
        holding = true;
        await dba.query("BEGIN");
        await dba.query(HOLD_AUDIT_HEAD);
      });
      const sender = (): OutboxSender => new OutboxSender(
        { outbox: fx.app.accounts.outbox, transport, clock: fx.clock, random: systemRandom, audit: noticeDeliveryAudit(fx.app), logger: { warn: () => {} } },
        { name: "node-a" },
      );
      const run = sender().runOnce();
      const first = await within(run.then(() => "ended", (error: unknown) => error), PAST_BOUND_MS + 2_000);
      await dba.query("ROLLBACK");
      assert.ok(holding, "control: a security notice was delivered while the head was taken");
      // Control: the recording of the delivered notice ran into the lock bound (its first try raised 55P03 after the bound) and
      // was still being retried when the head was let go; then it commits, and the rest of the batch is delivered.
      assert.equal(first, null, `control: the recording waited past the lock bound: ${String(first)}`);
      const report = await run;
      assert.equal(report.sent, report.claimed, `the batch was recorded sent, the notice included: ${JSON.stringify(report)}`);
      assert.equal(report.lostClaims, 0, JSON.stringify(report));
      // The lock is gone at once; the sender goes on as a server's loop would, the clock past the lease.
      fx.clock.advance(LEASE_MS + 1_000);
      await sender().drain();
      const notices = transport.sent.filter((m) => isSecurityNotice(m.kind));
      const copies = new Map<string, number>();
      for (const m of notices) copies.set(m.id, (copies.get(m.id) ?? 0) + 1);
      const twice = [...copies].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [],
        `security notice(s) delivered more than once: ${JSON.stringify(twice)} (kinds ${JSON.stringify(notices.map((m) => m.kind))}): the relay accepted the notice, ` +
        "its 'sent' mark and notify.security-notice.sent event waited past the bound on the held audit head, 55P03 rolled them back and OutboxSender.#recorded raised it; " +
        "the row stayed 'sending' and, once its lease ended, was delivered again. Before the bound the same lock made the recording wait and commit; now a " +
        "routine lock held past the bound turns into a second copy of the notice (and a worker lost for the rest of the batch)");
      assert.equal((await fx.app.audit.verify()).ok, true);
    } finally {
      await close();
    }
  });
});

describe("a TOTP step-up behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: the owner's right TOTP code at the second-factor gate while the audit head is held past the bound — a 503 leaves nothing of the step-up behind: no aal-2 session that no browser holds and no event names, and the same code works on the retry Retry-After asks for; a replay after that is refused (ASVS 6.5.1, 7.2.4, 16.3.1, 16.5.3) (was: the rotation committed before auth.mfa.verified hit the bound: the step spent, an aal-2 session no browser held, the retry refused as replaced)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("totp-busy@example.org");
      const gate = await flows.pending(u);
      const code = totpCode(u.secret, fx.clock.now());
      const { res, inTime } = await behindHeld(dba, HOLD_AUDIT_HEAD, [], () => gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } }));
      assert.ok(inTime, "control: the step-up answered within the bound");
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      const aal2 = await fx.app.db.db.selectFrom("sessions").select(["id", "aal"]).where("user_id", "=", u.id).where("aal", "=", 2).execute();
      const named = new Set((await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.mfa.verified").where("subject", "=", u.id).execute())
        .map((e) => (JSON.parse(e.data) as { newSessionId?: string }).newSessionId));
      // The enrolment's own session (u.b) is aal 2 too and named by no auth.mfa.verified: left out.
      const enrolled = (await u.b.request("GET", "/auth/session")).json() as { sessionId?: string; id?: string };
      const orphans = aal2.filter((s) => !named.has(s.id) && s.id !== enrolled.sessionId && s.id !== enrolled.id);
      // The owner retries from the same browser, as Retry-After tells them to (its CSRF read first, as a page does).
      const retry = await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } })
        .then((r) => ({ statusCode: r.statusCode, body: r.body }), (error: unknown) => ({ statusCode: 0, body: String((error as Error).message) }));
      const problems: string[] = [];
      if (orphans.length > 0) {
        problems.push(`${orphans.length} aal-2 session(s) were stored by the step-up that answered 503 and stay live with no auth.mfa.verified naming them and no browser holding them (stepUp's rotation committed, spending the step, before the audit append hit the lock bound)`);
      }
      if (retry.statusCode !== 200) {
        problems.push(`the owner's retry from the same browser failed (${retry.statusCode || "its CSRF read"}: ${retry.body}): the 503'd step-up had committed its rotation (the gate's session replaced, the TOTP step spent) before its auth.mfa.verified append hit the lock bound, and the new session's cookie was never sent, so the browser is told it "holds the new session cookie" when it does not`);
      } else {
        fx.clock.advance(1_000);
        const replay = await (await flows.pending(u)).request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
        assert.equal(replay.statusCode, 401, `a replay of the spent step is refused: ${replay.body}`);
      }
      assert.deepEqual(problems, [], `a TOTP step-up answered 503 BULWARK_ERR_DB_BUSY "try again shortly", yet: ${problems.join("; ")}`);
    } finally {
      await close();
    }
  });
});

describe("bookkeeping writes of an authenticated read behind a held row (PostgreSQL)", skip, () => {
  it("attack: a DBA's (or a frozen node's) transaction holds a session's row while its owner reads GET /auth/session a minute after their last request — the read answers 200 with a stale last-seen, not 503 after the lock bound, and the next read once the row is free writes it (ASVS 16.5.3) (was: validate awaited the last-seen touch: 503 after 5 s)", async () => {
    const { fx, dba, close } = await site();
    try {
      const owner = await authFlows(() => fx).signedIn("reader@example.org");
      fx.clock.advance(2 * 60_000); // past the touch interval: this read writes last_seen_at
      const started = Date.now();
      const { res, inTime } = await behindHeld(dba, "SELECT id FROM sessions WHERE user_id = $1 FOR UPDATE", [owner.id], () => owner.b.request("GET", "/auth/session"));
      const took = Date.now() - started;
      assert.ok(inTime, "control: answered within the bound");
      assert.equal(res.statusCode, 200,
        `GET /auth/session answered ${res.statusCode} after ${took} ms: ${res.body}: the session was valid and only its last-seen touch (session-manager's touch, ` +
        "a bookkeeping UPDATE written at most once a minute) waited on the held row; past lock_timeout the whole read failed, where a stale last-seen would do");
      assert.equal((res.json() as { authenticated?: boolean }).authenticated, true, `the read was served as the owner: ${res.body}`);
      // The touch skipped behind the held row is made by the next read once the row is free: a session in use keeps its idle time.
      const again = await owner.b.request("GET", "/auth/session");
      assert.equal(again.statusCode, 200, again.body);
      const seen = await fx.app.db.db.selectFrom("sessions").select("last_seen_at").where("user_id", "=", owner.id).execute();
      assert.ok(seen.some((r) => Number(r.last_seen_at) === fx.clock.now()), `the next read wrote last-seen: ${JSON.stringify(seen)}`);
    } finally {
      await close();
    }
  });

  it("attack: a transaction holds an API token's row while a script makes its first call with it — GET /api/v1/roles answers 200 (last-used written later), not 503 after the lock bound (ASVS 16.5.3) (was: verify awaited the last_used_at/ip write: 503 after 5 s)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const reader = await flows.userWith(["accounts.read"]);
      const token = await flows.tokenFor(reader, ["accounts.read"]);
      const call = (): Promise<LightMyRequestResponse> => fx.server.inject({ method: "GET", url: "/api/v1/roles", headers: { host: HOST, authorization: `Bearer ${token}` } });
      const started = Date.now();
      const { res, inTime } = await behindHeld(dba, "SELECT id FROM api_tokens WHERE user_id = $1 FOR UPDATE", [reader], call);
      const took = Date.now() - started;
      assert.ok(inTime, "control: answered within the bound");
      assert.equal(res.statusCode, 200,
        `GET /api/v1/roles with a valid token answered ${res.statusCode} after ${took} ms: ${res.body}: only the token's last_used_at/ip write ` +
        "(token-service verify, bookkeeping written at most once a minute) waited on the held row; past lock_timeout the read failed");
      assert.equal((await call()).statusCode, 200, "control: the same call works once the row is free");
    } finally {
      await close();
    }
  });
});

describe("keys rotate-master behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: the master key rotation's audit record waits past the bound on a held audit head — refused as busy, nothing half-rotated: the store records the old key, the keyring in memory still seals and signs under it, and a retry rotates (ASVS 11.2.2, 16.5.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const before = await recordedMasterKeyCheck(fx.app.db);
      const rotate = (): ReturnType<typeof rotateMasterKey> => rotateMasterKey(fx.app.db, fx.app.keyring, systemRandom.bytes(32), {
        inTransaction: (trx, r) => fx.app.audit.appendIn(trx, { type: "keys.master-rotated", actor: "cli:test", data: { from: r.from, to: r.to } }).then(() => undefined),
      });
      await dba.query("BEGIN");
      await dba.query(HOLD_AUDIT_HEAD);
      const pending = rotate().then(() => null, (error: unknown) => error);
      const failed = await within(pending, PAST_BOUND_MS);
      await dba.query("ROLLBACK");
      const error = failed ?? (await pending);
      assert.ok(failed !== null, "the rotation gave up within the bound");
      assert.equal((error as { code?: string } | null)?.code, "55P03", `refused on the lock bound: ${String(error)}`);
      assert.equal(await recordedMasterKeyCheck(fx.app.db), before, "the store still records the old master key");
      assert.equal(fx.app.keyring.masterCheck, before, "the keyring in memory holds the old master key, not the abandoned one");
      // The process goes on: an audited write (signed, sealed) and a verify of the chain.
      await fx.app.audit.append({ type: "test.after-busy-rotation", actor: "test", data: {} });
      assert.equal((await fx.app.audit.verify()).ok, true, "the chain verifies after the refused rotation");
      const done = await rotate();
      assert.notEqual(done.from, done.to);
      assert.notEqual(await recordedMasterKeyCheck(fx.app.db), before, "the retry rotated");
      assert.equal((await fx.app.audit.verify()).ok, true);
    } finally {
      await close();
    }
  });
});
