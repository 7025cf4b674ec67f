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
  it("grants only what roles hold (deny by default) and lets admin imply every permission", async () => {
    const db = await fx.fresh();
    const clock = new ManualClock();
    await migrate(db, clock);
    const audit = new AuditLog({ database: db, clock, random: systemRandom });
    const roles = new RoleStore({ database: db, clock, audit });
    const users = createUserStore({ database: db, clock, random: systemRandom });
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
    const db = await fx.fresh();
    const clock = new ManualClock();
    await migrate(db, clock);
    const audit = new AuditLog({ database: db, clock, random: systemRandom });
    // Two stores: two servers sharing the database.
    const [a, b] = [new RoleStore({ database: db, clock, audit }), new RoleStore({ database: db, clock, audit })];
    const users = createUserStore({ database: db, clock, random: systemRandom });
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
    const db = await fx.fresh();
    const clock = new ManualClock();
    await migrate(db, clock);
    const audit = new AuditLog({ database: db, clock, random: systemRandom });
    const roles = new RoleStore({ database: db, clock, audit });
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
});
