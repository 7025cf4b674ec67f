// Table types of the sessions module (migration 4); the store's Schema owns them.
import type { RevocationStampsTable, SessionsTable, UsersTable } from "../../store/schema.ts";

export type { RevocationStampsTable, SessionsTable };

export interface SessionTables {
  sessions: SessionsTable;
  revocation_stamps: RevocationStampsTable;
  users: UsersTable;
}
