// An import meeting unfinished sign-ups, on SQLite and PostgreSQL: an address held only by an anonymous POST
// /auth/register that was never finished (an outsider's squat on a user about to be migrated) is the row's, under every
// --on-conflict; a look-alike spelling's sign-up, an invitation and a real account are not; a sign-up finished while the
// batch waits for its link lock is a real account; a refused or interrupted batch leaves it to the resumed run, once.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { sql } from "kysely";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { JobStore } from "../../jobs/job-store.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { SIGN_UP_REMOVED_EVENT } from "../email-change/sign-up-shell.ts";
import { lockAccountLinks } from "../password-reset/link-lock.ts";
import { createPasswordContext } from "../passwords/index.ts";
import { createUserStore } from "../users/user-store.ts";
import { ImportRefusedError } from "./errors.ts";
import { importUsers, type ImportDeps, type ImportOptions, type ImportReport } from "./importer.ts";
import { checkHeader, resolveMap } from "./mapping.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const md5 = (s: string): string => createHash("md5").update(s).digest("hex");
const LEGACY = md5("copper kettle on the windowsill");

async function setup(db: Database): Promise<ImportDeps> {
  const clock = new ManualClock(Date.UTC(2026, 11, 6));
  await migrate(db, clock);
  return {
    database: db, clock, passwords, users: createUserStore({ database: db, clock, random: systemRandom }), audit: new AuditLog({ database: db, clock, random: systemRandom }),
    jobs: new JobStore({ database: db, clock, random: systemRandom }),
    notices: null,
  };
}

function options(csv: string | (() => AsyncGenerator<string>), extra: Partial<ImportOptions> = {}): ImportOptions {
  const map = resolveMap({ preset: null, map: {} });
  return {
    format: "csv", onConflict: "fail", batchSize: 500, dryRun: false, skipBad: false, actor: "cli:ops", file: "legacy.csv",
    onHeader: (h: string[]) => checkHeader(h, map, {}), rules: { map, preset: null, source: "legacy.csv", salted: null },
    open: typeof csv === "string" ? async function* () {
      yield csv;
    } : csv,
    ...extra,
  };
}

const run = (deps: ImportDeps, csv: string, extra: Partial<ImportOptions> = {}): Promise<ImportReport> => importUsers(deps, options(csv, extra));

/** What POST /auth/register leaves for an address its sender never finishes: a password-less account, its event, its link. */
async function signUp(deps: ImportDeps, email: string): Promise<string> {
  const user = await deps.users.create({ email });
  await deps.audit.append({ type: "user.created", actor: "anonymous", subject: user.id, data: { via: "register", ip: "192.0.2.7" } });
  const at = deps.clock.now();
  await deps.database.db.insertInto("password_reset_tokens").values({ id: `prt_${user.id}`, user_id: user.id, secret_hash: "x", created_at: at, expires_at: at + 30 * 60_000, used_at: null }).execute();
  return user.id;
}

async function removals(deps: ImportDeps): Promise<Array<{ actor: string; subject: string | null; data: Record<string, unknown> }>> {
  const rows = await deps.database.db.selectFrom("audit_events").select(["actor", "subject", "data"]).where("type", "=", SIGN_UP_REMOVED_EVENT).orderBy("seq").execute();
  return rows.map((r) => ({ actor: r.actor, subject: r.subject, data: JSON.parse(r.data) as Record<string, unknown> }));
}

const exists = async (deps: ImportDeps, id: string): Promise<boolean> => (await deps.users.getById(id)) !== null;

forEachDialect("users import over unfinished sign-ups", (fx) => {
  for (const onConflict of ["fail", "skip", "update"] as const) {
    it(`attack: an outsider's unfinished sign-up of a migrated user's address is replaced by the row's account under --on-conflict ${onConflict}: the dry run names it, the real run removes it with its link and records it (ASVS 6.3.7)`, async () => {
      const deps = await setup(await fx.fresh());
      const squat = await signUp(deps, "Migrated.User@corp.example");
      const csv = `email,username,display_name,password_hash\nmigrated.user@corp.example,migrated,Migrated User,${LEGACY}\nother@corp.example,,,${LEGACY}\n`;
      const dry = await run(deps, csv, { onConflict, dryRun: true });
      assert.deepEqual({ bad: dry.bad, created: dry.created, updated: dry.updated, skipped: dry.skipped, signUpsRemoved: dry.signUpsRemoved }, { bad: [], created: 2, updated: 0, skipped: 0, signUpsRemoved: [{ line: 2, id: squat }] });
      assert.equal(await exists(deps, squat), true, "a dry run removes nothing");

      const real = await run(deps, csv, { onConflict });
      assert.deepEqual({ created: real.created, updated: real.updated, skipped: real.skipped, passwordsKept: real.passwordsKept, signUpsRemoved: real.signUpsRemoved }, { created: 2, updated: 0, skipped: 0, passwordsKept: 0, signUpsRemoved: [{ line: 2, id: squat }] });
      const account = await deps.users.findByIdentifier("migrated.user@corp.example");
      assert.ok(account && account.id !== squat);
      assert.deepEqual([account.username, account.displayName, account.externalSource], ["migrated", "Migrated User", null]);
      assert.equal(await passwords.verify("copper kettle on the windowsill", account.passwordHash!), true, "the legacy password is the account's");
      assert.equal(await exists(deps, squat), false);
      assert.deepEqual(await deps.database.db.selectFrom("password_reset_tokens").select("id").where("user_id", "=", squat).execute(), [], "the sign-up's link went with it");
      const [removal, ...more] = await removals(deps);
      assert.deepEqual(more, []);
      assert.deepEqual(removal, { actor: "cli:ops", subject: squat, data: { line: 2, job: real.jobId, source: "legacy.csv", via: "import", for: account.id } });
      const batch = await deps.database.db.selectFrom("audit_events").select("data").where("type", "=", "users.import.batch").executeTakeFirstOrThrow();
      assert.equal((JSON.parse(batch.data) as { signUpsRemoved: number }).signUpsRemoved, 1);
    });
  }

  it("a sign-up of another spelling that reads alike is not removed: the row is refused as a look-alike, as beside any account", async () => {
    const deps = await setup(await fx.fresh());
    const owner = await signUp(deps, "scope@corp.example");
    const dry = await run(deps, `email\nѕсоре@corp.example\n`, { onConflict: "update", dryRun: true });
    assert.equal(dry.bad.length, 1);
    assert.match(dry.bad[0]!.reason, /reads like that of another account/);
    assert.deepEqual(dry.signUpsRemoved, []);
    await assert.rejects(run(deps, `email\nѕсоре@corp.example\n`, { onConflict: "update" }), ImportRefusedError);
    assert.equal(await exists(deps, owner), true);
  });

  it("an invitation (an administrator's password-less account) and an account with a password are existing accounts, as before", async () => {
    const deps = await setup(await fx.fresh());
    const invited = await deps.users.create({ email: "invited@corp.example" });
    await deps.audit.append({ type: "user.created", actor: "usr_admin", subject: invited.id, data: { via: "api" } });
    const real = await deps.users.create({ email: "real@corp.example", passwordHash: md5("theirs"), passwordScheme: "md5" });
    const csv = `email,password_hash\ninvited@corp.example,${LEGACY}\nreal@corp.example,${LEGACY}\n`;
    const dry = await run(deps, csv, { dryRun: true });
    assert.deepEqual(dry.bad.map((b) => b.line), [2, 3]);
    assert.deepEqual(dry.signUpsRemoved, []);
    const skipped = await run(deps, csv, { onConflict: "skip" });
    assert.deepEqual([skipped.created, skipped.skipped, skipped.signUpsRemoved], [0, 2, []]);
    assert.deepEqual([await exists(deps, invited.id), await exists(deps, real.id)], [true, true]);
  });

  it("every skipped row is named with its line and reason, in the dry run and the real run", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "a@corp.example", passwordHash: md5("a"), passwordScheme: "md5" });
    await deps.users.create({ email: "c@corp.example", passwordHash: md5("c"), passwordScheme: "md5" });
    const csv = `email\na@corp.example\nb@corp.example\nc@corp.example\n`;
    const reason = "an account with this email already exists (--on-conflict skip)";
    const want = { created: 1, skipped: 2, skippedRows: [{ line: 2, reason }, { line: 4, reason }] };
    const dry = await run(deps, csv, { onConflict: "skip", dryRun: true, batchSize: 2 });
    assert.deepEqual({ created: dry.created, skipped: dry.skipped, skippedRows: dry.skippedRows }, want);
    const real = await run(deps, csv, { onConflict: "skip", batchSize: 2 });
    assert.deepEqual({ created: real.created, skipped: real.skipped, skippedRows: real.skippedRows }, want);
  });

  it("an update of an account holding no password does not count the file's as kept: it is counted as not set, and set only with replacePasswords", async () => {
    const deps = await setup(await fx.fresh());
    const invited = await deps.users.create({ email: "invited@corp.example" });
    const csv = `email,display_name,password_hash\ninvited@corp.example,Invited,${LEGACY}\n`;
    const dry = await run(deps, csv, { onConflict: "update", dryRun: true });
    assert.deepEqual([dry.updated, dry.passwordsKept, dry.passwordsNotSet, dry.passwordsReplaced], [1, 0, 1, []]);
    const kept = await run(deps, csv, { onConflict: "update" });
    assert.deepEqual([kept.updated, kept.passwordsKept, kept.passwordsNotSet, kept.passwordsReplaced], [1, 0, 1, []]);
    assert.equal((await deps.users.getById(invited.id))?.passwordHash, null);
    const set = await run(deps, csv, { onConflict: "update", replacePasswords: true });
    assert.deepEqual([set.passwordsNotSet, set.passwordsReplaced], [0, [{ line: 2, from: null, to: "md5" }]]);
    assert.equal((await deps.users.getById(invited.id))?.passwordHash, LEGACY);
  });

  it("a batch refused after removing a sign-up rolls the removal back; the resumed run removes it once and writes every row once", async () => {
    const deps = await setup(await fx.fresh());
    const squat = await signUp(deps, "r3@corp.example");
    const csv = `email,password_hash\n${[1, 2, 3, 4, 5].map((i) => `r${i}@corp.example,${LEGACY}`).join("\n")}\n`;
    // Another writer creates r4 between validation and the write of the batch holding r3 (the sign-up's address) and r4.
    let racer: Promise<unknown> | null = null;
    await assert.rejects(
      run(deps, csv, { batchSize: 2, onProgress: (n, phase) => {
        if (phase === "write" && n === 1) racer ??= deps.users.create({ email: "r4@corp.example", passwordHash: md5("r4"), passwordScheme: "md5" });
      } }),
      (e: unknown) => e instanceof ImportRefusedError && /line 5: .*batch 2 was rolled back/.test(e.message),
    );
    await racer;
    assert.equal(await exists(deps, squat), true, "the refused batch's removal was rolled back");
    assert.deepEqual(await removals(deps), []);
    await deps.database.db.deleteFrom("users").where("email", "=", "r4@corp.example").execute();
    const resumed = await run(deps, csv, { batchSize: 2 });
    assert.deepEqual({ created: resumed.created, alreadyImported: resumed.alreadyImported, signUpsRemoved: resumed.signUpsRemoved }, { created: 3, alreadyImported: 2, signUpsRemoved: [{ line: 4, id: squat }] });
    assert.equal(await deps.users.count(), 5, "every row once");
    assert.equal(await exists(deps, squat), false);
    assert.equal((await removals(deps)).length, 1);
  });

  it("a run that dies after the batch that removed a sign-up resumes after it: the removal is not repeated, the rows not written twice", async () => {
    const deps = await setup(await fx.fresh());
    const first = await signUp(deps, "c2@corp.example");
    const later = await signUp(deps, "c5@corp.example");
    const lines = ["email,password_hash", ...[1, 2, 3, 4, 5, 6].map((i) => `c${i}@corp.example,${LEGACY}`)];
    const whole = `${lines.join("\n")}\n`;
    // The write pass (the file's third read: digest, validation, write) dies after row 4: batch 1-2 (c1, c2) and 3-4 committed.
    let opened = 0;
    const dying = async function* (): AsyncGenerator<string> {
      if (++opened < 3) {
        yield whole;
        return;
      }
      yield `${lines.slice(0, 6).join("\n")}\n`;
      throw new Error("the process died");
    };
    await assert.rejects(importUsers(deps, options(dying, { batchSize: 2 })), /the process died/);
    assert.deepEqual([await exists(deps, first), await exists(deps, later)], [false, true]);
    const dry = await run(deps, whole, { batchSize: 2, dryRun: true });
    assert.deepEqual({ bad: dry.bad, created: dry.created, signUpsRemoved: dry.signUpsRemoved }, { bad: [], created: 2, signUpsRemoved: [{ line: 6, id: later }] });
    const resumed = await run(deps, whole, { batchSize: 2 });
    assert.deepEqual({ created: resumed.created, failed: resumed.failed, alreadyImported: resumed.alreadyImported, signUpsRemoved: resumed.signUpsRemoved }, { created: 2, failed: 0, alreadyImported: 4, signUpsRemoved: [{ line: 6, id: later }] });
    assert.equal(await deps.users.count(), 6, "every row once");
    assert.deepEqual((await removals(deps)).map((r) => r.subject), [first, later]);
  });

  it("a sign-up finished through its link while the batch waits for its link lock is a real account: refused under fail, named as skipped under skip, its password kept (PostgreSQL; SQLite has one writer)", async () => {
    const db = await fx.fresh();
    const deps = await setup(db);
    if (db.dialect !== "postgres") return;
    for (const onConflict of ["fail", "skip"] as const) {
      const address = `finishing-${onConflict}@corp.example`;
      const squat = await signUp(deps, address);
      // The sign-up's link is being followed: its completion holds the link lock and has set the password, not yet committed.
      let commit!: () => void;
      const committing = new Promise<void>((resolve) => (commit = resolve));
      let holding!: () => void;
      const held = new Promise<void>((resolve) => (holding = resolve));
      const completion = db.transaction(async (trx) => {
        await lockAccountLinks(db, trx, squat);
        await trx.updateTable("users").set({ password_hash: md5("the owner's"), password_scheme: "md5", password_changed_at: deps.clock.now() }).where("id", "=", squat).execute();
        holding();
        await committing;
      });
      await held;
      const importing = run(deps, `email,password_hash\n${address},${LEGACY}\n`, { onConflict }).then((r) => r, (e: unknown) => e);
      // Once the batch waits for the link lock (it read the sign-up as unfinished), the completion commits.
      let waited = false;
      for (let i = 0; i < 500 && !waited; i++) {
        const waiting = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`.execute(db.db);
        waited = Number(waiting.rows[0]?.n) > 0;
        if (!waited) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      commit();
      assert.ok(waited, "control: the batch waited for the sign-up's link lock");
      await completion;
      const outcome = await importing;
      if (onConflict === "fail") {
        assert.ok(outcome instanceof ImportRefusedError && /line 2: an account with this email already exists/.test(outcome.message), String(outcome));
      } else {
        const report = outcome as ImportReport;
        assert.deepEqual({ created: report.created, skippedRows: report.skippedRows, signUpsRemoved: report.signUpsRemoved }, { created: 0, skippedRows: [{ line: 2, reason: "an account with this email already exists (--on-conflict skip)" }], signUpsRemoved: [] });
      }
      const holder = await deps.users.findByIdentifier(address);
      assert.equal(holder?.id, squat, "the finished sign-up keeps its address");
      assert.equal(holder?.passwordHash, md5("the owner's"));
    }
    assert.deepEqual(await removals(deps), []);
  });
});
