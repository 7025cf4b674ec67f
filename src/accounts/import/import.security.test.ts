// Attacks on accounts an import changes, on SQLite and PostgreSQL: a session stolen before an import disables the
// account or replaces its password must end with the import, in the batch's transaction, and stay ended.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { currentEpoch } from "../sessions/revocation.ts";
import type { Selectable } from "kysely";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { JobStore } from "../../jobs/job-store.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import type { SessionsTable } from "../../store/schema.ts";
import { createPasswordContext } from "../passwords/index.ts";
import { createSessionManager, type SessionManager } from "../sessions/session-manager.ts";
import { createUserStore } from "../users/user-store.ts";
import { Outbox } from "../../notify/outbox.ts";
import { IMPORT_NOTICE_REFUSED, importUsers, type ImportDeps, type ImportOptions, type ImportReport } from "./importer.ts";
import { checkHeader, resolveMap } from "./mapping.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const MINUTE = 60_000;
const md5 = (s: string): string => createHash("md5").update(s).digest("hex");

async function setup(db: Database): Promise<{ deps: ImportDeps; clock: ManualClock; sessions: SessionManager }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
  await migrate(db, clock);
  const deps: ImportDeps = {
    database: db, clock, passwords, users: createUserStore({ database: db, clock, random: systemRandom }), audit: new AuditLog({ database: db, clock, random: systemRandom }),
    jobs: new JobStore({ database: db, clock, random: systemRandom }),
    notices: null,
  };
  return { deps, clock, sessions: createSessionManager({ database: db, clock, random: systemRandom }) };
}

function run(deps: ImportDeps, csv: string, extra: Partial<Omit<ImportOptions, "rules" | "open">> = {}): Promise<ImportReport> {
  const map = resolveMap({ preset: null, map: {} });
  return importUsers(deps, {
    format: "csv", onConflict: "update", batchSize: 500, dryRun: false, skipBad: false, actor: "test", file: "test.csv",
    onHeader: (h: string[]) => checkHeader(h, map, {}), ...extra,
    rules: { map, preset: null, source: "test.csv", salted: null },
    open: async function* () {
      yield csv;
    },
  });
}

/** The stored row of a session: what an attacker who kept a copy (or a rotation the DELETE did not see) puts back. */
async function sessionRow(deps: ImportDeps, id: string): Promise<Selectable<SessionsTable>> {
  return deps.database.db.selectFrom("sessions").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
}

async function sessionCount(deps: ImportDeps, userId: string): Promise<number> {
  return (await deps.database.db.selectFrom("sessions").select("id").where("user_id", "=", userId).execute()).length;
}

forEachDialect("users import ends sessions", (fx) => {
  it("attack: a session stolen before an import disabled the account ends with it, and enabling the account again does not revive it", async () => {
    // ASVS 7.4.2. Was: the import only set the status, which validate checks, so the session was merely suspended and
    // the import that enabled the account again brought back every session, the thief's included.
    const { deps, clock, sessions } = await setup(await fx.fresh());
    const victim = await deps.users.create({ email: "victim@example.org" });
    const bystander = await deps.users.create({ email: "bystander@example.org" });
    const stolen = await sessions.createSession(victim.id, { aal: 1, ip: "127.0.0.1", userAgent: "t" });
    const other = await sessions.createSession(bystander.id, { aal: 1, ip: "127.0.0.1", userAgent: "t" });
    const copy = await sessionRow(deps, stolen.session.id);
    clock.advance(MINUTE);
    const disable = "email,status\nvictim@example.org,disabled\n";

    const dry = await run(deps, disable, { dryRun: true });
    assert.equal(dry.updated, 1);
    assert.equal((await sessions.validate(stolen.token)).valid, true, "a dry run ends no session");
    assert.equal((await deps.database.db.selectFrom("revocation_stamps").select("scope").execute()).length, 0, "nor raises a stamp");

    // A batch that fails after the disabling row is rolled back whole: the account stays active, its sessions too.
    const { prepare } = deps.users;
    const failing: ImportDeps = { ...deps, users: { ...deps.users, prepare: (u) => (u.email === "new@example.org" ? assert.fail("disk full") : prepare(u)) } };
    await assert.rejects(run(failing, `${disable}new@example.org,\n`), /disk full/);
    assert.equal((await deps.users.getById(victim.id))?.status, "active");
    assert.equal((await sessions.validate(stolen.token)).valid, true, "the sign-out commits with the disable, or neither does");

    const report = await run(deps, disable);
    assert.equal(report.updated, 1);
    assert.equal((await sessions.validate(stolen.token)).valid, false);
    assert.equal(await sessionCount(deps, victim.id), 0, "the rows are deleted");
    const batch = (await deps.audit.tail(5)).find((e) => e.type === "users.import.batch");
    assert.equal(batch?.data["accountsSignedOut"], 1);

    clock.advance(MINUTE);
    await run(deps, "email,status\nvictim@example.org,active\n");
    assert.equal((await deps.users.getById(victim.id))?.status, "active");
    assert.deepEqual(await sessions.validate(stolen.token), { valid: false, reason: "unknown" }, "enabling the account brings no session back");
    // A copy of the row put back (a rotation whose insert the DELETE could not see, a restored backup) is refused too.
    await deps.database.db.insertInto("sessions").values(copy).execute();
    assert.deepEqual(await sessions.validate(stolen.token), { valid: false, reason: "revoked" });

    assert.equal((await sessions.validate(other.token)).valid, true, "another account's session is untouched");
    const fresh = await sessions.createSession(victim.id, { aal: 1, ip: "127.0.0.1", userAgent: "t" });
    assert.equal((await sessions.validate(fresh.token)).valid, true, "the owner signs in again");
  });

  it("attack: a session from before an import replaced the account's password hash ends with the old password", async () => {
    // ASVS 7.4.3. Was: --replace-passwords swapped the hash and every session, a thief's included, lived on.
    const { deps, clock, sessions } = await setup(await fx.fresh());
    const victim = await deps.users.create({ email: "victim@example.org", passwordHash: md5("old"), passwordScheme: "md5" });
    const stolen = await sessions.createSession(victim.id, { aal: 1, ip: "127.0.0.1", userAgent: "t" });
    const copy = await sessionRow(deps, stolen.session.id);
    // Links asked for before the import (by whoever held the old password, perhaps): spent by the replacement.
    const t0 = clock.now();
    await deps.database.db.insertInto("password_reset_tokens").values({ id: "prt_before", user_id: victim.id, secret_hash: "x", created_at: t0, expires_at: t0 + 30 * MINUTE, used_at: null }).execute();
    await deps.database.db.insertInto("email_change_tokens").values({ id: "ect_before", user_id: victim.id, new_email: "thief@example.net", secret_hash: "x", created_at: t0, expires_at: t0 + 30 * MINUTE, used_at: null, issued_epoch: currentEpoch() }).execute();
    const pending = async (): Promise<number> =>
      (await deps.database.db.selectFrom("password_reset_tokens").select("id").where("used_at", "is", null).execute()).length +
      (await deps.database.db.selectFrom("email_change_tokens").select("id").where("used_at", "is", null).execute()).length;
    clock.advance(MINUTE);
    const csv = `email,display_name,password_hash\nvictim@example.org,Victim,${md5("new")}\n`;

    // Without --replace-passwords the stored password is kept: the update is no password change and ends nothing.
    const kept = await run(deps, csv);
    assert.deepEqual([kept.updated, kept.passwordsKept], [1, 1]);
    assert.equal((await sessions.validate(stolen.token)).valid, true, "an update that keeps the password keeps the sessions");
    const dry = await run(deps, csv, { replacePasswords: true, dryRun: true });
    assert.equal(dry.passwordsReplaced.length, 1);
    assert.equal((await sessions.validate(stolen.token)).valid, true, "a dry run ends no session");
    assert.equal(await pending(), 2, "keeping the password, or a dry run, spends no link");

    const replaced = await run(deps, csv, { replacePasswords: true });
    assert.equal(await pending(), 0, "the reset and email-change links from before are spent");
    assert.deepEqual(replaced.passwordsReplaced, [{ line: 2, from: "md5", to: "md5" }]);
    assert.equal(await passwords.verify("new", (await deps.users.getById(victim.id))!.passwordHash!), true);
    assert.equal((await sessions.validate(stolen.token)).valid, false);
    assert.equal(await sessionCount(deps, victim.id), 0);
    await deps.database.db.insertInto("sessions").values(copy).execute();
    assert.deepEqual(await sessions.validate(stolen.token), { valid: false, reason: "revoked" }, "a copy of the row put back is refused by the stamp");
  });

  it("attack: an import that replaces a password tells the owner once, in the batch's transaction, even across a resume", async () => {
    // ASVS 6.3.7. Was: `users import --replace-passwords` set a password the importer knows and the owner never heard.
    const { deps } = await setup(await fx.fresh());
    const outbox = new Outbox({ database: deps.database, clock: deps.clock, random: systemRandom });
    const told: ImportDeps = { ...deps, notices: { outbox, appName: "Example" } };
    for (const email of ["one@example.org", "two@example.org", "ops@intranet"]) await deps.users.create({ email, passwordHash: md5("old"), passwordScheme: "md5" });
    const mail = async (): Promise<string[]> =>
      (await deps.database.db.selectFrom("outbox_messages").select(["to_address", "kind"]).orderBy("to_address").execute()).map((r) => `${r.to_address} ${r.kind}`);
    const csv = `email,password_hash\none@example.org,${md5("new")}\nops@intranet,${md5("new")}\ntwo@example.org,${md5("new")}\nnew@example.org,\n`;

    // A dry run changes no password, so it tells nobody.
    await run(told, csv, { dryRun: true, replacePasswords: true });
    assert.deepEqual(await mail(), [], "a dry run queues nothing");

    // Batch 2 (two@, new@) dies: its notice goes with its password change.
    const { prepare } = deps.users;
    const dying: ImportDeps = { ...told, users: { ...deps.users, prepare: (u) => (u.email === "new@example.org" ? assert.fail("disk full") : prepare(u)) } };
    await assert.rejects(run(dying, csv, { replacePasswords: true, batchSize: 2 }), /disk full/);
    assert.deepEqual(await mail(), ["one@example.org security.password-changed"], "batch 1 committed with its notice; batch 2 with neither");
    const refused = (await deps.audit.tail(20)).filter((e) => e.type === IMPORT_NOTICE_REFUSED);
    assert.deepEqual(refused.map((e) => [e.data["line"], e.data["notice"]]), [[3, "password-changed"]], "an address the outbox refuses is audited, the password replaced all the same");

    const resumed = await run(told, csv, { replacePasswords: true, batchSize: 2 });
    assert.equal(resumed.resumedAfterLine, 3);
    assert.deepEqual(await mail(), ["one@example.org security.password-changed", "two@example.org security.password-changed"], "one notice per replaced password, none twice");
    const batch = (await deps.audit.tail(5)).findLast((e) => e.type === "users.import.batch");
    assert.deepEqual([batch?.data["noticesQueued"], batch?.data["noticesRefused"]], [1, 0]);
  });
});

forEachDialect("users import refuses look-alike identifiers", (fx) => {
  it("attack: a row whose email or username reads like a stored account's, or like an earlier row's, is named by the dry run and never written (ASVS 1.1.1) (was: imported beside them)", async () => {
    const { deps } = await setup(await fx.fresh());
    await deps.users.create({ email: "pay@example.org", username: "scope" });
    const csv = [
      "email,username",
      "\u0440\u0430\u0443@example.org,", // рау@: the stored pay@example.org in Cyrillic letters
      "impostor@example.org,\u0455\u0441\u043e\u0440\u0435", // ѕсоре: the stored username scope
      "ace@example.org,",
      "\u0430\u0441\u0435@example.org,", // асе@: line 4 of this file, in Cyrillic
      "fine@example.org,\u0431\u043e\u0440\u0438\u0441", // борис reads as no one
    ].join("\n");
    const dry = await run(deps, csv, { dryRun: true, onConflict: "fail" });
    assert.deepEqual(dry.bad.map((b) => b.line), [2, 3, 5], JSON.stringify(dry.bad));
    assert.match(dry.bad[0]!.reason, /email reads like that of another account/);
    assert.match(dry.bad[1]!.reason, /username reads like that of another account/);
    assert.match(dry.bad[2]!.reason, /reads like line 4/);
    const real = await run(deps, csv, { skipBad: true, onConflict: "fail" });
    assert.equal(real.created, 2);
    const emails = (await deps.database.db.selectFrom("users").select("email").orderBy("email").execute()).map((r) => r.email);
    assert.deepEqual(emails, ["ace@example.org", "fine@example.org", "pay@example.org"]);
  });

  it("attack: an update that renames an account's username to a look-alike of another account's is refused (was: the rename was written)", async () => {
    const { deps } = await setup(await fx.fresh());
    await deps.users.create({ email: "owner@example.org", username: "scope" });
    await deps.users.create({ email: "mallory@example.org", username: "mallory" });
    const csv = "email,username\nmallory@example.org,\u0455\u0441\u043e\u0440\u0435\n";
    const dry = await run(deps, csv, { dryRun: true, onConflict: "update" });
    assert.deepEqual(dry.bad.map((b) => b.reason), ["the username reads like that of another account (the same letters in another script), which a person could not tell apart from it"]);
    await run(deps, csv, { skipBad: true, onConflict: "update" });
    const row = await deps.database.db.selectFrom("users").select(["username", "username_skeleton"]).where("email_key", "=", "mallory@example.org").executeTakeFirstOrThrow();
    assert.deepEqual([row.username, row.username_skeleton], ["mallory", "mallory"]);
  });
});
