// Builds the account services from configuration: the password policy object, the new-password policy,
// the user and role stores, flood control and the job store.
import { FloodControl } from "../accounts/flood/flood.ts";
import { createPasswordPolicy, type PasswordPolicy } from "../accounts/password-policy/index.ts";
import { createPasswordContext, type PasswordContext } from "../accounts/passwords/index.ts";
import { RoleStore } from "../accounts/roles/role-store.ts";
import { createUserStore, type UserStore } from "../accounts/users/user-store.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import { JobStore } from "../jobs/job-store.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import type { Config } from "./config.ts";

export interface AccountServices {
  passwords: PasswordContext;
  policy: PasswordPolicy;
  users: UserStore;
  roles: RoleStore;
  flood: FloodControl;
  jobs: JobStore;
}

export function buildAccounts(deps: { config: Config; database: Database; clock: Clock; random: RandomSource; audit: AuditLog }): AccountServices {
  const { config, database, clock, random, audit } = deps;
  return {
    passwords: createPasswordContext({ random, argon2: config.argon2 }),
    policy: createPasswordPolicy({ minLength: config.passwordMinLength }),
    users: createUserStore({ database, clock, random }),
    roles: new RoleStore({ database, clock, audit }),
    flood: new FloodControl({ database, clock }),
    jobs: new JobStore({ database, clock, random }),
  };
}
