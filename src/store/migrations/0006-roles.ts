// Migration 6: roles and permissions. Deny by default: a user holds only what a role grants.
import type { Migration } from "./types.ts";

const BUILTIN: Array<{ name: string; description: string; permissions: string[] }> = [
  { name: "admin", description: "Full control of Bulwark", permissions: ["admin"] },
  { name: "responder", description: "Runs containment and manages incidents", permissions: ["accounts.read", "contain.run", "incidents.manage", "checks.run", "audit.read"] },
  { name: "auditor", description: "Reads accounts, checks and the audit log", permissions: ["accounts.read", "audit.read"] },
];

export const roles: Migration = {
  version: 6,
  name: "roles",
  async up(db) {
    await db.schema
      .createTable("roles")
      .addColumn("name", "text", (c) => c.primaryKey())
      .addColumn("description", "text", (c) => c.notNull())
      .addColumn("builtin", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("role_permissions")
      .addColumn("role", "text", (c) => c.notNull().references("roles.name").onDelete("cascade"))
      .addColumn("permission", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("role_permissions_pk", ["role", "permission"])
      .execute();
    await db.schema
      .createTable("user_roles")
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      .addColumn("role", "text", (c) => c.notNull().references("roles.name").onDelete("cascade"))
      .addColumn("granted_at", "bigint", (c) => c.notNull())
      .addColumn("granted_by", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("user_roles_pk", ["user_id", "role"])
      .execute();
    await db.schema.createIndex("user_roles_role").on("user_roles").column("role").execute();
    for (const role of BUILTIN) {
      await db.insertInto("roles").values({ name: role.name, description: role.description, builtin: 1, created_at: 0 }).execute();
      await db.insertInto("role_permissions").values(role.permissions.map((permission) => ({ role: role.name, permission }))).execute();
    }
  },
};
