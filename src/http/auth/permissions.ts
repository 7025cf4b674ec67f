// The permission lookup the HTTP hooks run on hot paths (every login of a user without MFA, under the
// `administrative` MFA policy; every guarded /auth route): one statement compiled once per database through
// prepareHot instead of a Kysely query built and compiled on every call. Same rows as RoleStore.permissionsOf.
import type { Database } from "../../store/database.ts";
import { prepareHot, type HotStatement } from "../../store/sqlite-dialect-prepared.ts";

const statements = new WeakMap<Database, HotStatement<{ permission: string }>>();

/**
 * Every permission `userId` holds through any of its roles — the same answer as
 * `app.accounts.roles.permissionsOf`, which stays the reference (permissions.test.ts compares the two on both dialects).
 */
export async function permissionsOf(database: Database, userId: string): Promise<Set<string>> {
  let statement = statements.get(database);
  if (!statement) {
    statement = prepareHot<{ permission: string }>(
      database,
      "SELECT role_permissions.permission AS permission FROM user_roles INNER JOIN role_permissions ON role_permissions.role = user_roles.role WHERE user_roles.user_id = $1",
    );
    statements.set(database, statement);
  }
  const rows = await statement.all([userId]);
  return new Set(rows.map((r) => r.permission));
}
