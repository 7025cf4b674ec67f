// Row types of the containment tables (migration 7): the resolved scope of each job, the before/after record
// undo works from, and linked SSO identities (the table the SSO issue will fill). The store Schema owns them.
export type { ContainChangesTable, ContainJobUsersTable, IdentitiesTable } from "../store/schema.ts";
