// Migration 23 on a database with accounts in it, on both dialects: every plain identifier gets its lookup key as
// its skeleton, the others their computed one, two stored accounts that already read alike are left as they are
// (the plain one under the unique index, the other marked as a look-alike: never merged or changed), and the unique
// indexes then refuse a third look-alike written straight into the table.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { confusableSkeleton } from "../../accounts/users/confusables.ts";
import { identifierKey } from "../../accounts/users/normalise.ts";
import { collidedKey } from "../../accounts/users/user-store.ts";
import { ManualClock } from "../../lib/clock.ts";
import { migrate } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 23);
const NOW = Date.UTC(2026, 11, 4, 12);

forEachDialect("migration 23 (identifier skeletons)", (fx) => {
  it("fills the skeletons, leaves a stored look-alike pair as it is, and then refuses a third look-alike", async () => {
    const database = await fx.empty();
    const clock = new ManualClock(NOW);
    assert.equal((await migrate(database, clock, BEFORE)).error, undefined);
    const k = database.db as unknown as import("kysely").Kysely<any>;
    const user = (id: string, email: string, username: string | null) => ({
      id, email, email_key: identifierKey(email), username, username_key: username === null ? null : identifierKey(username), status: "active",
      created_at: NOW, updated_at: NOW,
    });
    await k.insertInto("users").values([
      user("usr_a_pay", "Pay@Example.org", "scope"),
      // Stored before any check: the same address and username in Cyrillic letters. Its id sorts before the Latin
      // one's, and still the plain one keeps the skeleton (plain identifiers are filled first).
      user("usr_0_impostor", "\u0440\u0430\u0443@example.org", "\u0455\u0441\u043e\u0440\u0435"),
      user("usr_b_boris", "boris@example.org", "\u0431\u043e\u0440\u0438\u0441"),
      user("usr_c_noname", "ana@example.org", null),
    ]).execute();

    assert.equal((await migrate(database, clock)).error, undefined);
    const rows = Object.fromEntries((await k.selectFrom("users").select(["id", "email", "email_skeleton", "username_skeleton", "email_lookalike", "username_lookalike"]).execute())
      .map((r) => [r.id, [r.email_skeleton, r.username_skeleton, Number(r.email_lookalike), Number(r.username_lookalike)]]));
    assert.deepEqual(rows["usr_a_pay"], ["pay@example.org", "scope", 0, 0]);
    assert.deepEqual(rows["usr_0_impostor"], ["pay@example.org", "scope", 1, 1], "the later look-alike is marked; its row is otherwise untouched");
    assert.deepEqual(rows["usr_b_boris"], ["boris@example.org", confusableSkeleton("\u0431\u043e\u0440\u0438\u0441"), 0, 0]);
    assert.deepEqual(rows["usr_c_noname"], ["ana@example.org", null, 0, 0]);
    assert.equal((await k.selectFrom("users").select("id").execute()).length, 4, "no account merged or deleted");

    // A writer that skips the store's own look (or races it) meets the index: a row holding the skeleton of
    // pay@example.org under a key of its own.
    await assert.rejects(
      k.insertInto("users").values({ ...user("usr_d_third", "\u0420\u0410\u0423@example.org", null), email_key: "third@example.org", email_skeleton: "pay@example.org" }).execute(),
      (error: unknown) => collidedKey(error) === "email-skeleton",
    );
  });
});
