// Red-team round "cross-process writes", fifth batch: `bulwark users import` and `bulwark roles grant` on one SQLite
// database while the server changes the accounts they name. The attacker is the ordinary interleaving of an operator's
// CLI command (its own app and connection on the fixture's file, run in this process through bulwarkInProcess) with
// the server's writes committing after the command read and before it wrote: between the import's validation pass and
// its first batch, and between `roles grant`'s look-up of the user and its grant's transaction.
// Forced, never raced where the outcome depends on it: the server's transaction takes the write lock first and waits
// on a gate; the CLI reads (validation, look-ups) and then meets the lock at its first write (a statement of the CLI
// failing SQLITE_BUSY, seen by the watch below); only then does the server make its change and commit, and the CLI,
// still within its lock bound (CLI_PATIENT), goes on.
// Tried: an import under --on-conflict skip naming an account that an administrator's disable (as another import's
// batch writes it) turns off in that window; an import under --on-conflict update whose row leaves the status cell
// blank, the same disable in the window; an import under --on-conflict fail of a new address that the server's own
// account creation takes in the window; an import under --on-conflict update of a leaver (disable, by address and
// username) whose address an administrator's set-email moves in the window; `roles grant USER admin` while an
// administrator's set-email moves the user's address, while the account is disabled, and while it is deleted.
// Held: each import batch re-reads the accounts in its own transaction (apply-batch.ts): the disabled account stays
// disabled (skipped, or updated without its status), the report's and the audit's counts say what was written; a row
// whose address another writer took, or whose username now belongs to an account under another address, is refused
// with its line named (exit 2: "line N: …; batch 1 was rolled back"), no duplicate written, the job marked
// failed and no batch event. The grant's notice reads the address inside the grant's transaction: it goes to the
// address the account has when the grant commits, never the old one, with its role.granted event in the same commit.
// Found (both fixed since: RoleStore.grant reads the account in its transaction, after holdGrantsTo — a removed one is
// BULWARK_ERR_USER_UNKNOWN, and an administrative role is refused to a disabled one, BULWARK_ERR_ROLE_ACCOUNT_INACTIVE,
// nothing written): (1) `roles grant USER ROLE` never looked at the account's status, in its look-up or in the grant's
// transaction: an account disabled a moment before the grant committed, or long before, was given `admin` with exit 0
// and nothing said ({"changed": true, "ownerNotice": "queued"}), and held it the day an import or an operator enabled
// it again. (2) An account deleted after the look-up (an unfinished sign-up removed for an account that takes its
// address) made the grant's INSERT fail its foreign key, shown as "bulwark: internal error: FOREIGN KEY constraint
// failed", exit 3.
// Not forced in the time box: an unfinished sign-up committing in the import's window (the server's sign-up runs in
// transactions of its own that this file cannot hold open; the batch's re-read of sign-ups is the lookup tried here).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { setEmailByAdministrator } from "../src/accounts/email-change/set-by-administrator.ts";
import { bulwarkInProcess, fixtureCliEnv } from "./helpers/cli.ts";
import { CLI_PATIENT, gate, SHORT_BUSY, StatementWatch } from "./helpers/statement-watch.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";


type Trx = Parameters<Parameters<AuthFixture["app"]["db"]["transaction"]>[0]>[0];
/** The CLI's outcome, and the write statement it met the server's lock at (null: it never did). */
type CliResult = { code: number; stdout: string; stderr: string; metAt: string | null };

describe("cross-process writes on one SQLite database (e): users import and roles grant beside the server", () => {
  const fx = sharedFixture(() => authFixture({ ...SHORT_BUSY, BULWARK_REGISTRATION: "open" }));
  let dir = "";
  let hash = "";
  const watch = new StatementWatch();
  before(async () => {
    hash = await fx.app.accounts.passwords.hash("correct horse battery staple 1");
    dir = mkdtempSync(join(tmpdir(), "bulwark-xpw-e-"));
    watch.install();
  });
  after(async () => {
    watch.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  const cliEnv = () => ({ ...fixtureCliEnv(fx.app.config.dataDir), ...CLI_PATIENT });

  function csv(name: string, lines: string[]): string {
    const path = join(dir, name);
    writeFileSync(path, lines.join("\n") + "\n");
    return path;
  }

  async function account(email: string, username: string | null = null): Promise<string> {
    const user = await fx.app.accounts.users.create({ email, ...(username ? { username } : {}), passwordHash: hash, passwordScheme: "argon2id" });
    return user.id;
  }

  async function row(id: string): Promise<{ email: string; status: string; displayName: string | null; username: string | null } | undefined> {
    const r = await fx.app.db.db.selectFrom("users").select(["email", "status", "display_name", "username"]).where("id", "=", id).executeTakeFirst();
    return r && { email: r.email, status: r.status, displayName: r.display_name, username: r.username };
  }

  async function holdersOf(emailKey: string): Promise<number> {
    const r = await fx.app.db.db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).where("email_key", "=", emailKey).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async function eventsOf(type: string, subject?: string): Promise<Array<Record<string, unknown>>> {
    let q = fx.app.db.db.selectFrom("audit_events").select(["data"]).where("type", "=", type);
    if (subject !== undefined) q = q.where("subject", "=", subject);
    return (await q.orderBy("seq").execute()).map((r) => JSON.parse(String(r.data ?? "{}")) as Record<string, unknown>);
  }

  /** The batch events of the import of file `name` (named in their data). */
  async function batchesOf(name: string): Promise<Array<Record<string, unknown>>> {
    return (await eventsOf("users.import.batch")).filter((e) => e["file"] === name);
  }

  /**
   * Runs `bulwark ARGS` while `server` holds the write lock in its transaction: `server(turn)` opens its transaction,
   * calls `turn.holding()` once it holds the lock, and makes its change after `await turn.go`. The CLI is started once
   * the server holds the lock, reads everything it reads first, and meets the lock at its first write; only then is the
   * server let go, and it commits before the CLI writes anything.
   */
  async function cliAroundServerChange(args: string[], server: (turn: { holding: () => void; go: Promise<void> }) => Promise<unknown>): Promise<CliResult> {
    const holding = gate();
    const go = gate();
    const change = server({ holding: holding.open, go: go.wait });
    await holding.wait;
    const cliWaits = watch.nextBusyWrite();
    const cli = bulwarkInProcess(args, cliEnv());
    const metAt = await Promise.race([cliWaits, cli.then(() => null)]);
    go.open();
    await change;
    return { ...(await cli), metAt };
  }

  /** The server's own transaction (fx.app.db): holds the lock, then runs `fn` once let go. */
  function serverTransaction(fn: (trx: Trx) => Promise<void>): (turn: { holding: () => void; go: Promise<void> }) => Promise<unknown> {
    return (turn) => fx.app.db.transaction(async (trx) => {
      turn.holding();
      await turn.go;
      await fn(trx);
    });
  }

  /** What disabling an account writes (another operator's import batch with status "disabled": the one way there is). */
  async function disable(trx: Trx, id: string): Promise<void> {
    await trx.updateTable("users").set({ status: "disabled", updated_at: fx.clock.now() }).where("id", "=", id).execute();
    await fx.app.audit.appendIn(trx, { type: "users.import.batch", actor: "cli:other-operator", data: { source: "hr", file: "leavers.csv", batch: 1, lines: "2-2", created: 0, updated: 1, skipped: 0 } });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // users import: the server's change between the validation pass and the first batch.
  // ---------------------------------------------------------------------------------------------------------------

  it("attack: `users import --on-conflict skip` validated a row of an active account, then an administrator disables it before the batch writes — the account stays disabled, the row is reported skipped, the new row created, and the report, the batch event and users.import.completed all count what was written (ASVS 16.3.1, 16.2.1)", async () => {
    const victim = await account("skip-vs-disable@example.org");
    const name = "skip-vs-disable.csv";
    const file = csv(name, ["email,display_name,status", "skip-vs-disable@example.org,Still Here,active", "skip-vs-disable-new@example.org,New Hire,active"]);
    const r = await cliAroundServerChange(["users", "import", file, "--on-conflict", "skip", "--json"], serverTransaction((trx) => disable(trx, victim)));
    // The control: the CLI met the server's lock at its job's creation (job-store.ts), the first write after validation.
    assert.equal(r.metAt?.startsWith('update "revocation_counter"'), true, `the import met the lock at ${r.metAt}, not at its job's creation after validation`);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { created: number; updated: number; skipped: number; failed: number; jobId: string; skippedRows: Array<{ line: number }> };
    assert.equal((await row(victim))?.status, "disabled", "the import re-enabled an account an administrator disabled after its validation");
    assert.equal((await row(victim))?.displayName, null);
    assert.deepEqual({ created: report.created, updated: report.updated, skipped: report.skipped, failed: report.failed }, { created: 1, updated: 0, skipped: 1, failed: 0 });
    assert.deepEqual(report.skippedRows.map((s) => s.line), [2]);
    assert.equal(await holdersOf("skip-vs-disable-new@example.org"), 1);
    const batches = await batchesOf(name);
    assert.equal(batches.length, 1);
    assert.deepEqual({ created: batches[0]?.["created"], updated: batches[0]?.["updated"], skipped: batches[0]?.["skipped"] }, { created: 1, updated: 0, skipped: 1 });
    const completed = await eventsOf("users.import.completed", report.jobId);
    assert.equal(completed.length, 1);
    assert.deepEqual({ created: completed[0]?.["created"], updated: completed[0]?.["updated"], skipped: completed[0]?.["skipped"] }, { created: 1, updated: 0, skipped: 1 });
  });

  it("attack: `users import --on-conflict update` of a row whose status cell is blank, an administrator disabling the account between validation and the batch — the update writes the display name and leaves the account disabled (a blank cell supplies nothing), one update counted (ASVS 16.3.1)", async () => {
    const victim = await account("blank-vs-disable@example.org");
    const name = "blank-vs-disable.csv";
    const file = csv(name, ["email,display_name,status", "blank-vs-disable@example.org,Renamed,"]);
    const r = await cliAroundServerChange(["users", "import", file, "--on-conflict", "update", "--json"], serverTransaction((trx) => disable(trx, victim)));
    assert.equal(r.metAt?.startsWith('update "revocation_counter"'), true, `the import met the lock at ${r.metAt}, not at its job's creation after validation`);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { created: number; updated: number; skipped: number; jobId: string };
    const end = await row(victim);
    assert.equal(end?.status, "disabled", "a blank status cell re-enabled an account disabled after the import's validation");
    assert.equal(end?.displayName, "Renamed");
    assert.deepEqual({ created: report.created, updated: report.updated, skipped: report.skipped }, { created: 0, updated: 1, skipped: 0 });
    const batches = await batchesOf(name);
    assert.deepEqual(batches.map((b) => [b["created"], b["updated"], b["accountsSignedOut"]]), [[0, 1, 0]]);
  });

  it("attack: `users import --on-conflict fail` validated a new address, then the server creates an account at that address before the batch writes — the row is refused with its line named (exit 2, not an internal error), its batch rolled back: one account holds the address, no batch event, the job marked failed (ASVS 16.3.1, 6.4.1)", async () => {
    const name = "fail-vs-create.csv";
    const file = csv(name, ["email,display_name", "fail-vs-create-other@example.org,Other", "fail-vs-create@example.org,Imported"]);
    let serverId = "";
    const r = await cliAroundServerChange(["users", "import", file, "--on-conflict", "fail", "--json"], serverTransaction(async (trx) => {
      serverId = (await fx.app.accounts.users.create({ email: "fail-vs-create@example.org", passwordHash: hash, passwordScheme: "argon2id" }, trx)).id;
    }));
    assert.equal(r.code, 2, `exit ${r.code}: ${r.stdout} ${r.stderr}`);
    assert.equal(r.metAt?.startsWith('update "revocation_counter"'), true, `the import met the lock at ${r.metAt}, not at its job's creation after validation`);
    assert.match(r.stderr, /line 3: an account with this email already exists \(--on-conflict fail\); batch 1 was rolled back/);
    assert.doesNotMatch(r.stderr, /INTERNAL/);
    assert.equal(await holdersOf("fail-vs-create@example.org"), 1, "two accounts hold one address");
    assert.equal((await fx.app.accounts.users.findByIdentifier("fail-vs-create@example.org"))?.id, serverId);
    assert.equal(await holdersOf("fail-vs-create-other@example.org"), 0, "the refused batch's other row was written");
    assert.equal((await batchesOf(name)).length, 0, "a batch event for a batch rolled back");
    const jobs = await fx.app.db.db.selectFrom("jobs").select(["status"]).where("kind", "=", "users-import").execute();
    assert.ok(jobs.some((j) => j.status === "failed"), `no failed import job: ${JSON.stringify(jobs)}`);
  });

  it("attack: `users import --on-conflict update` disabling a leaver by address and username, an administrator's set-email moving the leaver's address between validation and the batch — the row is refused with its line named (its username belongs to an account under another address), nothing written: no new account at the old address, the moved account untouched (ASVS 16.3.1, 6.4.1)", async () => {
    const leaver = await account("leaver-old@example.org", "leaver-e");
    const name = "leaver-moved.csv";
    const file = csv(name, ["email,username,status", "leaver-old@example.org,leaver-e,disabled"]);
    const r = await cliAroundServerChange(["users", "import", file, "--on-conflict", "update", "--json"], (turn) => setEmailByAdministrator(fx.app, {
      userId: leaver, email: "leaver-new@example.org", actor: "usr_admin", via: "api",
      within: async () => {
        turn.holding();
        await turn.go;
      },
    }));
    assert.equal(r.code, 2, `exit ${r.code}: ${r.stdout} ${r.stderr}`);
    assert.equal(r.metAt?.startsWith('update "revocation_counter"'), true, `the import met the lock at ${r.metAt}, not at its job's creation after validation`);
    assert.match(r.stderr, /line 2: the username belongs to another account; batch 1 was rolled back/);
    assert.equal(await holdersOf("leaver-old@example.org"), 0, "the import made a new account at the leaver's old address");
    const end = await row(leaver);
    assert.equal(end?.email, "leaver-new@example.org");
    assert.equal(end?.username, "leaver-e");
    assert.equal((await batchesOf(name)).length, 0);
  });

  // ---------------------------------------------------------------------------------------------------------------
  // roles grant: the server's change between the look-up of the user and the grant's transaction.
  // ---------------------------------------------------------------------------------------------------------------

  async function grantMails(userId: string): Promise<Array<{ to: string; key: string }>> {
    const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address", "idempotency_key", "kind", "subject"]).where("account_id", "=", userId).execute();
    return rows.filter((m) => /admin-role-received|administrative-role-received/.test(`${m.kind} ${m.idempotency_key}`)).map((m) => ({ to: m.to_address, key: m.idempotency_key }));
  }

  it("attack: `roles grant USER admin` looked the user up, then an administrator's set-email moves the account to another address before the grant commits — the grant's notice goes to the address the account has at the grant's commit, never the old one, and cites the role.granted event committed with it (ASVS 6.3.7, 8.2.2)", async () => {
    const user = await account("grantee-old@example.org");
    const r = await cliAroundServerChange(["roles", "grant", "grantee-old@example.org", "admin", "--json"], (turn) => setEmailByAdministrator(fx.app, {
      userId: user, email: "grantee-new@example.org", actor: "usr_admin", via: "api",
      within: async () => {
        turn.holding();
        await turn.go;
      },
    }));
    // The control: the CLI looked the user up by the old address and met the lock at the grant's BEGIN IMMEDIATE.
    assert.equal(r.metAt, "begin immediate");
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { userId: string; changed: boolean; ownerNotice: string | null };
    assert.equal(out.userId, user);
    assert.equal(out.changed, true);
    assert.equal(out.ownerNotice, "queued");
    assert.equal((await row(user))?.email, "grantee-new@example.org");
    const granted = await fx.app.db.db.selectFrom("audit_events").select(["id"]).where("type", "=", "role.granted").where("subject", "=", user).execute();
    assert.equal(granted.length, 1);
    const mails = await grantMails(user);
    assert.equal(mails.length, 1, `grant notices: ${JSON.stringify(mails)}`);
    assert.equal(mails[0]?.to, "grantee-new@example.org", "the grant's notice went to the address the account no longer has");
    assert.ok(mails[0]?.key.includes(String(granted[0]?.id)), `the notice ${mails[0]?.key} does not cite the role.granted event ${String(granted[0]?.id)}`);
  });

  it("attack: `roles grant USER admin` looked the user up, then the account is deleted before the grant's transaction — the grant is refused as an unknown user (nonzero exit, not an internal error), with no role row, no role.granted event and no notice (ASVS 16.3.1, 16.5.2) (was: exit 3, \"internal error: FOREIGN KEY constraint failed\")", async () => {
    const user = await account("grantee-gone@example.org");
    const r = await cliAroundServerChange(["roles", "grant", "grantee-gone@example.org", "admin", "--json"], serverTransaction(async (trx) => {
      await trx.deleteFrom("users").where("id", "=", user).execute();
    }));
    assert.equal(r.metAt, "begin immediate");
    assert.notEqual(r.code, 0, `a grant to a deleted account succeeded: ${r.stdout}`);
    assert.equal((await fx.app.db.db.selectFrom("user_roles").select("role").where("user_id", "=", user).execute()).length, 0);
    assert.equal((await eventsOf("role.granted", user)).length, 0);
    assert.equal((await grantMails(user)).length, 0);
    assert.doesNotMatch(r.stderr, /INTERNAL|internal error|FOREIGN KEY/i, `the refusal is an internal error: ${r.stderr}`);
  });

  it("attack: `roles grant USER admin` looked the user up, then an administrator disables the account before the grant commits — the administrative role is not granted silently: either refused with nothing written, or the operator's answer says the account is disabled (ASVS 8.2.2, 16.3.1) (was: granted, exit 0, nothing said)", async () => {
    const user = await account("grantee-off@example.org");
    const r = await cliAroundServerChange(["roles", "grant", "grantee-off@example.org", "admin", "--json"], serverTransaction((trx) => disable(trx, user)));
    assert.equal(r.metAt, "begin immediate");
    assert.equal((await row(user))?.status, "disabled");
    const held = (await fx.app.db.db.selectFrom("user_roles").select("role").where("user_id", "=", user).execute()).map((x) => x.role);
    if (r.code !== 0) {
      assert.deepEqual(held, [], "a refused grant left its role row");
      assert.equal((await eventsOf("role.granted", user)).length, 0);
      return;
    }
    assert.match(r.stdout + r.stderr, /disabled/i, `the administrative role was granted to a disabled account with nothing said (exit 0, roles ${JSON.stringify(held)}): ${r.stdout}`);
  });
});
