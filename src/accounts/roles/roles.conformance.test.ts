// Roles and permissions on SQLite and PostgreSQL: deny by default, admin implies all, every change audited.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { migrate } from "../../store/migrator.ts";
import { createUserStore } from "../users/user-store.ts";
import { allows, holdsAdministrative } from "./permissions.ts";
import { RoleStore } from "./role-store.ts";

forEachDialect("roles and permissions", (fx) => {
  /** A fresh migrated store of this dialect, with its audit log, role store and user store. */
  async function openStores() {
    const db = await fx.fresh();
    const clock = new ManualClock();
    await migrate(db, clock);
    const audit = new AuditLog({ database: db, clock, random: systemRandom });
    return { db, clock, audit, roles: new RoleStore({ database: db, clock, audit }), users: createUserStore({ database: db, clock, random: systemRandom }) };
  }

  it("attack: an administrative role granted to a disabled account — refused, nothing written, while a role without an administrative permission is still granted; a grant to an account removed since it was looked up is an unknown user, not a foreign-key failure (ASVS 8.2.2, 16.3.1) (was: admin granted to a disabled account with nothing said; FOREIGN KEY constraint failed)", async () => {
    const { db, roles, users, audit } = await openStores();
    const off = await users.create({ email: "off@example.org", status: "disabled" });
    await assert.rejects(roles.grant(off.id, "admin", "test"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_ROLE_ACCOUNT_INACTIVE" && /is disabled.*enable the account first/.test(e.message));
    assert.deepEqual(await roles.rolesOf(off.id), [], "the refused grant left its role row");
    assert.equal(await roles.grant(off.id, "auditor", "test"), true, "a role with no administrative permission is granted as before");
    const held = await users.create({ email: "held@example.org" });
    await db.db.updateTable("users").set({ locked_at: 1 }).where("id", "=", held.id).execute();
    assert.equal(await roles.grant(held.id, "admin", "test"), true, "a locked account is granted as before: a lock is a response that lifts");
    const gone = await users.create({ email: "gone@example.org" });
    await db.db.deleteFrom("users").where("id", "=", gone.id).execute();
    await assert.rejects(roles.grant(gone.id, "auditor", "test"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_USER_UNKNOWN" && /nothing was granted/.test(e.message));
    assert.deepEqual((await audit.tail(10)).map((e) => [e.type, e.subject]), [["role.granted", off.id], ["role.granted", held.id]], "only the granted roles are recorded");
  });

  it("grants only what roles hold (deny by default) and lets admin imply every permission", async () => {
    const { roles, users, audit } = await openStores();
    const u = await users.create({ email: "r@example.org" });
    assert.equal(allows(await roles.permissionsOf(u.id), "accounts.read"), false, "a user with no role holds nothing"); // ASVS 8.2.1
    await roles.grant(u.id, "auditor", "test");
    const held = await roles.permissionsOf(u.id);
    assert.equal(allows(held, "accounts.read"), true);
    assert.equal(allows(held, "accounts.write"), false);
    assert.equal(holdsAdministrative(held), false);
    await roles.grant(u.id, "admin", "test");
    const admin = await roles.permissionsOf(u.id);
    assert.equal(allows(admin, "contain.run"), true);
    assert.equal(holdsAdministrative(admin), true);
    assert.equal(await roles.grant(u.id, "admin", "test"), false, "granting twice is a no-op");
    assert.equal(await roles.revoke(u.id, "admin", "test"), true);
    assert.equal(allows(await roles.permissionsOf(u.id), "contain.run"), false, "revocation applies at once"); // ASVS 8.3.2
    const types = (await audit.tail(10)).map((e) => e.type);
    assert.deepEqual(types, ["role.granted", "role.granted", "role.revoked"]);
  });

  it("concurrent grants of one role and concurrent creations of one name: one wins, the others are told, none errs", async () => {
    const { db, clock, audit, users } = await openStores();
    // Two stores: two servers sharing the database.
    const [a, b] = [new RoleStore({ database: db, clock, audit }), new RoleStore({ database: db, clock, audit })];
    const u = await users.create({ email: "race@example.org" });
    const grants = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).grant(u.id, "auditor", "test")));
    assert.equal(grants.filter(Boolean).length, 1, "granted once");
    const creations = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).create({ name: "racers", permissions: ["checks.run"] }, "test")));
    assert.equal(creations.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of creations) if (r.status === "rejected") assert.equal((r.reason as { code?: string }).code, "BULWARK_ERR_ROLE_EXISTS", String(r.reason));
    const types = (await audit.tail(20)).map((e) => e.type);
    assert.equal(types.filter((t) => t === "role.granted").length, 1);
    assert.equal(types.filter((t) => t === "role.created").length, 1);
  });

  it("creates and deletes custom roles, refusing bad names, unknown permissions and built-in deletion", async () => {
    const { roles, audit } = await openStores();
    const ops = await roles.create({ name: "ops", permissions: ["contain.run", "checks.run"] }, "test");
    assert.deepEqual((await roles.get("ops")).permissions, ["checks.run", "contain.run"]);
    assert.equal(ops.builtin, false);
    await assert.rejects(roles.create({ name: "ops", permissions: [] }, "t"), /already exists/);
    await assert.rejects(roles.create({ name: "Bad Name", permissions: [] }, "t"), /role name/);
    await assert.rejects(roles.create({ name: "x", permissions: ["root"] }, "t"), /unknown permission/);
    await assert.rejects(roles.delete("admin", "t"), /built in/);
    await assert.rejects(roles.grant("usr_nobody", "nope", "t"), /no role named/);
    await roles.delete("ops", "t");
    await assert.rejects(roles.get("ops"), /no role named/);
  });

  it("deleting a role ends each holder's grant in the holder's own audit trail, in the deletion's transaction (ASVS 16.2.1, 16.3.3)", async () => {
    // Finding: only `role.deleted` was written, so each holder's trail showed the grant and never its end.
    const { roles, users, audit } = await openStores();
    await roles.create({ name: "helpdesk", permissions: ["accounts.write"] }, "t");
    const holders = [await users.create({ email: "h1@example.org" }), await users.create({ email: "h2@example.org" })];
    const other = await users.create({ email: "other@example.org" });
    for (const h of holders) await roles.grant(h.id, "helpdesk", "t");
    await roles.grant(other.id, "auditor", "t");
    await roles.delete("helpdesk", "ops");
    const events = (await audit.tail(3)).map((e) => ({ type: e.type, actor: e.actor, subject: e.subject, data: e.data }));
    assert.deepEqual(events, [
      ...holders.map((h) => h.id).sort().map((subject) => ({ type: "role.revoked", actor: "ops", subject, data: { role: "helpdesk", roleDeleted: true } })),
      { type: "role.deleted", actor: "ops", subject: "helpdesk", data: { holders: 2 } },
    ]);
    assert.deepEqual(await roles.rolesOf(other.id), ["auditor"], "another role's holder keeps it");
    // A deletion refused after its writes (the last admin) leaves neither grants nor events behind.
    await roles.create({ name: "admins2", permissions: ["admin"] }, "t");
    await roles.grant(other.id, "admins2", "t");
    const before = (await audit.tail(1))[0]!.seq;
    await assert.rejects(roles.delete("admins2", "t", { keepAnAdmin: true }), /leave no active, unlocked user holding the admin permission/);
    assert.deepEqual(await roles.rolesOf(other.id), ["admins2", "auditor"]);
    assert.equal((await audit.tail(1))[0]!.seq, before, "no event of the refused deletion");
  });
});
