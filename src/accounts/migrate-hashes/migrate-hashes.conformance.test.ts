// The wrap-migration job on SQLite and PostgreSQL: batches, compare-and-set against a concurrent
// change, resume after a batch that failed half-way, idempotency, and the audit trail.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { keyedDigest, keyedFingerprint } from "../../crypto/tokens.ts";
import { JobStore } from "../../jobs/job-store.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { FloodControl } from "../flood/flood.ts";
import { login } from "../login/login.ts";
import { hashArgon2id } from "../passwords/argon2.ts";
import { createPasswordContext, type PasswordContext } from "../passwords/index.ts";
import { createUserStore } from "../users/user-store.ts";
import { JOB_KIND, openMigrationJob, resumeMigrationJob, runMigration, wrappableCensus, type MigrateDeps } from "./migrate-hashes.ts";

/** Flood-control rows' keys under a fixed test key (the app keys them with Keyring.floodKey). */
const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x5f), text);

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const md5 = (s: string): string => createHash("md5").update(s).digest("hex");
const sha1 = (s: string): string => createHash("sha1").update(s).digest("hex");

// Legacy hashes with known passwords (phpass and Drupal ones from vectors/php.json).
const LEGACY: Array<[string, string]> = [
  ["$S$5NmmasABBCxG9XpSemMLfPLsbsGtorG5xj7BerZNxxn8CqtDSlkB", "password"],
  ["$P$6npetjI95qN1kIVZ9V0Ce6NS5dN6cT0", "password"],
  ["U$P$66A.sO.QDK9yJMc2q12NL2UROAkmWh1", "password"],
];

async function setup(db: Database, ctx: PasswordContext = passwords): Promise<MigrateDeps & { clock: ManualClock; known: Map<string, string> }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  const users = createUserStore({ database: db, clock, random: systemRandom });
  const deps = { database: db, clock, passwords: ctx, users, jobs: new JobStore({ database: db, clock, random: systemRandom }), audit: new AuditLog({ database: db, clock, random: systemRandom }) };
  const known = new Map<string, string>();
  const add = async (email: string, hash: string | null, password: string): Promise<void> => {
    const u = await users.create({ email, passwordHash: hash, passwordScheme: hash ? passwords.identify(hash) : null });
    known.set(u.id, password);
  };
  for (let i = 0; i < 8; i++) await add(`md5-${i}@example.org`, md5(`secret ${i}`), `secret ${i}`);
  for (let i = 0; i < 2; i++) await add(`sha1-${i}@example.org`, sha1(`sha ${i}`), `sha ${i}`);
  for (const [i, [hash, password]] of LEGACY.entries()) await add(`legacy-${i}@example.org`, hash, password);
  await add("modern@example.org", await passwords.hash("already argon2"), "already argon2");
  await add("nopass@example.org", null, "");
  return { ...deps, known };
}

async function hashes(deps: MigrateDeps): Promise<Map<string, string | null>> {
  const rows = await deps.database.db.selectFrom("users").select(["id", "password_hash"]).execute();
  return new Map(rows.map((r) => [r.id, r.password_hash]));
}

forEachDialect("migrate-hashes job", (fx) => {
  it("a job cancelled before its run returns as it is, wrapping nothing (was: its refused commits were retried for ever)", { timeout: 20_000 }, async () => {
    const deps = await setup(await fx.fresh());
    const before = await hashes(deps);
    const { job } = await openMigrationJob(deps, { actor: "test", batch: 4 });
    assert.equal(await deps.jobs.finishIfUnfinished(job.id, "cancelled"), true);
    const after = await runMigration(deps, job, { actor: "test" });
    assert.equal(after.status, "cancelled");
    assert.equal(after.done, 0);
    assert.deepEqual(await hashes(deps), before);
  });

  it("wraps every legacy hash in batches, keeps every password working, and audits each batch", async () => {
    const deps = await setup(await fx.fresh());
    assert.deepEqual(await wrappableCensus(deps), { total: 13, bySchemes: { md5: 8, sha1: 2, drupal7: 1, phpass: 1, "drupal7-wrapped-md5": 1 }, belowMinimum: 0 });
    const { job, resumed } = await openMigrationJob(deps, { actor: "test", batch: 4 });
    assert.equal(resumed, false);
    assert.equal(job.total, 13);
    const progress: number[] = [];
    const done = await runMigration(deps, job, { actor: "test", concurrency: 3, onProgress: (n) => progress.push(n) });
    assert.equal(done.status, "done");
    assert.deepEqual([done.done, done.counts["wrapped"], done.counts["skipped"]], [13, 13, 0]);
    assert.equal(progress.length, 4, "15 users in batches of 4");
    for (const [id, hash] of await hashes(deps)) {
      const password = deps.known.get(id)!;
      if (hash === null) continue;
      assert.ok(hash.startsWith("$bulwark-wrap$") || hash.startsWith("$argon2id$"), hash);
      assert.equal(await passwords.verify(password, hash), true, `password of ${id} still verifies`);
      assert.equal(await passwords.verify(`${password}!`, hash), false);
    }
    const types = (await deps.audit.tail(100)).map((e) => e.type);
    assert.deepEqual(types, ["users.migrate-hashes.created", ...Array(4).fill("users.migrate-hashes.batch"), "users.migrate-hashes.completed"]);
    assert.equal((await deps.audit.verify()).ok, true);
  });

  it("a wrapped hash becomes plain argon2id at the user's next login() and keeps working (ASVS 6.2.x rehash)", async () => {
    const deps = await setup(await fx.fresh());
    const { job } = await openMigrationJob(deps, { actor: "test", batch: 50 });
    await runMigration(deps, job, { actor: "test" });
    const flood = new FloodControl({ database: deps.database, clock: deps.clock, keyOf: floodKeyOf });
    const loginDeps = { users: deps.users, passwords, flood, audit: deps.audit, logger: { warn: () => {}, error: () => {} }, tag: (text: string) => keyedFingerprint(new Uint8Array(32), text) };
    let wrappedSeen = 0;
    for (const [id, hash] of await hashes(deps)) {
      if (!hash?.startsWith("$bulwark-wrap$")) continue;
      wrappedSeen++;
      const user = (await deps.users.getById(id))!;
      const password = deps.known.get(id)!;
      // A wrong password is refused against the wrapped form, and nothing is rewritten.
      assert.deepEqual(await login(loginDeps, { identifier: user.email, password: `${password}x`, ip: "198.51.100.7" }), { outcome: "invalid" });
      assert.equal((await hashes(deps)).get(id), hash);
      const first = await login(loginDeps, { identifier: user.email, password, ip: "198.51.100.7" });
      assert.equal(first.outcome, "success", `${user.email} logs in through the wrapped hash`);
      assert.equal(first.outcome === "success" && first.rehashed, true, "the wrapped hash is replaced at this login");
      const stored = (await deps.users.getById(id))!;
      assert.match(stored.passwordHash!, /^\$argon2id\$v=19\$m=1024,t=1,p=1\$/, "plain argon2id, not wrapped");
      assert.equal(stored.passwordScheme, "argon2id");
      const second = await login(loginDeps, { identifier: user.email, password, ip: "198.51.100.7" });
      assert.equal(second.outcome === "success" && second.rehashed, false, "no further rehash once on the default scheme");
    }
    assert.equal(wrappedSeen, 13);
    const succeeded = (await deps.audit.tail(500)).filter((e) => e.type === "auth.login.succeeded" && e.data["rehashed"] === true);
    assert.ok(succeeded.every((e) => e.data["fromScheme"] === "bulwark-wrapped"), "the audit event names the scheme it rehashed from");
    assert.equal(succeeded.length, 13);
  });

  it("is idempotent: a second job finds nothing to wrap and changes nothing", async () => {
    const deps = await setup(await fx.fresh());
    const first = await openMigrationJob(deps, { actor: "test", batch: 50 });
    await runMigration(deps, first.job, { actor: "test" });
    const before = await hashes(deps);
    const second = await openMigrationJob(deps, { actor: "test", batch: 50 });
    assert.equal(second.resumed, false, "a finished job is not resumed");
    assert.equal(second.job.total, 0);
    const done = await runMigration(deps, second.job, { actor: "test" });
    assert.equal(done.counts["wrapped"] ?? 0, 0);
    assert.deepEqual(await hashes(deps), before);
  });

  it("leaves argon2 below the policy's minimum cost as it is (it cannot be lifted without the password) and counts it; the next login rehashes it (ASVS 11.4.2)", async () => {
    const deps = await setup(await fx.fresh());
    const tiny = { memoryCost: 8, timeCost: 1, parallelism: 1 };
    const tinyArgon = await hashArgon2id("cheap and old", tiny, systemRandom.bytes(16));
    const tinyWrap = await createPasswordContext({ random: systemRandom, argon2: tiny }).wrapLegacyHash(md5("cheap wrap"));
    const argonUser = await deps.users.create({ email: "tiny-argon@example.org", passwordHash: tinyArgon, passwordScheme: "argon2id" });
    await deps.users.create({ email: "tiny-wrap@example.org", passwordHash: tinyWrap, passwordScheme: "bulwark-wrapped" });
    const census = await wrappableCensus(deps);
    assert.deepEqual([census.total, census.belowMinimum], [13, 2], "counted, not wrapped");
    const { job } = await openMigrationJob(deps, { actor: "test", batch: 4 });
    const done = await runMigration(deps, job, { actor: "test" });
    assert.deepEqual([done.counts["wrapped"], done.counts["belowMinimum"]], [13, 2]);
    const after = await hashes(deps);
    assert.equal(after.get(argonUser.id), tinyArgon, "not rewritten by the job");
    assert.ok([...after.values()].includes(tinyWrap), "nor is the cheap wrap re-wrapped");
    const flood = new FloodControl({ database: deps.database, clock: deps.clock, keyOf: floodKeyOf });
    const loginDeps = { users: deps.users, passwords, flood, audit: deps.audit, logger: { warn: () => {}, error: () => {} }, tag: (text: string) => keyedFingerprint(new Uint8Array(32), text) };
    const result = await login(loginDeps, { identifier: "tiny-argon@example.org", password: "cheap and old", ip: "198.51.100.8" });
    assert.equal(result.outcome === "success" && result.rehashed, true, "the owner's login lifts it");
    assert.equal(passwords.belowMinimumCost((await deps.users.getById(argonUser.id))!.passwordHash!), false);
  });

  it("skips (never overwrites) a hash that changed between read and write", async () => {
    const db = await fx.fresh();
    let victim: string | null = null;
    let deps: Awaited<ReturnType<typeof setup>> | null = null;
    // A login rehashes md5-3's password while the job is wrapping its old hash.
    const racing: PasswordContext = {
      ...passwords,
      async wrapLegacyHash(hash) {
        const wrapped = await passwords.wrapLegacyHash(hash);
        if (hash === md5("secret 3") && deps) {
          const u = await deps.users.findByIdentifier("md5-3@example.org");
          victim = u!.id;
          assert.equal(await deps.users.swapPasswordHash(u!.id, hash, { hash: await passwords.hash("secret 3"), scheme: "argon2id", changed: false }), true);
        }
        return wrapped;
      },
    };
    deps = await setup(db, racing);
    const { job } = await openMigrationJob(deps, { actor: "test", batch: 5 });
    const done = await runMigration(deps, job, { actor: "test" });
    assert.deepEqual([done.counts["wrapped"], done.counts["skipped"]], [12, 1]);
    const stored = (await hashes(deps)).get(victim!)!;
    assert.match(stored, /^\$argon2id\$/, "the login's new hash is kept");
    assert.equal(await passwords.verify("secret 3", stored), true);
  });

  it("a closing sweep that keeps finding fast hashes behind the cursor leaves the job running, not done; a later run finishes it (ASVS 11.4.2)", async () => {
    const db = await fx.fresh();
    let deps: Awaited<ReturnType<typeof setup>> | null = null;
    let arriving = true;
    let next = 999;
    // An import running alongside: every wrap is followed by a new MD5 account whose id sorts before every other.
    const importing: PasswordContext = {
      ...passwords,
      async wrapLegacyHash(hash) {
        const wrapped = await passwords.wrapLegacyHash(hash);
        if (arriving && deps) {
          const n = next--;
          const u = await deps.users.create({ email: `late-${n}@example.org`, passwordHash: md5(`late ${n}`), passwordScheme: "md5" });
          await deps.database.db.updateTable("users").set({ id: `usr_0000000000000000000000${n}` }).where("id", "=", u.id).execute();
        }
        return wrapped;
      },
    };
    deps = await setup(db, importing);
    const { job } = await openMigrationJob(deps, { actor: "test", batch: 5 });
    const left = await runMigration(deps, job, { actor: "test" });
    assert.equal(left.status, "running", "not claimed done while fast hashes remain");
    assert.ok((left.counts["swept"] ?? 0) > 0, "the sweep wrapped what arrived behind the cursor");
    assert.ok((await wrappableCensus(deps)).total > 0);
    const types = (await deps.audit.tail(500)).map((e) => e.type);
    assert.ok(types.includes("users.migrate-hashes.swept") && !types.includes("users.migrate-hashes.completed"));
    arriving = false;
    const done = await runMigration(deps, await resumeMigrationJob(deps, { actor: "test" }), { actor: "test" });
    assert.equal(done.status, "done");
    assert.equal((await wrappableCensus(deps)).total, 0);
    assert.equal(done.counts["wrapped"], done.done, "every hash found was wrapped, none skipped");
  });

  it("resumes after a batch that failed half-way: the batch is rolled back, then applied exactly once", async () => {
    const db = await fx.fresh();
    const base = await setup(db);
    let swaps = 0;
    // The process "dies" in the middle of batch 2's transaction, after two of its swaps.
    const failing: MigrateDeps = {
      ...base,
      users: {
        ...base.users,
        async swapPasswordHash(id, expected, next, trx) {
          if (++swaps === 7) throw new Error("simulated crash");
          return base.users.swapPasswordHash(id, expected, next, trx);
        },
      },
    };
    const { job } = await openMigrationJob(base, { actor: "test", batch: 5 });
    await assert.rejects(runMigration(failing, job, { actor: "test" }), /simulated crash/);
    const half = await base.jobs.get(job.id);
    assert.equal(half.status, "running");
    // Batch 1 holds 5 users with a hash, one of which may be the argon2id one (ids are random).
    assert.ok(half.done === 4 || half.done === 5, `only batch 1 is committed (done=${half.done})`);
    const wrappedNow = [...(await hashes(base)).values()].filter((h) => h?.startsWith("$bulwark-wrap$")).length;
    assert.equal(wrappedNow, half.done, "batch 2's swaps before the crash were rolled back with it");

    const again = await openMigrationJob(base, { actor: "test", batch: 5 });
    assert.equal(again.resumed, true);
    assert.equal(again.job.id, job.id);
    const done = await runMigration(base, again.job, { actor: "test" });
    assert.deepEqual([done.status, done.done, done.counts["wrapped"], done.counts["skipped"]], ["done", 13, 13, 0]);
    for (const [id, hash] of await hashes(base)) {
      if (hash?.startsWith("$bulwark-wrap$")) {
        assert.equal(hash.split("$argon2id$").length, 2, "wrapped exactly once");
        assert.equal(await passwords.verify(base.known.get(id)!, hash), true);
      }
    }
    assert.deepEqual((await base.jobs.unfinished(JOB_KIND)).length, 0);
  });

  it("resume refuses with a clear error when there is nothing to resume, and resumes a named unfinished job", async () => {
    const deps = await setup(await fx.fresh());
    await assert.rejects(resumeMigrationJob(deps, { actor: "test" }), { code: "BULWARK_ERR_NOTHING_TO_RESUME" });
    const { job } = await openMigrationJob(deps, { actor: "test", batch: 4 });
    const resumed = await resumeMigrationJob(deps, { actor: "test", id: job.id });
    assert.equal(resumed.id, job.id);
    const done = await runMigration(deps, resumed, { actor: "test" });
    assert.equal(done.counts["wrapped"], 13);
    await assert.rejects(resumeMigrationJob(deps, { actor: "test", id: job.id }), { code: "BULWARK_ERR_JOB_FINISHED", message: /is done; nothing to resume/ });
    await assert.rejects(resumeMigrationJob(deps, { actor: "test", id: "job_nosuchjob" }), { code: "BULWARK_ERR_JOB_NOT_FOUND" });
    const other = await deps.jobs.create({ kind: "contain", spec: {}, total: 0, actor: "test" });
    await assert.rejects(resumeMigrationJob(deps, { actor: "test", id: other.id }), { code: "BULWARK_ERR_JOB_KIND", message: /not a migrate-hashes job/ });
  });

  it("maxBatches stops after that many committed batches with the job still running; a later run finishes it", async () => {
    const deps = await setup(await fx.fresh());
    const { job } = await openMigrationJob(deps, { actor: "test", batch: 4 });
    const none = await runMigration(deps, job, { actor: "test", maxBatches: 0 });
    assert.deepEqual([none.status, none.done], ["pending", 0]);
    const part = await runMigration(deps, job, { actor: "test", maxBatches: 2 });
    assert.equal(part.status, "running");
    const wrapped = [...(await hashes(deps)).values()].filter((h) => h?.startsWith("$bulwark-wrap$")).length;
    assert.equal(wrapped, part.done, "exactly the committed batches are applied");
    assert.ok(part.done >= 7 && part.done <= 8, `two batches of 4 users (one may be the argon2id user): done=${part.done}`);
    assert.ok(!(await deps.audit.tail(50)).some((e) => e.type === "users.migrate-hashes.completed"));
    const rest = await runMigration(deps, await resumeMigrationJob(deps, { actor: "test" }), { actor: "test" });
    assert.deepEqual([rest.status, rest.done, rest.counts["wrapped"]], ["done", 13, 13]);
    // Stopping exactly at the end still finishes the job.
    const deps2 = await setup(await fx.fresh());
    const whole = await openMigrationJob(deps2, { actor: "test", batch: 100 });
    assert.equal((await runMigration(deps2, whole.job, { actor: "test", maxBatches: 1 })).status, "done");
  });

  it("never applies a batch twice when two runners work on the same job", async () => {
    const deps = await setup(await fx.fresh());
    const { job } = await openMigrationJob(deps, { actor: "test", batch: 3 });
    const [a, b] = await Promise.all([runMigration(deps, job, { actor: "a" }), runMigration(deps, job, { actor: "b" })]);
    assert.equal(a.status, "done");
    const final = await deps.jobs.get(job.id);
    assert.deepEqual([final.done, final.counts["wrapped"]], [13, 13]);
    assert.equal(b.id, job.id);
    const batches = (await deps.audit.tail(200)).filter((e) => e.type === "users.migrate-hashes.batch");
    assert.equal(batches.length, 5, "15 users in batches of 3, each committed once");
    // Finding: each runner that reached the end wrote its own `.completed`.
    const completed = (await deps.audit.tail(200)).filter((e) => e.type === "users.migrate-hashes.completed");
    assert.equal(completed.length, 1, "the job completes once, whichever runner gets there");
    assert.deepEqual([a.status, b.status], ["done", "done"]);
    assert.ok(final.finishedAt !== null && final.finishedAt === completed[0]!.at, "finished when its completion was recorded");
  });

  it("two runs started at once share one job: one created event, one completion, every hash wrapped once", async () => {
    // Finding: two simultaneous `users migrate-hashes` each created a job, both hashed everything, both
    // reported done with done < total, and each wrote its own created and completed events.
    const deps = await setup(await fx.fresh());
    const [one, two] = await Promise.all([openMigrationJob(deps, { actor: "a", batch: 4 }), openMigrationJob(deps, { actor: "b", batch: 4 })]);
    assert.equal(one.job.id, two.job.id, "the second run resumes the job the first created");
    assert.deepEqual([one.resumed, two.resumed].sort(), [false, true]);
    const [a, b] = await Promise.all([runMigration(deps, one.job, { actor: "a" }), runMigration(deps, two.job, { actor: "b" })]);
    assert.deepEqual([a.status, b.status], ["done", "done"]);
    const jobs = await deps.database.db.selectFrom("jobs").select(["id", "status", "done", "total"]).where("kind", "=", JOB_KIND).execute();
    assert.deepEqual(jobs.map((j) => [j.status, Number(j.done), Number(j.total)]), [["done", 13, 13]]);
    const types = (await deps.audit.tail(200)).map((e) => e.type);
    assert.equal(types.filter((t) => t === "users.migrate-hashes.created").length, 1);
    assert.equal(types.filter((t) => t === "users.migrate-hashes.resumed").length, 1);
    assert.equal(types.filter((t) => t === "users.migrate-hashes.completed").length, 1);
    for (const [id, hash] of await hashes(deps)) {
      if (hash?.startsWith("$bulwark-wrap$")) {
        assert.equal(hash.split("$argon2id$").length, 2, "wrapped exactly once");
        assert.equal(await passwords.verify(deps.known.get(id)!, hash), true);
      }
    }
    assert.equal((await deps.audit.verify()).ok, true);
  });

  it("--new beside an unfinished job starts a second job on purpose; without it the unfinished one is resumed", async () => {
    const deps = await setup(await fx.fresh());
    const first = await openMigrationJob(deps, { actor: "test", batch: 4 });
    deps.clock.advance(1000);
    const forced = await openMigrationJob(deps, { actor: "test", batch: 4, forceNew: true });
    assert.notEqual(forced.job.id, first.job.id);
    assert.equal(forced.resumed, false);
    const again = await openMigrationJob(deps, { actor: "test", batch: 4 });
    assert.deepEqual([again.job.id, again.resumed], [forced.job.id, true], "the newest unfinished job");
  });
});
