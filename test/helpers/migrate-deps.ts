// The migrate-hashes job's dependencies over a database, migrated first: for the tests that drive the job directly.
import type { MigrateDeps } from "../../src/accounts/migrate-hashes/index.ts";
import type { PasswordContext } from "../../src/accounts/passwords/index.ts";
import { createUserStore } from "../../src/accounts/users/user-store.ts";
import { AuditLog } from "../../src/audit/audit-log.ts";
import { JobStore } from "../../src/jobs/job-store.ts";
import type { ManualClock } from "../../src/lib/clock.ts";
import { systemRandom } from "../../src/lib/random.ts";
import type { Database } from "../../src/store/database.ts";
import { migrate } from "../../src/store/migrator.ts";

/** Migrates `database` and returns the job's dependencies on it, with `clock` for the test to move. */
export async function migrateDepsOn(database: Database, clock: ManualClock, passwords: PasswordContext): Promise<MigrateDeps & { clock: ManualClock }> {
  await migrate(database, clock);
  return {
    database, clock, passwords,
    users: createUserStore({ database, clock, random: systemRandom }),
    jobs: new JobStore({ database, clock, random: systemRandom }),
    audit: new AuditLog({ database, clock, random: systemRandom }),
  };
}
