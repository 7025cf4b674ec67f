// Migration 24 on a database with accounts in it, on both dialects: an account whose initial password is in force is
// marked unproven (whoever created it knows that password), every other account is not, and nothing else changes.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { Kysely } from "kysely";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { confusableSkeleton } from "../../accounts/users/confusables.ts";
import { identifierKey } from "../../accounts/users/normalise.ts";
import { ManualClock } from "../../lib/clock.ts";
import { migrate } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 24);
const NOW = Date.UTC(2026, 11, 5, 12);

forEachDialect("migration 24 (password unproven)", (fx) => {
  it("marks the accounts on an initial password, and only those", async () => {
    const database = await fx.empty();
    const clock = new ManualClock(NOW);
    assert.equal((await migrate(database, clock, BEFORE)).error, undefined);
    const k = database.db as unknown as Kysely<any>;
    const user = (id: string, email: string, hash: string | null, initialExpires: number | null) => ({
      id, email, email_key: identifierKey(email), email_skeleton: confusableSkeleton(email), status: "active", created_at: NOW, updated_at: NOW,
      password_hash: hash, password_scheme: hash === null ? null : "argon2id", password_initial_expires_at: initialExpires,
    });
    await k.insertInto("users").values([
      user("usr_initial", "initial@example.org", "$argon2id$stub", NOW + 3_600_000),
      user("usr_own", "own@example.org", "$argon2id$stub", null),
      user("usr_none", "none@example.org", null, null),
    ]).execute();
    assert.equal((await migrate(database, clock)).error, undefined);
    const rows = Object.fromEntries((await k.selectFrom("users").select(["id", "password_unproven", "password_hash"]).execute()).map((r) => [r.id, [Number(r.password_unproven), r.password_hash]]));
    assert.deepEqual(rows, { usr_initial: [1, "$argon2id$stub"], usr_own: [0, "$argon2id$stub"], usr_none: [0, null] });
  });
});
