// Containment levers, scopes, dry run, resume and undo on SQLite and PostgreSQL (issue 5).
import assert from "node:assert/strict";
import { it } from "node:test";
import { Keyring } from "../src/crypto/keyring.ts";
import { openPostgres, type Database } from "../src/store/database.ts";
import {
  countScope, createContainJob, createUndoJob, dryRunContain, jobView, registerBuiltinLevers, registerLever, resumeJob, runJob, skippedByUndo,
  type ResetNotifier,
} from "../src/contain/index.ts";
import { InputError } from "../src/lib/errors.ts";
import { openContainFixture, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 20);

// A global lever whose setup step fails until a test repairs it (as rotate-keys' does without the keyring).
let setupBroken = true;
registerBuiltinLevers();
registerLever({
  kind: "global", name: "test-setup-step", description: "a stage with a setup step",
  dryRun: async () => ({ counts: {}, sample: [] }),
  async prepare() {
    if (setupBroken) throw new InputError("BULWARK_ERR_TEST", "the key store is read-only");
  },
  step: async () => ({ counts: { steps: 1 }, next: null }),
});

interface Fixture extends ContainFixture {
  sent: string[];
}

async function setup(database: Database, options: { mailer?: boolean } = {}): Promise<Fixture> {
  const sent: string[] = [];
  // A recording fake of the outbox: the lead wires the real one.
  const notifier: ResetNotifier = { enqueueReset: async (_trx, user) => void sent.push(user.email) };
  return { ...(await openContainFixture(database, { now: NOW, notifier: options.mailer === false ? null : notifier })), sent };
}

/** n users u000…: every third is an md5 legacy hash, last logins spread over 300 days, u000-u004 admins. */
async function seedUsers(fx: Fixture, n: number): Promise<string[]> {
  const db = fx.database.db;
  const ids: string[] = [];
  const rows = [];
  for (let i = 0; i < n; i++) {
    const id = `usr_${String(i).padStart(4, "0")}`;
    ids.push(id);
    rows.push({
      id, email: `user${i}@example.org`, email_key: `user${i}@example.org`, status: "active",
      password_hash: i % 3 === 0 ? "5f4dcc3b5aa765d61d8327deb882cf99" : "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
      password_scheme: i % 3 === 0 ? "md5" : "argon2id", password_must_change: 0, created_at: NOW - 400 * DAY + i,
      updated_at: NOW - 400 * DAY, last_login_at: i === 1 ? null : NOW - (i % 300) * DAY, seeded: 1,
    });
  }
  for (let i = 0; i < rows.length; i += 200) await db.insertInto("users").values(rows.slice(i, i + 200)).execute();
  for (let i = 0; i < Math.min(5, n); i++) await db.insertInto("user_roles").values({ user_id: ids[i] as string, role: "admin", granted_at: NOW - 500 * DAY, granted_by: "test" }).execute();
  if (n > 6) await db.insertInto("user_roles").values({ user_id: ids[6] as string, role: "auditor", granted_at: NOW, granted_by: "test" }).execute();
  return ids;
}

async function user(fx: Fixture, id: string) {
  return fx.database.db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
}

forEachDialect("contain levers", (dfx) => {
  it("refuses a job with no scope and never implies --all", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3);
    await assert.rejects(createContainJob(fx, { levers: ["expire-passwords"], scope: {}, actor: "t" }), /no scope given/);
    await assert.rejects(createContainJob(fx, { levers: ["explode"], scope: { all: true }, actor: "t" }), /unknown lever "explode"/);
    await assert.rejects(createContainJob(fx, { levers: ["expire-passwords"], scope: { all: true, scheme: "md5" }, actor: "t" }), /--all cannot be combined/);
    const u = await user(fx, "usr_0000");
    assert.equal(Number(u.password_must_change), 0, "nothing changed");
  });

  it("combines scopes with AND: roles, ids/emails, created, last login, active window, scheme", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 30);
    const count = async (scope: object): Promise<number> => (await dryRunContain(fx, { levers: ["lock-accounts"], scope, actor: "t" })).users;
    assert.equal(await count({ all: true }), 30);
    assert.equal(await count({ roles: ["admin"] }), 5);
    assert.equal(await count({ roles: ["admin", "auditor"] }), 6);
    assert.equal(await count({ roles: ["admin"], scheme: "md5" }), 2, "u0 and u3");
    assert.equal(await count({ ids: ["usr_0007", "USER8@example.org", "nobody@example.org"] }), 2);
    assert.equal(await count({ scheme: "md5" }), 10);
    assert.equal(await count({ lastLoginAfter: NOW - 10 * DAY }), 10, "u0 and u2…u10 (u1 never logged in)");
    assert.equal(await count({ activeFrom: NOW - 10 * DAY, activeTo: NOW - 5 * DAY }), 6);
    assert.equal(await count({ lastLoginBefore: NOW - 25 * DAY }), 4, "u26…u29");
    assert.equal(await count({ createdBefore: NOW - 400 * DAY + 3 }), 3);
    assert.equal(await count({ createdAfter: NOW - 400 * DAY + 28, scheme: "argon2id" }), 2, "u28 and u29");
    assert.equal(await count({ createdAfter: NOW - 400 * DAY + 28, scheme: "md5" }), 0);
  });

  it("refuses a created or last-login window whose bounds are equal (half-open: empty by construction), before any job exists", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3);
    const day = NOW - 400 * DAY;
    for (const scope of [{ createdAfter: day, createdBefore: day }, { lastLoginAfter: NOW - DAY, lastLoginBefore: NOW - DAY }]) {
      await assert.rejects(dryRunContain(fx, { levers: ["lock-accounts"], scope, actor: "t" }), /equals .*-before: the window includes its start and excludes its end, so it is empty; to name one day, end it at the next day/);
      await assert.rejects(createContainJob(fx, { levers: ["lock-accounts"], scope, actor: "t" }), /is empty/);
    }
    assert.equal((await fx.jobs.list({})).length, 0, "no job was created");
    // --active is closed at both ends: equal bounds are one instant, which is a real scope.
    await assert.doesNotReject(dryRunContain(fx, { levers: ["lock-accounts"], scope: { activeFrom: NOW - DAY, activeTo: NOW - DAY }, actor: "t" }));
  });

  it("dry run reports per lever with a sample and writes nothing but an audit event", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 20);
    const before = (await fx.audit.tail(100)).length;
    const report = await dryRunContain(fx, { levers: ["expire-passwords", "lock-accounts", "demote-inactive-admins", "unlink-sso"], scope: { all: true }, actor: "t" });
    assert.equal(report.users, 20);
    assert.deepEqual(report.levers["expire-passwords"]?.counts, { users: 20, noticesQueued: 0, noticesRefused: 0 });
    assert.equal(report.levers["expire-passwords"]?.sample.length, 5);
    // Admins u0…u4: last logins 0…4 days ago except u1 (never; created 400 days ago) → only u1 is inactive.
    assert.deepEqual(report.levers["demote-inactive-admins"]?.counts, { users: 1, roleGrants: 1 });
    assert.deepEqual(report.levers["unlink-sso"]?.counts, { users: 0, identities: 0, noticesQueued: 0, noticesRefused: 0 });
    const events = await fx.audit.tail(100);
    assert.equal(events.length, before + 1);
    assert.equal(events.at(-1)?.type, "contain.dry-run");
    assert.equal(Number((await user(fx, "usr_0005")).password_must_change), 0);
    assert.equal((await fx.jobs.list()).length, 0, "no job row");
  });

  it("attack: require-mfa-reenrolment pulled alone says, before and after, that whoever signs in first with a password enrols the next factor (was: silent)", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3);
    const alone = await dryRunContain(fx, { levers: ["require-mfa-reenrolment"], scope: { all: true }, actor: "t" });
    assert.match((alone.levers["require-mfa-reenrolment"]?.notes ?? []).join("\n"), /without invalidate-passwords: whoever signs in first with a user's password enrols/);
    for (const levers of [["require-mfa-reenrolment", "invalidate-passwords"], ["lock-accounts", "require-mfa-reenrolment"]]) {
      const paired = await dryRunContain(fx, { levers, scope: { all: true }, actor: "t" });
      assert.deepEqual(paired.levers["require-mfa-reenrolment"]?.notes ?? [], [], levers.join(" + "));
    }
    const job = await createContainJob(fx, { levers: ["require-mfa-reenrolment"], scope: { all: true }, actor: "t" });
    const done = await runJob(fx, job.id);
    assert.equal(done.status, "done");
    assert.ok(jobView(done).notes.some((n) => n.includes("pull invalidate-passwords with it")));
  });

  it("expires, locks and demotes in one job, then undo restores exactly those rows and reports ones changed since", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedUsers(fx, 25);
    const job = await createContainJob(fx, { levers: ["demote-inactive-admins", "expire-passwords", "lock-accounts"], scope: { all: true }, actor: "t", batchSize: 7, incidentId: "inc_1" });
    assert.deepEqual(job.spec.levers, ["lock-accounts", "expire-passwords", "demote-inactive-admins"], "fixed order");
    const done = await runJob(fx, job.id);
    const view = jobView(done);
    assert.equal(view.status, "done");
    assert.equal(view.done, 25);
    assert.deepEqual(view.counts["expire-passwords"], { users: 25, noticesQueued: 0, noticesRefused: 0 });
    assert.deepEqual(view.counts["lock-accounts"], { users: 25 });
    assert.deepEqual(view.counts["demote-inactive-admins"], { users: 1, roleGrants: 1 });
    assert.equal(view.incidentId, "inc_1");
    const u1 = await user(fx, "usr_0001");
    assert.equal(Number(u1.password_must_change), 1);
    assert.equal(Number(u1.locked_at), NOW);
    assert.equal(u1.locked_reason, "containment");
    const db = fx.database.db;
    assert.equal((await db.selectFrom("user_roles").selectAll().where("user_id", "=", "usr_0001").execute()).length, 0);

    // After the job: u2 changed its password (flag cleared), u3 was unlocked and locked again by hand, u1 re-granted admin.
    await db.updateTable("users").set({ password_must_change: 0 }).where("id", "=", "usr_0002").execute();
    await db.updateTable("users").set({ locked_at: NOW + 5, locked_reason: "manual" }).where("id", "=", "usr_0003").execute();
    await db.insertInto("user_roles").values({ user_id: "usr_0001", role: "admin", granted_at: NOW + 9, granted_by: "ops" }).execute();
    fx.clock.advance(DAY);
    const undo = await createUndoJob(fx, job.id, "t");
    await assert.rejects(createUndoJob(fx, job.id, "t"), (e: Error) => /cannot be undone: undo job job_\w+ is still running/.test(e.message), "one undo at a time per job");
    // Was: a failed undo let a second one start, and resuming the first later ran both over the same records.
    assert.equal(await fx.jobs.markFailed(undo.id, "the database went away"), true);
    await assert.rejects(createUndoJob(fx, job.id, "t"), (e: Error) => e.message.includes(`undo job ${undo.id} failed part-way (resume it with \`bulwark contain resume ${undo.id}\`)`), "a failed undo is resumed, not doubled");
    const undone = jobView(await resumeJob(fx, undo.id, { actor: "t" }));
    assert.equal(undone.status, "done");
    assert.deepEqual(undone.counts["expire-passwords"], { restored: 24, skipped: 1 });
    assert.deepEqual(undone.counts["lock-accounts"], { restored: 24, skipped: 1 });
    assert.deepEqual(undone.counts["demote-inactive-admins"], { restored: 0, skipped: 1 });
    const skipped = await skippedByUndo(fx, job.id);
    assert.deepEqual(skipped.map((s) => `${s.lever}:${s.userId}`).sort(), ["demote-inactive-admins:usr_0001", "expire-passwords:usr_0002", "lock-accounts:usr_0003"]);
    for (const id of ids.filter((i) => i !== "usr_0003")) {
      const u = await user(fx, id);
      assert.equal(Number(u.password_must_change), 0, id);
      assert.equal(u.locked_at, null, id);
    }
    assert.equal((await user(fx, "usr_0003")).locked_reason, "manual", "a lock set since is left alone");
    // Lifting a lock ends the sessions from before it (a thief's, held through the lock), as an unlock does.
    const stamps = new Map((await db.selectFrom("revocation_stamps").select(["scope", "not_before"]).execute()).map((r) => [r.scope, Number(r.not_before)]));
    for (const id of ids.filter((i) => i !== "usr_0003")) assert.equal(stamps.get(`user:${id}`), fx.clock.now() + 1, `${id}: session stamp raised by the undo`);
    assert.equal(stamps.has("user:usr_0003"), false, "a user still locked keeps its stamp as it was");
    const grant = await db.selectFrom("user_roles").selectAll().where("user_id", "=", "usr_0001").executeTakeFirstOrThrow();
    assert.equal(grant.granted_by, "ops", "the re-grant is left alone");
    // A second undo finds nothing left to do.
    const again = jobView(await runJob(fx, (await createUndoJob(fx, job.id, "t")).id));
    assert.equal(again.done, 0);
    const types = (await fx.audit.tail(1000)).map((e) => e.type);
    for (const t of ["contain.job.created", "contain.job.batch", "contain.job.completed", "contain.undo.created"]) assert.ok(types.includes(t), t);
    assert.equal((await fx.audit.verify()).ok, true);
  });

  it("undo judges every record of a batch by its own conditions (one statement per batch), and restores each user's own lock reason", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedUsers(fx, 6);
    const db = fx.database.db;
    // Before the job: u0 never changed a password (null time), the others at distinct times; u1 and u2 carry an old
    // lock reason of their own from an earlier, lifted lock.
    for (const [i, id] of ids.entries()) await db.updateTable("users").set({ password_changed_at: i === 0 ? null : NOW - i * DAY }).where("id", "=", id).execute();
    await db.updateTable("users").set({ locked_reason: "lifted: travel" }).where("id", "=", "usr_0001").execute();
    await db.updateTable("users").set({ locked_reason: "lifted: support ticket 7" }).where("id", "=", "usr_0002").execute();
    const job = await createContainJob(fx, { levers: ["expire-passwords", "lock-accounts"], scope: { all: true }, actor: "t", batchSize: 100 });
    await runJob(fx, job.id);
    // Since: u3 changed its password and was expired again by hand (its time moved); u4's record predates the change
    // time being recorded (undo then trusts the flag alone); u5 was unlocked and locked again for another reason.
    await db.updateTable("users").set({ password_changed_at: NOW + 5, password_must_change: 1 }).where("id", "=", "usr_0003").execute();
    const legacy = await db.selectFrom("contain_changes").select("after").where("job_id", "=", job.id).where("lever", "=", "expire-passwords").where("user_id", "=", "usr_0004").executeTakeFirstOrThrow();
    await db.updateTable("contain_changes").set({ after: JSON.stringify({ password_must_change: 1 }) }).where("job_id", "=", job.id).where("lever", "=", "expire-passwords").where("user_id", "=", "usr_0004").execute();
    assert.ok(JSON.parse(legacy.after as string).password_changed_at !== undefined, "the job records the change time");
    await db.updateTable("users").set({ password_changed_at: NOW + 6 }).where("id", "=", "usr_0004").execute();
    await db.updateTable("users").set({ locked_at: NOW + 7, locked_reason: "manual" }).where("id", "=", "usr_0005").execute();

    const undone = jobView(await runJob(fx, (await createUndoJob(fx, job.id, "t")).id));
    assert.deepEqual(undone.counts["expire-passwords"], { restored: 5, skipped: 1 });
    assert.deepEqual(undone.counts["lock-accounts"], { restored: 5, skipped: 1 });
    const flags = Object.fromEntries(await Promise.all(ids.map(async (id) => [id, Number((await user(fx, id)).password_must_change)])));
    assert.deepEqual(flags, { usr_0000: 0, usr_0001: 0, usr_0002: 0, usr_0003: 1, usr_0004: 0, usr_0005: 0 }, "u0 by its null time, u4 by the flag alone; u3's newer expiry stands");
    const locks = Object.fromEntries(await Promise.all(ids.map(async (id) => { const u = await user(fx, id); return [id, [u.locked_at === null ? null : Number(u.locked_at), u.locked_reason]]; })));
    assert.deepEqual(locks, {
      usr_0000: [null, null], usr_0001: [null, "lifted: travel"], usr_0002: [null, "lifted: support ticket 7"], usr_0003: [null, null], usr_0004: [null, null],
      usr_0005: [NOW + 7, "manual"],
    });
    assert.deepEqual((await skippedByUndo(fx, job.id)).map((s) => `${s.lever}:${s.userId}`).sort(), ["expire-passwords:usr_0003", "lock-accounts:usr_0005"]);
  });

  it("undo restores a demoted admin when nothing changed since", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 8);
    const job = await createContainJob(fx, { levers: ["demote-inactive-admins"], scope: { roles: ["admin"] }, options: { inactiveDays: 2 }, actor: "t" });
    const view = jobView(await runJob(fx, job.id));
    assert.deepEqual(view.counts["demote-inactive-admins"], { users: 3, roleGrants: 3 }, "u1 (never), u3, u4");
    const db = fx.database.db;
    assert.equal((await db.selectFrom("user_roles").selectAll().where("role", "=", "admin").execute()).length, 2);
    await runJob(fx, (await createUndoJob(fx, job.id, "t")).id);
    const back = await db.selectFrom("user_roles").selectAll().where("role", "=", "admin").orderBy("user_id").execute();
    assert.deepEqual(back.map((r) => [r.user_id, Number(r.granted_at), r.granted_by]), [0, 1, 2, 3, 4].map((i) => [`usr_000${i}`, NOW - 500 * DAY, "test"]));
  });

  it("attack: a grant revoked or a lock set by an administrator while the batch runs is not recorded as the job's, so its undo never hands it back", async (t) => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3); // u1: an admin who never logged in (inactive, demoted); u0: an active admin, not locked
    const target = dfx.lastTarget();
    // SQLite takes the write lock at BEGIN: a batch cannot read rows another writer is changing, so no interleaving exists.
    if (!target.databaseURL) return t.skip("SQLite serialises write transactions; the race needs PostgreSQL's READ COMMITTED");
    const admin = await openPostgres(target.databaseURL);
    try {
      const job = await createContainJob(fx, { levers: ["demote-inactive-admins", "lock-accounts"], scope: { ids: ["usr_0000", "usr_0001"] }, actor: "t" });
      // The administrator's transaction revokes u1's admin role and locks u0, and stays open while the job's batch runs;
      // it commits first. (On SQLite the batch waits for it; on PostgreSQL the batch reads the old rows, then waits.)
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let changed!: () => void;
      const didChange = new Promise<void>((r) => (changed = r));
      const adminTx = admin.transaction(async (trx) => {
        await trx.deleteFrom("user_roles").where("user_id", "=", "usr_0001").where("role", "=", "admin").execute();
        await trx.updateTable("users").set({ locked_at: NOW + 5, locked_reason: "ops: lost laptop" }).where("id", "=", "usr_0000").execute();
        changed();
        await held;
      });
      await didChange;
      const running = runJob(fx, job.id);
      await new Promise((r) => setTimeout(r, 300));
      release();
      await adminTx;
      const done = jobView(await running);
      assert.deepEqual(done.counts["demote-inactive-admins"], { users: 0, roleGrants: 0 }, "the job removed no grant");
      assert.deepEqual(done.counts["lock-accounts"], { users: 1 }, "the job locked u1 only: u0's lock is the administrator's");
      const records = await fx.database.db.selectFrom("contain_changes").select(["lever", "user_id"]).where("job_id", "=", job.id).execute();
      assert.deepEqual(records, [{ lever: "lock-accounts", user_id: "usr_0001" }], "only the job's own change is recorded");
      await runJob(fx, (await createUndoJob(fx, job.id, "t")).id);
      assert.deepEqual(await fx.database.db.selectFrom("user_roles").select("role").where("user_id", "=", "usr_0001").execute(), [], "the revoked role stays revoked");
      const u0 = await user(fx, "usr_0000");
      assert.deepEqual([Number(u0.locked_at), u0.locked_reason], [NOW + 5, "ops: lost laptop"], "the administrator's lock stands");
      assert.equal((await user(fx, "usr_0001")).locked_at, null, "the job's own lock of u1 is undone");
    } finally {
      await admin.close();
    }
  });

  it("attack: undoing a newer job leaves a user an older, not undone job contained after it (found already contained, so it recorded nothing)", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3);
    const levers = ["expire-passwords", "lock-accounts"];
    // Incident 1's job is created first but runs last (queued, or failed and resumed later).
    const first = await createContainJob(fx, { levers, scope: { ids: ["usr_0000", "usr_0001"] }, actor: "incident-1" });
    fx.clock.advance(1000);
    const second = await createContainJob(fx, { levers, scope: { ids: ["usr_0000"] }, actor: "incident-2" });
    await runJob(fx, second.id);
    fx.clock.advance(1000);
    assert.deepEqual(jobView(await runJob(fx, first.id)).counts, { "expire-passwords": { users: 1, noticesQueued: 0, noticesRefused: 0 }, "lock-accounts": { users: 1 } }, "u0 was already contained: only u1 changed");
    fx.clock.advance(1000);
    // Incident 2 was a false alarm; incident 1 was not.
    const undo = jobView(await runJob(fx, (await createUndoJob(fx, second.id, "incident-2")).id));
    assert.deepEqual(undo.counts, { "expire-passwords": { restored: 0, skipped: 1 }, "lock-accounts": { restored: 0, skipped: 1 } });
    const u0 = await user(fx, "usr_0000");
    assert.equal(Number(u0.password_must_change), 1, "incident 1's expiry of u0 stands");
    assert.notEqual(u0.locked_at, null, "incident 1's lock of u0 stands");
    assert.deepEqual((await skippedByUndo(fx, second.id)).map((r) => `${r.lever}:${r.userId}`).sort(), ["expire-passwords:usr_0000", "lock-accounts:usr_0000"], "reported as left alone");
  });

  it("attack: undoing an older job does not cancel a later job's containment of the same users, and reports them", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3);
    const db = fx.database.db;
    const request = { levers: ["expire-passwords", "demote-inactive-admins"], scope: { ids: ["usr_0000", "usr_0001"] }, actor: "t" };
    const a = await createContainJob(fx, request);
    assert.deepEqual(jobView(await runJob(fx, a.id)).counts, { "expire-passwords": { users: 2, noticesQueued: 0, noticesRefused: 0 }, "demote-inactive-admins": { users: 1, roleGrants: 1 } });
    // After job A, u0's expiry is cleared and u1 is granted admin again; a second incident contains both again.
    await db.updateTable("users").set({ password_must_change: 0 }).where("id", "=", "usr_0000").execute();
    await db.insertInto("user_roles").values({ user_id: "usr_0001", role: "admin", granted_at: NOW + 9, granted_by: "ops" }).execute();
    fx.clock.advance(DAY);
    const b = await createContainJob(fx, request);
    assert.deepEqual(jobView(await runJob(fx, b.id)).counts, { "expire-passwords": { users: 1, noticesQueued: 0, noticesRefused: 0 }, "demote-inactive-admins": { users: 1, roleGrants: 1 } }, "u1 was still expired: B changed only u0's flag");
    const undo = jobView(await runJob(fx, (await createUndoJob(fx, a.id, "t")).id));
    assert.deepEqual(undo.counts["expire-passwords"], { restored: 0, skipped: 2 }, "u0 expired again by B, u1 found expired by B");
    assert.deepEqual(undo.counts["demote-inactive-admins"], { restored: 0, skipped: 1 });
    for (const id of ["usr_0000", "usr_0001"]) assert.equal(Number((await user(fx, id)).password_must_change), 1, `${id}: B's expiry stands`);
    assert.deepEqual(await db.selectFrom("user_roles").select("role").where("user_id", "=", "usr_0001").execute(), [], "B's demotion stands");
    assert.deepEqual((await skippedByUndo(fx, a.id)).map((r) => `${r.lever}:${r.userId}`).sort(), ["demote-inactive-admins:usr_0001", "expire-passwords:usr_0000", "expire-passwords:usr_0001"]);
  });

  it("once the later job is itself undone, undoing the older one restores what it changed", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3);
    const a = await createContainJob(fx, { levers: ["expire-passwords"], scope: { ids: ["usr_0000"] }, actor: "t" });
    await runJob(fx, a.id);
    fx.clock.advance(DAY);
    const b = await createContainJob(fx, { levers: ["expire-passwords"], scope: { all: true }, actor: "t" });
    await runJob(fx, b.id);
    assert.deepEqual(jobView(await runJob(fx, (await createUndoJob(fx, b.id, "t")).id)).counts["expire-passwords"], { restored: 2, skipped: 0 });
    assert.deepEqual(jobView(await runJob(fx, (await createUndoJob(fx, a.id, "t")).id)).counts["expire-passwords"], { restored: 1, skipped: 0 });
    assert.equal(Number((await user(fx, "usr_0000")).password_must_change), 0);
  });

  it("undo leaves alone an expiry an administrator set again after the user changed the password", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 2);
    const db = fx.database.db;
    const job = await createContainJob(fx, { levers: ["expire-passwords"], scope: { ids: ["usr_0000"] }, actor: "t" });
    await runJob(fx, job.id);
    // The user changes the password (the flag clears, the change time moves), then an administrator expires it again.
    await db.updateTable("users").set({ password_must_change: 0, password_changed_at: NOW + 5 }).where("id", "=", "usr_0000").execute();
    await db.updateTable("users").set({ password_must_change: 1 }).where("id", "=", "usr_0000").execute();
    const undo = jobView(await runJob(fx, (await createUndoJob(fx, job.id, "t")).id));
    assert.deepEqual(undo.counts["expire-passwords"], { restored: 0, skipped: 1 });
    assert.equal(Number((await user(fx, "usr_0000")).password_must_change), 1, "the administrator's expiry stands");
  });

  it("refuses an unknown role before anything happens, naming it and the roles that exist", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 7);
    const request = { levers: ["revoke-sessions", "lock-accounts"], scope: { roles: ["admin", "admni"] }, actor: "t" };
    const refused = { code: "BULWARK_ERR_CONTAIN_ROLE", kind: "input", message: /unknown role "admni": nothing was done; known roles: .*\badmin\b.*auditor/ };
    await assert.rejects(dryRunContain(fx, request), refused);
    await assert.rejects(countScope(fx, request.scope), refused);
    await assert.rejects(createContainJob(fx, request), refused);
    assert.equal((await fx.jobs.list()).length, 0, "no job");
    assert.equal((await fx.database.db.selectFrom("revocation_stamps").select("scope").execute()).length, 0, "no stamp raised");
    assert.equal((await user(fx, "usr_0000")).locked_at, null);
  });

  it("a dry run refuses the batch sizes the real run refuses, so it never vouches for a job that cannot start", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3);
    for (const batchSize of [0, -5, 5001, 99_999]) {
      const request = { levers: ["lock-accounts"], scope: { all: true as const }, actor: "t", batchSize };
      await assert.rejects(dryRunContain(fx, request), { code: "BULWARK_ERR_CONTAIN_SCOPE", message: /--batch-size must be between 1 and 5000/ }, `dry run, ${batchSize}`);
      await assert.rejects(createContainJob(fx, request), { message: /--batch-size must be between 1 and 5000/ }, `real run, ${batchSize}`);
    }
    assert.equal((await dryRunContain(fx, { levers: ["lock-accounts"], scope: { all: true }, actor: "t", batchSize: 5000 })).users, 3);
  });

  it("reports --ids entries that name no user, in the dry run and in the job, instead of dropping them silently", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 4);
    const scope = { ids: ["usr_0001", "USER2@example.org", "usr_typo", "Nobody@Example.org"] };
    const dry = await dryRunContain(fx, { levers: ["lock-accounts"], scope, actor: "t" });
    assert.equal(dry.users, 2);
    assert.deepEqual(dry.unmatchedIds, { count: 2, sample: ["usr_typo", "Nobody@Example.org"] });
    const job = await createContainJob(fx, { levers: ["lock-accounts"], scope, actor: "t" });
    const view = jobView(await runJob(fx, job.id));
    assert.equal(view.total, 2);
    assert.match(view.notes.join(" "), /2 --ids entries name no user and are left out: usr_typo, Nobody@Example\.org/);
    const created = (await fx.audit.tail(20)).find((e) => e.type === "contain.job.created");
    assert.equal((created?.data as { unmatchedIds: number }).unmatchedIds, 2);
    await assert.rejects(createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: [] }, actor: "t" }), /--ids file lists no user ids or emails/);
  });

  it("a stage whose setup step fails marks the job failed with the reason and audits it; a resume carries on once repaired", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 3);
    setupBroken = true;
    const job = await createContainJob(fx, { levers: ["lock-accounts", "test-setup-step"], scope: { all: true }, actor: "t" });
    // A runtime failure of the job (exit 3, resumable), not the setup step's own error escaping (exit 2).
    await assert.rejects(runJob(fx, job.id), { code: "BULWARK_ERR_CONTAIN_FAILED", kind: "runtime", message: /key store is read-only.*bulwark contain resume/ });
    const failed = await fx.jobs.get(job.id);
    assert.equal(failed.status, "failed", "not left running");
    assert.equal(failed.error, "the key store is read-only");
    const events = (await fx.audit.tail(50)).filter((e) => e.type === "contain.job.failed" && e.subject === job.id);
    assert.deepEqual(events.map((e) => (e.data as { stage: string; error: string })), [{ kind: "contain", stage: "test-setup-step", error: "the key store is read-only", worker: "" }]);
    setupBroken = false;
    const resumed = jobView(await resumeJob(fx, job.id, { actor: "test" }));
    assert.equal(resumed.status, "done");
    assert.deepEqual(resumed.counts["test-setup-step"], { steps: 1 });
    assert.equal((await fx.audit.verify()).ok, true);
  });

  it("invalidates passwords and queues one reset email per user; without a mailer says so and queues none", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 12);
    const job = await createContainJob(fx, { levers: ["invalidate-passwords"], scope: { scheme: "md5" }, actor: "t", batchSize: 3 });
    const view = jobView(await runJob(fx, job.id));
    assert.deepEqual(view.counts["invalidate-passwords"], { users: 4, resetEmailsQueued: 4, resetEmailsRefused: 0, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 0 });
    assert.deepEqual(fx.sent.sort(), ["user0@example.org", "user3@example.org", "user6@example.org", "user9@example.org"]);
    assert.equal(Number((await user(fx, "usr_0003")).password_invalidated_at), NOW);
    assert.equal((await user(fx, "usr_0004")).password_invalidated_at, null);
    await assert.rejects(createUndoJob(fx, job.id, "t"), /not reversible|none of its levers/);

    const bare = await setup(await dfx.fresh(), { mailer: false });
    await seedUsers(bare, 3);
    const v2 = jobView(await runJob(bare, (await createContainJob(bare, { levers: ["invalidate-passwords"], scope: { all: true }, actor: "t" })).id));
    assert.deepEqual(v2.counts["invalidate-passwords"], { users: 3, resetEmailsQueued: 0, resetEmailsRefused: 0, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 0 });
    assert.match(v2.notes.join(" "), /no mailer is configured/);
  });

  it("unlinks SSO identities and rotates keys, re-encrypting every stored token", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 6);
    const db = fx.database.db;
    const ring = fx.keyring as Keyring;
    const oldKey = ring.currentDataKeyId;
    for (let i = 0; i < 6; i++) {
      const id = `idn_${i}`;
      await db.insertInto("identities").values({
        id, user_id: `usr_000${i}`, provider: "github", subject: `gh${i}`, created_at: NOW, last_used_at: null,
        access_token_ct: ring.encrypt(`access-${i}`, { table: "identities", column: "access_token_ct", row: id }),
        refresh_token_ct: i % 2 ? null : ring.encrypt(`refresh-${i}`, { table: "identities", column: "refresh_token_ct", row: id }),
      }).execute();
    }
    const dry = await dryRunContain(fx, { levers: ["unlink-sso", "rotate-keys"], scope: { ids: ["usr_0000", "usr_0001"] }, actor: "t" });
    assert.deepEqual(dry.levers["unlink-sso"]?.counts, { users: 2, identities: 2, noticesQueued: 0, noticesRefused: 0 });
    assert.deepEqual(dry.levers["rotate-keys"]?.counts, { keys: 1, encryptedValues: 9 });
    const job = await createContainJob(fx, { levers: ["rotate-keys", "unlink-sso"], scope: { ids: ["usr_0000", "usr_0001"] }, actor: "t" });
    const view = jobView(await runJob(fx, job.id));
    assert.equal(view.status, "done");
    assert.deepEqual(view.counts["unlink-sso"], { users: 2, identities: 2, noticesQueued: 0, noticesRefused: 0 });
    assert.deepEqual(view.counts["rotate-keys"], { reencrypted: 6 }, "4 remaining identities: 4 access + 2 refresh tokens");
    assert.notEqual(ring.currentDataKeyId, oldKey);
    // The key the job made is in the audit log, with the job it belongs to.
    const prepared = (await fx.audit.tail(50)).filter((e) => e.type === "contain.job.prepared");
    assert.deepEqual(prepared.map((e) => ({ subject: e.subject, stage: e.data["stage"], newDataKey: e.data["newDataKey"] })), [{ subject: job.id, stage: "rotate-keys", newDataKey: ring.currentDataKeyId }]);
    for (const r of await db.selectFrom("identities").selectAll().orderBy("id").execute()) {
      assert.equal(Keyring.keyIdOf(r.access_token_ct as string), ring.currentDataKeyId);
      assert.equal(ring.decryptString(r.access_token_ct as string, { table: "identities", column: "access_token_ct", row: r.id }), `access-${r.id.slice(4)}`);
    }
    assert.deepEqual((await db.selectFrom("identities").select("user_id").orderBy("user_id").execute()).map((r) => r.user_id), ["usr_0002", "usr_0003", "usr_0004", "usr_0005"]);
  });

  it("resumes a job stopped between batches on the same recorded set, reaching the uninterrupted end state", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 40);
    const job = await createContainJob(fx, { levers: ["expire-passwords", "lock-accounts"], scope: { scheme: "argon2id" }, actor: "t", batchSize: 4 });
    assert.equal(job.total, 26);
    const partial = await runJob(fx, job.id, { stopAfterBatches: 3 });
    assert.equal(partial.status, "running");
    assert.equal(partial.done, 12);
    // A user created after the job started is not in its recorded scope, even though it matches.
    await fx.database.db.insertInto("users").values({ id: "usr_late", email: "late@example.org", email_key: "late@example.org", status: "active", password_hash: "$argon2id$x", password_scheme: "argon2id", password_must_change: 0, created_at: NOW, updated_at: NOW, seeded: 1 }).execute();
    const resumed = jobView(await resumeJob(fx, job.id, { actor: "test" }));
    assert.equal(resumed.status, "done");
    assert.equal(resumed.done, 26);
    assert.deepEqual(resumed.counts["expire-passwords"], { users: 26, noticesQueued: 0, noticesRefused: 0 });
    assert.equal(Number((await user(fx, "usr_late")).password_must_change), 0);
    await assert.rejects(resumeJob(fx, job.id, { actor: "test" }), /nothing to resume/);
    assert.equal((await fx.audit.verify()).ok, true);
  });
});
