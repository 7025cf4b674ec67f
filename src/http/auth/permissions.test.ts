// The hot permission lookup of the HTTP hooks must answer exactly what RoleStore.permissionsOf answers, on both
// dialects: it decides the MFA enrolment gate (ASVS 6.3.3) and route access, so a missing row would let an
// administrator skip enrolment or reach a route its roles do not allow.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { RoleStore } from "../../accounts/roles/role-store.ts";
import { createUserStore } from "../../accounts/users/user-store.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { migrate } from "../../store/migrator.ts";
import { permissionsOf } from "./permissions.ts";

forEachDialect("http permission lookup", (fx) => {
  it("matches RoleStore.permissionsOf for users with several roles, none, and an unknown id (ASVS 6.3.3, 8.2.1)", async () => {
    const db = await fx.fresh();
    const clock = new ManualClock(Date.UTC(2026, 11, 1));
    await migrate(db, clock);
    const audit = new AuditLog({ database: db, clock, random: systemRandom });
    const roles = new RoleStore({ database: db, clock, audit });
    const users = createUserStore({ database: db, clock, random: systemRandom });
    const admin = await users.create({ email: "admin@example.org", passwordHash: null, passwordScheme: null });
    const plain = await users.create({ email: "plain@example.org", passwordHash: null, passwordScheme: null });
    const builtin = (await roles.list())[0];
    assert.ok(builtin, "migrations install built-in roles");
    await roles.create({ name: "log-reader", permissions: ["audit.read"] }, "system");
    await roles.grant(admin.id, builtin.name, "system");
    await roles.grant(admin.id, "log-reader", "system");

    const held = await permissionsOf(db, admin.id);
    assert.deepEqual([...held].sort(), [...(await roles.permissionsOf(admin.id))].sort());
    assert.ok(held.has("audit.read"));
    for (const p of builtin.permissions) assert.ok(held.has(p), `${p} from the built-in role`);
    assert.deepEqual(await permissionsOf(db, plain.id), new Set());
    assert.deepEqual(await permissionsOf(db, "usr_unknown"), new Set());

    // A role granted after the statement was prepared is seen at once (nothing is cached but the statement).
    await roles.grant(plain.id, "log-reader", "system");
    assert.deepEqual(await permissionsOf(db, plain.id), new Set(["audit.read"]));
    await roles.revoke(admin.id, builtin.name, "system");
    assert.deepEqual([...(await permissionsOf(db, admin.id))].sort(), [...(await roles.permissionsOf(admin.id))].sort());
  });
});
