// Migration 25 on a database with sessions in it, on both dialects: existing sessions keep their assurance with their
// factor "not known", and the removal of any one factor then lowers an aal-2 one (it may have rested on that factor).
import assert from "node:assert/strict";
import { it } from "node:test";
import type { Kysely } from "kysely";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { createSessionManager } from "../../accounts/sessions/index.ts";
import { confusableSkeleton } from "../../accounts/users/confusables.ts";
import { identifierKey } from "../../accounts/users/normalise.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { migrate } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 25);
const NOW = Date.UTC(2026, 11, 5, 12);

forEachDialect("migration 25 (session factor)", (fx) => {
  it("keeps every session's assurance, its factor not known, so any factor's removal lowers an aal-2 one", async () => {
    const database = await fx.empty();
    const clock = new ManualClock(NOW);
    assert.equal((await migrate(database, clock, BEFORE)).error, undefined);
    const k = database.db as unknown as Kysely<any>;
    await k.insertInto("users").values({
      id: "usr_a", email: "a@example.org", email_key: identifierKey("a@example.org"), email_skeleton: confusableSkeleton("a@example.org"),
      status: "active", created_at: NOW, updated_at: NOW,
    }).execute();
    const session = (id: string, aal: number) => ({
      id, user_id: "usr_a", secret_hash: `hash-${id}`, created_at: NOW, last_seen_at: NOW, expires_at: NOW + 3_600_000, ip: null, user_agent: null, aal, issued_epoch: 0,
    });
    await k.insertInto("sessions").values([session("ses_two", 2), session("ses_one", 1)]).execute();
    assert.equal((await migrate(database, clock)).error, undefined);
    const rows = async () => Object.fromEntries((await k.selectFrom("sessions").select(["id", "aal", "factor"]).execute()).map((r) => [r.id, [Number(r.aal), r.factor]]));
    assert.deepEqual(await rows(), { ses_two: [2, null], ses_one: [1, null] });

    const sessions = createSessionManager({ database, clock, random: systemRandom });
    assert.equal(await sessions.lowerAssurance("usr_a", { factor: "webauthn:some-key" }), 1);
    assert.deepEqual(await rows(), { ses_two: [1, null], ses_one: [1, null] });
  });
});
