// Test support shared by the token tests: a migrated database with the user store and the token service on a
// manual clock, and the revocation stamps table as the containment levers see it.
import type { Kysely } from "kysely";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { MIGRATIONS } from "../../store/migrations/index.ts";
import type { SessionTables } from "../sessions/tables.ts";
import { createUserStore, type UserStore } from "../users/user-store.ts";
import { createTokenService, type TokenService } from "./index.ts";

/** The stamps table through the sessions module's view of the schema, as the containment levers use it. */
export function stamps(database: Database): Kysely<SessionTables> {
  return database.db as unknown as Kysely<SessionTables>;
}

/** Migrates `database` and builds the services on a manual clock (1 November 2026, 09:00 UTC). */
export async function setup(database: Database): Promise<{ clock: ManualClock; users: UserStore; tokens: TokenService }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  return { clock, users: createUserStore({ database, clock, random: systemRandom }), tokens: createTokenService({ database, clock, random: systemRandom }) };
}
