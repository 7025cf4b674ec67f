// Server housekeeping: expired sessions, reset links, flood events and WebAuthn challenges are removed, and
// what is still live is left alone.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../src/app/index.ts";
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
});
