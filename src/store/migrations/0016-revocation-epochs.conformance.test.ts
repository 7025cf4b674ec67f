// Migration 16 on a database with sessions, tokens and stamps already in it, on both dialects: what was valid stays
// valid, what an old stamp refused stays refused, and the first raise after the upgrade (epoch 1) refuses every row
// written before it, whatever its time says.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { createSessionManager } from "../../accounts/sessions/session-manager.ts";
import { generateSessionToken } from "../../accounts/sessions/token.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { epochOfARaiseNow, nextEpoch } from "../../accounts/sessions/revocation.ts";
import { migrate } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 16);
const NOW = Date.UTC(2026, 11, 3, 12);
const HOUR = 3_600_000;

forEachDialect("migration 16 (revocation epochs) on a database in use", (fx) => {
  it("keeps what was valid, keeps refusing what an old stamp refused, and the first raise after it refuses every older row", async () => {
    const database = await fx.empty();
    const clock = new ManualClock(NOW);
    assert.equal((await migrate(database, clock, BEFORE)).error, undefined);
    await database.db.insertInto("users").values({
      id: "usr_a", email: "a@example.org", email_key: "a@example.org", status: "active", password_hash: "$argon2id$x", password_scheme: "argon2id",
      password_must_change: 0, created_at: NOW - 100 * HOUR, updated_at: NOW - 100 * HOUR, last_login_at: null, seeded: 0,
    } as never).execute();
    // Written before the upgrade, without the new columns: one session older than the user's stamp, one newer, and
    // one dated an hour ahead (a node with a fast clock).
    const session = async (createdAt: number): Promise<string> => {
      const t = generateSessionToken(systemRandom);
      await database.db.insertInto("sessions").values({ id: t.id, user_id: "usr_a", secret_hash: t.secretHash, created_at: createdAt, last_seen_at: Math.max(NOW, createdAt), expires_at: NOW + 12 * HOUR, ip: null, user_agent: null, aal: 1 } as never).execute();
      return t.token;
    };
    const old = await session(NOW - 2 * HOUR);
    const newer = await session(NOW - HOUR);
    const fast = await session(NOW + HOUR);
    await database.db.insertInto("revocation_stamps").values({ scope: "user:usr_a", not_before: NOW - 90 * 60_000, updated_at: NOW - 90 * 60_000 } as never).execute();

    assert.equal((await migrate(database, clock)).error, undefined);
    const sessions = createSessionManager({ database, clock, random: systemRandom });
    // The fast node's session judged by the fast node: a node with the right time ends one dated ahead of it
    // ("future-dated"), whatever the stamps say.
    const aheadNode = createSessionManager({ database, clock: new ManualClock(NOW + HOUR), random: systemRandom });
    const check = async (token: string) => (await (token === fast ? aheadNode : sessions).validate(token)).valid;
    assert.deepEqual([await check(old), await check(newer), await check(fast)], [false, true, true], "the old stamp keeps its meaning");
    assert.equal(await epochOfARaiseNow(database.db), 1, "the counter starts at 0 on both dialects");

    await sessions.revokeUser("usr_a");
    assert.deepEqual([await check(newer), await check(fast)], [false, false], "epoch 0 is before the first raise, whatever the time");
    clock.advance(1); // past the revocation's own millisecond (docs/decisions/0003-revocation-stamps.md)
    const fresh = await sessions.createSession("usr_a", { aal: 1 });
    assert.equal(fresh.session.issuedEpoch, 1);
    assert.equal((await sessions.validate(fresh.token)).valid, true);
    assert.equal(await database.transaction((trx) => nextEpoch(trx)), 2, "each raise takes the next value");
  });
});
