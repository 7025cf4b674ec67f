// Migration 21 on a database with accounts in it, on both dialects: keys stored in the old form (lower case not
// NFC again, a final sigma) are rewritten to identifierKey's form, plain ASCII keys are untouched, and a key whose new
// form another account holds already is left as it was (the two are never merged).
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { identifierKey } from "../../accounts/users/normalise.ts";
import { ManualClock } from "../../lib/clock.ts";
import { migrate } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 21);
const NOW = Date.UTC(2026, 11, 4, 12);
/** The key as stored before migration 21: trim, NFC, lower case. */
const oldKey = (s: string): string => s.trim().normalize("NFC").toLowerCase();

forEachDialect("migration 21 (identifier keys folded)", (fx) => {
  it("rewrites old-form keys so a login in any case finds the account, leaves ASCII keys alone, and never merges two accounts", async () => {
    const database = await fx.empty();
    const clock = new ManualClock(NOW);
    assert.equal((await migrate(database, clock, BEFORE)).error, undefined);
    const k = database.db as unknown as import("kysely").Kysely<any>;
    const user = (id: string, email: string, username: string | null) => ({
      id, email, email_key: oldKey(email), username, username_key: username === null ? null : oldKey(username), status: "active",
      created_at: NOW, updated_at: NOW,
    });
    await k.insertInto("users").values([
      user("usr_jan", "jan@example.org", "J\u030CAN"), // stored key j + U+030C: not NFC
      user("usr_odos", "odos@example.org", "\u039F\u0394\u039F\u03A3"), // stored key οδος (final sigma)
      user("usr_plain", "Plain@Example.org", "plain"),
      // Two look-alikes in the old form: "ΝΙΚΟΣ" (key νικος) and "νικοσ" (key νικοσ) fold to one key.
      user("usr_first", "first@example.org", "\u03BD\u03B9\u03BA\u03BF\u03C3"),
      user("usr_second", "second@example.org", "\u039D\u0399\u039A\u039F\u03A3"),
    ]).execute();

    assert.equal((await migrate(database, clock)).error, undefined);
    const keys = Object.fromEntries((await k.selectFrom("users").select(["id", "email_key", "username_key"]).execute()).map((r) => [r.id, [r.email_key, r.username_key]]));
    assert.deepEqual(keys["usr_jan"], ["jan@example.org", identifierKey("\u01F0an")]);
    assert.equal(identifierKey("J\u030CAN"), identifierKey("\u01F0an"), "either spelling finds it");
    assert.deepEqual(keys["usr_odos"], ["odos@example.org", identifierKey("\u03BF\u03B4\u03BF\u03C3")]);
    assert.deepEqual(keys["usr_plain"], ["plain@example.org", "plain"]);
    // The first holder keeps the folded key; the other keeps its old one, found by its email, never merged or lost.
    assert.equal(keys["usr_first"]?.[1], identifierKey("\u03BD\u03B9\u03BA\u03BF\u03C3"));
    assert.equal(keys["usr_second"]?.[1], oldKey("\u039D\u0399\u039A\u039F\u03A3"));
    assert.equal(Number((await k.selectFrom("users").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n), 5);
  });
});
