// Kysely types of the containment tables (migration 7): the resolved scope of each job, the before/after
// record undo works from, and linked SSO identities (the table the SSO issue will fill).
import type { Kysely } from "kysely";
import type { ContainChangesTable, ContainJobUsersTable, IdentitiesTable, Schema } from "../store/schema.ts";

export type { ContainChangesTable, ContainJobUsersTable, IdentitiesTable };

export interface ContainTables {
  contain_job_users: ContainJobUsersTable;
  contain_changes: ContainChangesTable;
  identities: IdentitiesTable;
}

export type ContainSchema = ContainTables & Schema;

/** The project database as the containment code types it (the tables live in the store Schema). */
export function containDB(db: Kysely<Schema>): Kysely<ContainSchema> {
  return db as unknown as Kysely<ContainSchema>;
}
