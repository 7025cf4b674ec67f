// Server housekeeping: expired sessions, reset links, flood events and WebAuthn challenges are removed, and
// what is still live is left alone.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { remindExpiringTokens } from "../src/accounts/tokens/expiry-reminders.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { ManualClock } from "../src/lib/clock.ts";

const HOUR = 3_600_000;
let root: string;
let app: OpenedApp;
const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));

before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-maintenance-"));
  app = await openApp({ env: { BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent" }, mode: "init", clock });
});
after(async () => {
  await app.close();
  rmSync(root, { recursive: true, force: true });
});

const count = async (table: "sessions" | "password_reset_tokens" | "flood_events" | "webauthn_challenges"): Promise<number> =>
  Number((await app.db.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);

describe("maintenance", () => {
  it("removes expired rows and keeps live ones", async () => {
    const user = await app.accounts.users.create({ email: "upkeep@example.org" });
    const old = await app.accounts.sessions.createSession(user.id);
    await app.accounts.passwordReset.issue(user.id);
    await app.accounts.flood.registerFailure({ identifier: user.email, ip: "192.0.2.1" });
    await app.db.db.insertInto("webauthn_challenges").values({ challenge: "stale-challenge", user_id: user.id, purpose: "authentication", created_at: clock.now(), expires_at: clock.now() + 5 * 60_000 }).execute();

    clock.advance(13 * HOUR); // past the session's absolute life, the link's 30 minutes, the flood windows
    const live = await app.accounts.sessions.createSession(user.id);
    await app.accounts.flood.registerFailure({ identifier: user.email, ip: "192.0.2.1" });

    const maintenance = startMaintenance(app, { intervalMs: 24 * HOUR });
    try {
      const removed = await maintenance.runOnce();
      assert.equal(removed["sessions"], 1);
      assert.equal(removed["passwordResetLinks"], 1);
      assert.equal(removed["webauthnChallenges"], 1);
      assert.ok((removed["floodEvents"] ?? 0) >= 1);
      assert.equal(removed["clockSkew"], 0, "the clock reading removes nothing (and on SQLite compares nothing)");
      assert.ok(Object.values(removed).every((n) => n >= 0), "no step failed");
    } finally {
      await maintenance.stop();
    }
    assert.equal((await app.accounts.sessions.validate(old.token)).valid, false);
    assert.equal((await app.accounts.sessions.validate(live.token)).valid, true, "the live session survives");
    assert.equal(await count("sessions"), 1);
    assert.equal(await count("password_reset_tokens"), 0);
    assert.equal(await count("webauthn_challenges"), 0);
    assert.ok(await count("flood_events") >= 1, "the recent failure still counts");
  });

  it("reminds a token's owner once, a week before it expires, and not for a short-lived, revoked or far-off token (ASVS 6.4.5; was: no reminder)", async () => {
    const DAY = 24 * HOUR;
    const owner = await app.accounts.users.create({ email: "token-owner@example.org" });
    const tokens = app.accounts.tokens;
    const monthly = await tokens.create(owner.id, { name: "deploy bot", scopes: ["accounts.read"], expiresAt: clock.now() + 30 * DAY });
    const revoked = await tokens.create(owner.id, { name: "old bot", scopes: ["accounts.read"], expiresAt: clock.now() + 30 * DAY });
    await tokens.revoke(owner.id, revoked.info.id);
    await tokens.create(owner.id, { name: "for the afternoon", scopes: ["accounts.read"], expiresAt: clock.now() + 5 * HOUR });
    await tokens.create(owner.id, { name: "yearly", scopes: ["accounts.read"], expiresAt: clock.now() + 365 * DAY });
    await tokens.create(owner.id, { name: "forever", scopes: ["accounts.read"], expiresAt: null });
    const reminders = async (): Promise<Array<{ text: string; key: string }>> =>
      (await app.db.db.selectFrom("outbox_messages").select(["body_text", "idempotency_key"]).where("kind", "=", "security.api-token-expiring").execute())
        .map((r) => ({ text: r.body_text, key: r.idempotency_key }));
    const maintenance = startMaintenance(app, { intervalMs: 24 * HOUR });
    try {
      assert.equal((await maintenance.runOnce())["tokenExpiryReminders"], 0, "a month ahead: nothing yet");
      clock.advance(24 * DAY); // the monthly token now expires in 6 days; the afternoon one has expired
      assert.equal((await maintenance.runOnce())["tokenExpiryReminders"], 1);
      assert.equal((await maintenance.runOnce())["tokenExpiryReminders"], 0, "queued once, not once per pass");
      clock.advance(DAY);
      assert.equal((await maintenance.runOnce())["tokenExpiryReminders"], 0);
    } finally {
      await maintenance.stop();
    }
    const sent = await reminders();
    assert.equal(sent.length, 1);
    assert.match(sent[0]?.text ?? "", new RegExp(`expires on ${new Date(Date.UTC(2026, 10, 1, 9) + 30 * DAY).toISOString().slice(0, 10)}`));
    assert.match(sent[0]?.text ?? "", /create a new token \(POST \/api\/v1\/tokens\)/);
    // A reminder, not an alarm: no "if it was not you" advice, and the token's name (chosen by whoever made it) is not in it.
    assert.doesNotMatch(sent[0]?.text ?? "", /If it was not you|deploy bot/);
    assert.ok(sent[0]?.key.includes(monthly.info.id));
    // A pass over a week that holds only tokens reminded already checks none of them again (one read per page).
    const checked: string[] = [];
    const again = await remindExpiringTokens({ db: app.db.db, outbox: app.accounts.outbox, appName: "Bulwark", now: clock.now(), logger: app.logger, usable: async (id) => (checked.push(id), true) });
    assert.equal(again, 0);
    assert.deepEqual(checked, []);
  });
});

describe("maintenance timers", () => {
  it("refuses an interval or first-pass delay Node's timers cannot keep, instead of passing every millisecond", () => {
    // Was: a delay above 2^31 − 1 ms (~24.8 days) was clamped by Node to 1 ms with a TimeoutOverflowWarning, so the
    // test helper's "never" first pass (up to 40 days) ran at once, a second pass beside the test's own.
    assert.throws(() => startMaintenance(app, { intervalMs: 30 * 24 * HOUR }), /maintenance: the interval \(2592000000 ms\) must be over 0 and at most 2147483647 ms/);
    assert.throws(() => startMaintenance(app, { intervalMs: 20 * 24 * HOUR, firstPassDelayMs: 20 * 24 * HOUR }), /first pass's delay \(1728000000 ms\) at most half/);
    assert.throws(() => startMaintenance(app, { intervalMs: 0 }), RangeError);
  });

  it("the test helper's one pass sets no timer Node clamps to 1 ms", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const { maintenancePass } = await import("./helpers/maintenance-pass.ts");
      await maintenancePass(app);
      await new Promise((r) => setTimeout(r, 20)); // warnings are emitted on a later tick
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(warnings.filter((n) => n === "TimeoutOverflowWarning"), []);
  });
});
