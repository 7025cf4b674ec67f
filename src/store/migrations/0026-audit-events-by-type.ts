// Migration 26: the audit log by event type in log order. GET /api/v1/audit/events?type=… pages with
// `WHERE type = ? AND seq > ? ORDER BY seq`: with only (type, at) indexed, each page walked the log from its cursor and
// tested every event's type, so reading all events of a rare type (a responder pulling every auth.mfa.removed) cost the
// whole log per page, and the whole read grew with pages × log size. (type, seq) answers a page from the index.
import type { Migration } from "./types.ts";

export const auditEventsByType: Migration = {
  version: 26,
  name: "audit-events-by-type",
  async up(db) {
    await db.schema.createIndex("audit_events_type_seq").on("audit_events").columns(["type", "seq"]).execute();
  },
};
