// Row types of the sessions module (migration 4); the store Schema owns them.
export type { RevocationStampsTable, SessionsTable } from "../../store/schema.ts";
