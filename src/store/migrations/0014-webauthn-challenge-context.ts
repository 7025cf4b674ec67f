// Migration 14: a WebAuthn challenge is bound to the flow that asked for it (the session for step-up and
// enrolment, the reset link for a password reset), not only to the user and the ceremony. Without it an
// assertion over one pending session's challenge stepped up another session, or a reset-link holder's
// challenge passed a login's second-factor gate. The index serves the per-flow cap on live challenges.
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const webauthnChallengeContext: Migration = {
  version: 14,
  name: "webauthn-challenge-context",
  async up(db) {
    // Challenges in flight were issued unbound; they live five minutes, so they are dropped rather than kept
    // with a binding nobody asked for. The ceremony on the other end simply starts again.
    await sql`DELETE FROM webauthn_challenges`.execute(db);
    // NOT NULL with '' as the default rather than nullable: `context = NULL` matches nothing in SQL, and a
    // nullable column invites an "IS NULL means any flow" shortcut. The service always writes a context.
    await db.schema.alterTable("webauthn_challenges").addColumn("context", "text", (c) => c.notNull().defaultTo("")).execute();
    await db.schema.createIndex("webauthn_challenges_flow").on("webauthn_challenges").columns(["user_id", "purpose", "context", "created_at"]).execute();
  },
};
