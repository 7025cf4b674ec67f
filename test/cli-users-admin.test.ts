// `bulwark users create`, `bulwark users unlock` and `bulwark roles …` end to end.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { bulwark, bulwarkHere, bulwarkInProcess } from "./helpers/cli.ts";


let dir: string;
const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-users-"));
  assert.equal((await bulwarkHere(["init"], { env: env() })).code, 0);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("users create", () => {
  it("bootstraps an administrator with a password from stdin", async () => {
    const r = await bulwark(["users", "create", "--email", "root@example.org", "--role", "admin", "--json"], { env: env(), input: "a long and unusual passphrase 42\n" });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.match(out.id, /^usr_[a-z2-7]{26}$/);
    assert.deepEqual(out.roles, ["admin"]);
    assert.equal(out.password, undefined, "a password from stdin is never printed");
    assert.equal(out.mustChangePassword, false, "the operator's own password is kept (ASVS 6.4.1: not system-generated)");
    const verify = await bulwarkHere(["hash", "verify", "x"], { env: env() });
    assert.equal(verify.code, 2);
  });

  it("prints a generated password once and refuses weak or duplicate input with exit 2", async () => {
    const gen = await bulwarkHere(["users", "create", "--email", "ops@example.org", "--generate-password", "--json"], { env: env() });
    assert.equal(gen.code, 0, gen.stderr);
    assert.match(JSON.parse(gen.stdout).password, /^[a-z2-7]{32}$/);
    assert.equal(JSON.parse(gen.stdout).mustChangePassword, true, "ASVS 6.4.1: a generated password is for the first sign-in only");
    const weak = await bulwarkHere(["users", "create", "--email", "weak@example.org"], { env: env(), input: "password\n" });
    assert.equal(weak.code, 2);
    assert.match(weak.stderr, /refused/);
    const context = await bulwarkHere(["users", "create", "--email", "jonathan.appleseed@example.org"], { env: env(), input: "appleseed-appleseed-appleseed\n" });
    assert.equal(context.code, 2, "a password made of the email's words is refused");
    const dup = await bulwarkHere(["users", "create", "--email", "ROOT@example.org", "--generate-password"], { env: env() });
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /already exists/);
    const badRole = await bulwarkHere(["users", "create", "--email", "x@example.org", "--role", "superuser", "--generate-password"], { env: env() });
    assert.equal(badRole.code, 2);
    assert.match(badRole.stderr, /no role named "superuser"/);
  });
});

describe("users unlock", () => {
  it("break-glass: lifts a lock a containment job put on every administrator, audited; unknown and unlocked accounts are told apart", async () => {
    const created = await bulwarkHere(["users", "create", "--email", "locked-admin@example.org", "--role", "admin", "--generate-password", "--json"], { env: env() });
    assert.equal(created.code, 0, created.stderr);
    const ids = join(dir, "ids.txt");
    writeFileSync(ids, "locked-admin@example.org\n");
    const lock = await bulwarkHere(["contain", "lock-accounts", "--ids", ids, "--yes", "--json"], { env: env() });
    assert.equal(lock.code, 0, lock.stderr);
    const wouldLock = async (): Promise<number> => {
      const dry = await bulwarkHere(["contain", "lock-accounts", "--ids", ids, "--dry-run", "--json"], { env: env() });
      assert.equal(dry.code, 0, dry.stderr);
      return JSON.parse(dry.stdout).levers["lock-accounts"].counts.users;
    };
    assert.equal(await wouldLock(), 0, "the job locked the account");
    const unlock = await bulwark(["users", "unlock", "LOCKED-ADMIN@example.org", "--json"], { env: env() });
    assert.equal(unlock.code, 0, unlock.stderr);
    assert.equal(JSON.parse(unlock.stdout).changed, true);
    assert.equal(await wouldLock(), 1, "the account is unlocked");
    const again = await bulwarkHere(["users", "unlock", "locked-admin@example.org"], { env: env() });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing to do: locked-admin@example.org is not locked/);
    const unknown = await bulwarkHere(["users", "unlock", "nobody@example.org"], { env: env() });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no user "nobody@example.org"/);
    const events = await bulwarkHere(["audit", "export"], { env: env() });
    assert.equal(events.code, 0, events.stderr);
    const unlocked = events.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((e: { type: string }) => e.type === "user.unlocked");
    assert.equal(unlocked.length, 1, "the unlock is on the record, once");
    assert.match(unlocked[0].actor, /^cli:/);
  });
});

describe("roles", () => {
  it("lists, creates, grants and revokes", async () => {
    const list = await bulwarkHere(["roles", "list", "--json"], { env: env() });
    assert.deepEqual(JSON.parse(list.stdout).map((r: { name: string }) => r.name), ["admin", "auditor", "responder"]);
    assert.equal((await bulwarkHere(["roles", "create", "ops", "--permission", "contain.run"], { env: env() })).code, 0);
    const grant = await bulwark(["roles", "grant", "ops@example.org", "ops"], { env: env() });
    assert.equal(grant.code, 0, grant.stderr);
    assert.match(grant.stdout, /granted ops/);
    assert.match((await bulwarkHere(["roles", "revoke", "ops@example.org", "ops"], { env: env() })).stdout, /revoked/);
    assert.equal((await bulwarkHere(["roles", "delete", "admin"], { env: env() })).code, 2);
    assert.equal((await bulwarkHere(["roles", "grant", "nobody@example.org", "ops"], { env: env() })).code, 2);
  });

  it("create, grant, revoke and delete print their outcome as JSON with --json, as the README says data commands do", async () => {
    // Was: only `roles list` took --json; a script granting roles had to parse English.
    const json = async (args: string[]): Promise<Record<string, unknown>> => {
      const r = await bulwarkHere([...args, "--json"], { env: env() });
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    const created = await json(["roles", "create", "auditors2", "--permission", "audit.read"]);
    assert.deepEqual([created["name"], created["permissions"]], ["auditors2", ["audit.read"]]);
    const user = JSON.parse((await bulwarkHere(["users", "create", "--email", "json-roles@example.org", "--generate-password", "--json"], { env: env() })).stdout) as { id: string };
    assert.deepEqual(await json(["roles", "grant", "json-roles@example.org", "auditors2"]), { userId: user.id, role: "auditors2", changed: true, ownerNotice: null });
    assert.deepEqual(await json(["roles", "grant", "json-roles@example.org", "auditors2"]), { userId: user.id, role: "auditors2", changed: false, ownerNotice: null });
    assert.deepEqual(await json(["roles", "delete", "auditors2", "--dry-run"]), { role: "auditors2", holders: 1, dryRun: true, deleted: false });
    assert.deepEqual(await json(["roles", "revoke", "json-roles@example.org", "auditors2"]), { userId: user.id, role: "auditors2", changed: true });
    assert.deepEqual(await json(["roles", "delete", "auditors2"]), { role: "auditors2", holders: 0, dryRun: false, deleted: true });
    // An administrative grant says whether its owner is told.
    assert.equal((await json(["roles", "grant", "json-roles@example.org", "admin"]))["ownerNotice"], "queued");
  });
});

describe("users create: a role grant that fails after the account exists", () => {
  it("attack: the generated password is still printed (with the roles granted), the error names the account and the missing role, and the audit log records the roles asked for, granted and missing (user.roles-incomplete), never a role the account lacks (was: the account existed with a password shown nowhere; user.created claimed every role asked for)", async () => {
    const { RoleStore } = await import("../src/accounts/roles/role-store.ts");
    const { bulwarkInProcess } = await import("./helpers/cli.ts");
    const { BulwarkError } = await import("../src/lib/errors.ts");
    const grant = RoleStore.prototype.grant;
    // The role is deleted by another administrator between the command's check and its grant.
    RoleStore.prototype.grant = async function (this: InstanceType<typeof RoleStore>, userId, role, actor, options) {
      if (role === "auditor") throw new BulwarkError("BULWARK_ERR_ROLE_UNKNOWN", "not-found", `no role named "${role}"`);
      return grant.call(this, userId, role, actor, options);
    };
    let res;
    try {
      res = await bulwarkInProcess(["users", "create", "--email", "half-made@example.org", "--role", "admin", "--role", "auditor", "--generate-password", "--json"], env());
    } finally {
      RoleStore.prototype.grant = grant;
    }
    // Exit 2, as `roles grant` gives for an unknown role: a refusal of the rules, not a store to try again later.
    assert.equal(res.code, 2, res.stderr);
    const printed = JSON.parse(res.stdout) as { id: string; roles: string[]; password?: string };
    assert.deepEqual(printed.roles, ["admin"], "the roles it holds, not the ones asked for");
    assert.match(printed.password ?? "", /^[a-z2-7]{32}$/, "the generated password is not lost");
    assert.match(res.stderr, new RegExp(`account ${printed.id} was created, but role\\(s\\) auditor could not be granted`));
    assert.match(res.stderr, /bulwark roles grant half-made@example\.org ROLE/);
    // The log says what the account got: the roles asked for, the one granted, the one missing; never a role it lacks.
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(join(dir, "data", "bulwark.db"), { readOnly: true });
    let rows: Array<{ type: string; actor: string; data: string }>;
    try {
      rows = db.prepare("SELECT type, actor, data FROM audit_events WHERE subject = ? ORDER BY seq").all(printed.id) as typeof rows;
    } finally {
      db.close();
    }
    assert.deepEqual(rows.map((r) => r.type), ["user.created", "role.granted", "user.roles-incomplete"]);
    for (const r of rows) assert.match(r.actor, /^cli(:|$)/, "the operator, as the OS names them");
    assert.deepEqual(JSON.parse(rows[0]!.data), { via: "cli", rolesRequested: ["admin", "auditor"], mustChangePassword: true });
    assert.deepEqual(JSON.parse(rows[2]!.data), { via: "cli", granted: ["admin"], missing: ["auditor"], code: "BULWARK_ERR_ROLE_UNKNOWN" });
  });
});

describe("users create: the audit append fails", () => {
  it("attack: no account is left behind without its user.created event (was: created, unrecorded, its generated password shown nowhere)", async () => {
    const { AuditLog } = await import("../src/audit/audit-log.ts");
    const { bulwarkInProcess } = await import("./helpers/cli.ts");
    const { DatabaseSync } = await import("node:sqlite");
    const appendIn = AuditLog.prototype.appendIn;
    // The disk fills up (or the chain's head moved) just as the event is written.
    AuditLog.prototype.appendIn = async function (this: InstanceType<typeof AuditLog>, db, input) {
      if (input.type === "user.created") throw new Error("disk I/O error");
      return appendIn.call(this, db, input);
    };
    let res;
    try {
      res = await bulwarkInProcess(["users", "create", "--email", "unrecorded@example.org", "--generate-password", "--json"], env());
    } finally {
      AuditLog.prototype.appendIn = appendIn;
    }
    assert.notEqual(res.code, 0, res.stdout);
    assert.equal(res.stdout, "", "no account, so no password to show");
    const db = new DatabaseSync(join(dir, "data", "bulwark.db"), { readOnly: true });
    try {
      assert.equal(db.prepare("SELECT id FROM users WHERE email = 'unrecorded@example.org'").get(), undefined, "the account rolled back with its event");
    } finally {
      db.close();
    }
    // Nothing half-made is in the way: the same command, run again, creates the account and records it.
    const again = await bulwark(["users", "create", "--email", "unrecorded@example.org", "--generate-password", "--json"], { env: env() });
    assert.equal(again.code, 0, again.stderr);
  });
});
