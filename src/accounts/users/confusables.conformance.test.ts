// Look-alike identifiers refused by the user store on SQLite and PostgreSQL (migration 23's skeleton columns and
// their unique indexes): one that reads like an existing account's email or username is refused with its own code,
// two racing look-alikes leave one account, and an email change moves the skeleton with the address. ASVS 1.1.1.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { Outbox } from "../../notify/outbox.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { createEmailChangeService } from "../email-change/email-change-service.ts";
import { createUserStore, type UserStore } from "./user-store.ts";

const SCOPE_CYRILLIC = "\u0455\u0441\u043e\u0440\u0435"; // ѕсоре
const PAY_CYRILLIC = "\u0440\u0430\u0443@example.org"; // рау@example.org

async function setup(database: Database): Promise<{ users: UserStore; clock: ManualClock }> {
  const clock = new ManualClock(Date.UTC(2026, 11, 4, 9));
  const outcome = await migrate(database, clock);
  if (outcome.error) throw outcome.error;
  return { users: createUserStore({ database, clock, random: systemRandom }), clock };
}

async function count(database: Database): Promise<number> {
  return (await database.db.selectFrom("users").select("id").execute()).length;
}

forEachDialect("look-alike identifiers", (fx) => {
  it("attack: an account whose email or username reads like an existing one (the same letters in another script) is refused, and only that", async () => {
    const database = await fx.fresh();
    const { users } = await setup(database);
    await users.create({ email: "pay@example.org", username: "scope" });
    await assert.rejects(users.create({ email: PAY_CYRILLIC }), { code: "BULWARK_ERR_EMAIL_CONFUSABLE" });
    await assert.rejects(users.create({ email: "impostor@example.org", username: SCOPE_CYRILLIC }), { code: "BULWARK_ERR_USERNAME_CONFUSABLE" });
    // The same address in other case is the same account: "taken", not a look-alike.
    await assert.rejects(users.create({ email: "PAY@example.org" }), { code: "BULWARK_ERR_EMAIL_TAKEN" });
    // Cyrillic text that reads as no existing account is an account like any other.
    const boris = await users.create({ email: "boris@example.org", username: "\u0431\u043e\u0440\u0438\u0441" });
    assert.equal(boris.username, "\u0431\u043e\u0440\u0438\u0441");
    assert.equal(await count(database), 2);
  });

  it("attack: two look-alikes created at the same moment leave one account (the unique index decides, past the store's own look)", async () => {
    const database = await fx.fresh();
    const { users } = await setup(database);
    for (let round = 0; round < 5; round++) {
      const plain = `race${round}@example.org`;
      const alike = `\u0433\u0430\u0441\u0435${round}@example.org`; // гасе, all Cyrillic
      const outcomes = await Promise.allSettled([
        database.transaction((trx) => users.create({ email: plain }, trx)),
        database.transaction((trx) => users.create({ email: alike }, trx)),
      ]);
      const won = outcomes.filter((o) => o.status === "fulfilled");
      assert.equal(won.length, 1, `round ${round}: ${JSON.stringify(outcomes.map((o) => o.status === "rejected" ? (o.reason as { code?: string }).code : "created"))}`);
      const lost = outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult;
      assert.equal((lost.reason as { code?: string }).code, "BULWARK_ERR_EMAIL_CONFUSABLE");
    }
    assert.equal(await count(database), 5);
  });

  it("an email change moves the skeleton with the address: the new one is protected, the old one is free again", async () => {
    const database = await fx.fresh();
    const { users, clock } = await setup(database);
    const ana = await users.create({ email: "ace@example.org" });
    const outbox = new Outbox({ database, clock, random: systemRandom });
    const changes = createEmailChangeService({ database, clock, random: systemRandom, outbox });
    assert.equal(await changes.request(ana, "pace@example.org", { publicURL: "https://bulwark.test", serviceName: "Bulwark" }), "queued");
    const rows = await database.db.selectFrom("outbox_messages").selectAll().where("to_address", "=", "pace@example.org").where("kind", "=", "account.email-change-link").execute();
    const token = /ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}/.exec(JSON.stringify(rows))?.[0];
    assert.ok(token, "no link mailed");
    await changes.confirm(token);
    await assert.rejects(users.create({ email: "\u0440\u0430\u0441\u0435@example.org" }), { code: "BULWARK_ERR_EMAIL_CONFUSABLE" }); // расе, all Cyrillic
    const formerLookalike = await users.create({ email: "\u0430\u0441\u0435@example.org" }); // асе: no account reads like it any more
    assert.equal(formerLookalike.email, "\u0430\u0441\u0435@example.org");
  });
});
