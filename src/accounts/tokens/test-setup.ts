// Test support shared by the token tests: a migrated database with the user store and the token service on a
// manual clock.
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { MIGRATIONS } from "../../store/migrations/index.ts";
import { createUserStore, type UserStore } from "../users/user-store.ts";
import { createTokenService, type TokenService } from "./index.ts";

/** Migrates `database` and builds the services on a manual clock (1 November 2026, 09:00 UTC). */
export async function setup(database: Database): Promise<{ clock: ManualClock; users: UserStore; tokens: TokenService }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  return { clock, users: createUserStore({ database, clock, random: systemRandom }), tokens: createTokenService({ database, clock, random: systemRandom }) };
}
