// Attacks on the operator's administration commands other than the checks, contain, import and audit: `users
// create | unlock`, `roles list | create | delete | grant | revoke`, `dev seed`. The attacker controls stored text an
// operator's terminal will show (a lock reason set through the API or a containment job), picks an identifier that
// looks like an id, or counts on an operator's typo or an unguarded destructive step. Each test is an attack that
// must fail on correct code; "(was: …)" names what the code did before its fix. In process
// (bulwarkInProcess): these are about the CLI's own code path, not the process around it. Not repeated here (covered
// elsewhere): empty and repeated option values (cli-input-errors), unknown options (cli-foundation), the generated
// password's single printing (accounts-admin-attacks), import (import-hash-attacks), audit (audit-attacks).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { NO_CONTROL } from "../src/http/api/common.ts";
import { lockUser } from "../src/accounts/users/admin-changes.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

const root = mkdtempSync(join(tmpdir(), "bulwark-redteam-cli-admin-"));
after(() => rmSync(root, { recursive: true, force: true }));

const DATA = join(root, "site", "data");
const env: NodeJS.ProcessEnv = {
  BULWARK_DATA_DIR: DATA, BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
  BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "", BULWARK_BREACH_RANGE_URL: "", BULWARK_BREACH_FILE: "", BULWARK_LOG_LEVEL: "silent",
};
const cli = (args: string[]): ReturnType<typeof bulwarkInProcess> => bulwarkInProcess(args, env);

/** A read-only query on the site's database. */
function rows(sql: string, ...params: string[]): Array<Record<string, unknown>> {
  const db = new DatabaseSync(join(DATA, "bulwark.db"), { readOnly: true });
  try {
    return (db.prepare(sql).all(...params) as Array<Record<string, unknown>>).map((r) => ({ ...r }));
  } finally {
    db.close();
  }
}

/** Creates an account through the CLI and returns its id. */
async function createUser(email: string, username?: string): Promise<string> {
  const r = await cli(["users", "create", "--email", email, ...(username ? ["--username", username] : []), "--generate-password", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { id: string }).id;
}

/** Locks an account as the API route and the lock-accounts lever do (the reason is stored as given). */
async function lock(id: string, reason: string): Promise<void> {
  const app = await openApp({ env, mode: "open" });
  try {
    assert.equal(await lockUser(app.db.db, id, reason, Date.now()), "locked");
  } finally {
    await app.close();
  }
}

// What must never reach the operator's terminal raw: C0 (but for \n), DEL, C1 and the bidirectional controls.
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

before(async () => {
  const app = await openApp({ env, mode: "init" });
  await app.close();
});

describe("users unlock", () => {
  it("attack: a lock reason an API caller chose (bidi marks) or a containment job stored (ESC sequences) is printed inert by `users unlock` (ASVS 16.4.1; was: raw, driving the operator's terminal)", async () => {
    // The API's lock route admits U+200F and U+061C in {"reason"} (NO_CONTROL excludes only Cc, Cs and the
    // embeddings/isolates); `contain --lock-reason` stores any text, ESC included.
    const noControl = new RegExp(NO_CONTROL, "u");
    assert.ok(noControl.test("\u200f\u061cfraud review"), "the API accepts this reason");
    const id = await createUser("reason-victim@example.org");
    await lock(id, "\u200f\u061cfraud review\u001b]0;all clear\u0007\u001b[2J\u009b1m");
    const r = await cli(["users", "unlock", "reason-victim@example.org"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(rows("SELECT locked_at FROM users WHERE id = ?", id)[0]!["locked_at"], null, "unlocked");
    assert.match(r.stdout, /fraud review/, "the reason is still shown");
    assert.doesNotMatch(r.stdout, TERMINAL_CONTROL, `stdout carries raw control characters: ${JSON.stringify(r.stdout)}`);
  });

  it("attack: break-glass `users unlock` by an email that begins with usr_ finds the account (was: taken for an id, \"no user\")", async () => {
    const id = await createUser("usr_ops@example.org");
    await lock(id, "containment");
    const r = await cli(["users", "unlock", "usr_ops@example.org"]);
    assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
    assert.equal(rows("SELECT locked_at FROM users WHERE id = ?", id)[0]!["locked_at"], null, "the administrator can sign in again");
  });

  it("attack: `roles grant` by a username that begins with usr_ finds the account (was: \"no user\")", async () => {
    const id = await createUser("named@example.org", "usr_named");
    const r = await cli(["roles", "grant", "usr_named", "auditor"]);
    assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
    assert.deepEqual(rows("SELECT role FROM user_roles WHERE user_id = ?", id).map((x) => x["role"]), ["auditor"]);
  });
});

describe("roles", () => {
  it("attack: `roles revoke` of a role that does not exist (a typo, or escape codes) exits 2 naming the unknown role, as grant does (was: exit 0 \"nothing to do\", the name echoed raw)", async () => {
    await createUser("holder@example.org");
    assert.equal((await cli(["roles", "grant", "holder@example.org", "responder"])).code, 0);
    const typo = await cli(["roles", "revoke", "holder@example.org", "respnder"]);
    assert.equal(typo.code, 2, `exit ${typo.code}: ${typo.stdout}`);
    assert.match(typo.stderr, /no role named "respnder"/);
    const hostile = await cli(["roles", "revoke", "holder@example.org", "\u001b]0;revoked\u0007"]);
    assert.equal(hostile.code, 2);
    assert.doesNotMatch(hostile.stdout + hostile.stderr, TERMINAL_CONTROL);
  });

  it("attack: `roles delete` of a role that users hold has a dry run and needs --yes or a typed yes before taking it from all of them (was: deleted at once)", async () => {
    const a = await createUser("ops-a@example.org");
    const b = await createUser("ops-b@example.org");
    assert.equal((await cli(["roles", "create", "oncall", "--permission", "contain.run"])).code, 0);
    for (const who of ["ops-a@example.org", "ops-b@example.org"]) assert.equal((await cli(["roles", "grant", who, "oncall"])).code, 0);
    // stdin is not a terminal here: nobody can answer a question, so without an explicit flag it must refuse.
    const r = await cli(["roles", "delete", "oncall"]);
    assert.equal(r.code, 2, `exit ${r.code}: ${r.stdout}`);
    assert.equal(rows("SELECT count(*) AS n FROM roles WHERE name = 'oncall'")[0]!["n"], 1, "the role is kept");
    assert.equal(rows("SELECT count(*) AS n FROM user_roles WHERE role = 'oncall' AND user_id IN (?, ?)", a, b)[0]!["n"], 2, "its holders keep it");
  });

  it("attack: `roles create --description` with control characters the API refuses exits 2 and stores nothing (was: stored)", async () => {
    const r = await cli(["roles", "create", "desc-probe", "--permission", "checks.run", "--description", "on call\u001b[2J\u001b]0;x\u0007"]);
    assert.equal(r.code, 2, `exit ${r.code}: ${r.stdout}`);
    assert.match(r.stderr, /description/);
    assert.equal(rows("SELECT count(*) AS n FROM roles WHERE name = 'desc-probe'")[0]!["n"], 0);
  });
});

describe("dev seed", () => {
  it("attack: `dev seed` against a database with real accounts refuses without --force (exit 2, naming --force) and adds no synthetic account or audit event", async () => {
    await createUser("real@example.org");
    const users = rows("SELECT count(*) AS n FROM users")[0]!["n"];
    const events = rows("SELECT count(*) AS n FROM audit_events")[0]!["n"];
    const r = await cli(["dev", "seed", "--users", "5"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--force/);
    assert.equal(rows("SELECT count(*) AS n FROM users")[0]!["n"], users);
    assert.equal(rows("SELECT count(*) AS n FROM audit_events")[0]!["n"], events);
  });

  it("attack: out-of-range seed sizes are refused by the CLI, naming the option, before anything is opened or written", async () => {
    const users = rows("SELECT count(*) AS n FROM users")[0]!["n"];
    for (const [args, option] of [
      [["--users", "99999999", "--force"], "--users"],
      [["--users", "0", "--force"], "--users"],
      [["--users", "2", "--sessions-per-user", "101", "--force"], "--sessions-per-user"],
      [["--users", "2", "--legacy-share", "1.5", "--force"], "--legacy-share"],
    ] as const) {
      const r = await cli(["dev", "seed", ...args]);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, new RegExp(`^bulwark: ${option} must be`), args.join(" "));
    }
    assert.equal(rows("SELECT count(*) AS n FROM users")[0]!["n"], users);
  });
});
