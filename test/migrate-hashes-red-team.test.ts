// Red-team round on password-hash migration and the census (`bulwark users migrate-hashes`, `users census`, the
// login's verify-and-rehash of wrapped hashes). Attackers: whoever can race the job — a second `migrate-hashes` run on
// another node, a login, a containment lever — or feed crafted stored hashes through an import file; their aims: keep
// a weak hash alive or make the job double-process accounts, lift containment or lock an owner out through the job's
// rewrite, and make an incident response miss the accounts a legacy-hash leak exposes.
// Each test is an attack that must fail on correct code; "attack: … (was: …)" failed before its fix (the round's two
// findings, fixed the same day), the others pin defences that held.
// Not repeated here (covered elsewhere): compare-and-set against a login's rehash, kill -9 and resume, two runners in
// the walk with one batch size (migrate-hashes.conformance.test.ts, cli-users-migrate.test.ts), a fast hash arriving
// behind the cursor, hostile stored values in the census, weak argon2/bcrypt/scrypt counted weak
// (census-migrate-attacks.test.ts, census.test.ts), hostile KDF parameters (limits.security.test.ts).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { passwordCensus } from "../src/accounts/census/index.ts";
import { FloodControl } from "../src/accounts/flood/flood.ts";
import { login } from "../src/accounts/login/login.ts";
import { openMigrationJob, runMigration, wrappableCensus, type MigrateDeps } from "../src/accounts/migrate-hashes/index.ts";
import { createPasswordContext, type PasswordContext } from "../src/accounts/passwords/index.ts";
import { scopedUserIds } from "../src/contain/index.ts";
import { keyedDigest, keyedFingerprint } from "../src/crypto/tokens.ts";
import { JobStore, type Job } from "../src/jobs/job-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { forEachDialect, type DialectFixture } from "./helpers/dialects.ts";
import { migrateDepsOn } from "./helpers/migrate-deps.ts";

/** Flood-control rows' keys under a fixed test key (the app keys them with Keyring.floodKey). */
const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x5f), text);

// Cheap argon2id: these tests are about decisions and races, not argon2's cost.
const cheap = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
const md5 = (text: string): string => createHash("md5").update(text, "utf8").digest("hex");
const NOW = Date.UTC(2026, 10, 20);

type Deps = MigrateDeps & { clock: ManualClock };

function fixture(database: Database, passwords: PasswordContext = cheap): Promise<Deps> {
  return migrateDepsOn(database, new ManualClock(NOW), passwords);
}

/** Runs `work` on a migrated SQLite database of its own (a temp dir, removed after), with the job's dependencies. */
async function onOwnSQLite(work: (deps: Deps, database: Database) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-redteam-mh-"));
  const database = openSQLite(join(dir, "db.sqlite"), { create: true });
  try {
    await work(await fixture(database), database);
  } finally {
    await database.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The job store as one node sees it: every method of `jobs`, some replaced (a second node's view of one database). */
function nodeView(jobs: JobStore, overrides: Partial<Record<keyof JobStore, unknown>>): JobStore {
  return new Proxy(jobs, {
    get(target, key) {
      if (typeof key === "string" && key in overrides) return overrides[key as keyof JobStore];
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function migrationEvents(deps: Pick<MigrateDeps, "database">, type: string): Promise<Array<Record<string, unknown>>> {
  const rows = await deps.database.db.selectFrom("audit_events").select(["data"]).where("type", "=", type).orderBy("seq").execute();
  return rows.map((r) => JSON.parse(String(r.data)) as Record<string, unknown>);
}

function jobSuite(fx: DialectFixture): void {
  // docs/password-migration.md: "a batch is never applied twice, and two runners on one job never both commit the same
  // batch (the cursor is compare-and-set)". The walk keeps that promise; the closing sweep does not: it commits every
  // sweep batch with the cursor left at the end (from = end, cursor = end), so the compare-and-set always passes and a
  // second runner on the job (`migrate-hashes` started on two nodes, or `resume` while a run is still sweeping) commits
  // the very batch the first one committed. Here three MD5 hashes are behind the cursor when two runners reach the
  // sweep; the second runner's commit lands while the first is still reading its next pass (a large table). Each hash
  // is wrapped once (the per-user compare-and-set holds), but the job records 6 processed for 3 accounts, two `.swept`
  // events for one range, and 3 accounts "skipped (changed since read)" that nobody changed: the audit trail and the
  // counts the operator reads are wrong, and twice the argon2 work is spent.
  it("attack: two runners' closing sweeps never both commit one sweep batch — one audit event per range, done counts each account once, no account reported changed that nobody changed (exactly-once batches, ASVS 2.3.3, 16.2.1) (was: both committed it; the sweep's cursor compare-and-set compared the end with itself)", async () => {
    const base = await fixture(await fx.fresh());
    const N = 3;
    for (let i = 0; i < N; i++) await base.users.create({ email: `behind${i}@example.org`, passwordHash: md5(`behind ${i}`), passwordScheme: "md5" });
    const { job } = await openMigrationJob(base, { actor: "redteam", batch: 10 });
    // The walk has reached the end ("~" sorts after every id) and these hashes arrived behind it (an import).
    await base.database.db.updateTable("jobs").set({ cursor: "usr_~", status: "running" }).where("id", "=", job.id).execute();
    // Both runners read the sweep page before either commits: every wrap waits until both have asked for theirs.
    let calls = 0;
    let bothRead!: () => void;
    const gate = new Promise<void>((resolve) => (bothRead = resolve));
    const barrier: PasswordContext = {
      ...cheap,
      async wrapLegacyHash(hash) {
        if (++calls === 2 * N) bothRead();
        if (calls <= 2 * N) await Promise.race([gate, new Promise((resolve) => setTimeout(resolve, 2000))]);
        return cheap.wrapLegacyHash(hash);
      },
    };
    // Each node's next pass reads a large table: modelled by a node looking at the job again only once the other node's
    // sweep commit has landed (whichever commits first).
    const node = (): { committed: boolean; landed: () => void; done: Promise<void> } => {
      let landed!: () => void;
      const done = new Promise<void>((resolve) => (landed = resolve));
      return { committed: false, landed, done };
    };
    const [a, b] = [node(), node()];
    const view = (self: ReturnType<typeof node>, other: ReturnType<typeof node>): JobStore => nodeView(base.jobs, {
      commitBatch: async (...args: Parameters<JobStore["commitBatch"]>) => {
        const r = await base.jobs.commitBatch(...args);
        self.committed = true;
        self.landed();
        return r;
      },
      get: async (...args: Parameters<JobStore["get"]>) => {
        if (self.committed) await Promise.race([other.done, new Promise((resolve) => setTimeout(resolve, 2000))]);
        return base.jobs.get(...args);
      },
    });
    const [jobsA, jobsB] = [view(a, b), view(b, a)];
    const current = (await base.jobs.get(job.id)) as Job<{ batch: number }>;
    await Promise.all([
      runMigration({ ...base, passwords: barrier, jobs: jobsA }, current, { actor: "node-a" }),
      runMigration({ ...base, passwords: barrier, jobs: jobsB }, current, { actor: "node-b" }),
    ]);
    const final = await base.jobs.get(job.id);
    assert.equal(final.status, "done");
    assert.deepEqual((await wrappableCensus(base)).bySchemes, {}, "every hash is wrapped (the per-user compare-and-set holds)");
    const swept = await migrationEvents(base, "users.migrate-hashes.swept");
    assert.equal(swept.length, 1, `one sweep batch over ${N} accounts, committed once; got ${swept.length}: ${JSON.stringify(swept)}`);
    assert.deepEqual([final.done, final.counts["wrapped"], final.counts["skipped"] ?? 0], [N, N, 0], `counts ${JSON.stringify(final.counts)}, done ${final.done}, for ${N} accounts nobody else touched`);
  });

  // The walk's compare-and-set under a harsher race than the conformance suite's: two runners on one job with
  // different batch sizes (`resume --batch 5` on one node while the other runs with 3), so their batches straddle
  // each other. Every committed `.batch` must start where the previous one ended: no account processed twice, none
  // skipped over, done equal to the accounts there were.
  it("attack: two runners on one job with different batch sizes never commit overlapping or gapped ranges: each account wrapped once, done equals total", async () => {
    const deps = await fixture(await fx.fresh());
    for (let i = 0; i < 17; i++) await deps.users.create({ email: `walk${i}@example.org`, passwordHash: md5(`walk ${i}`), passwordScheme: "md5" });
    const { job } = await openMigrationJob(deps, { actor: "redteam", batch: 3 });
    await Promise.all([runMigration(deps, job, { actor: "node-a", batch: 3 }), runMigration(deps, job, { actor: "node-b", batch: 5, concurrency: 2 })]);
    const final = await deps.jobs.get(job.id);
    assert.equal(final.status, "done");
    assert.deepEqual([final.done, final.counts["wrapped"], final.counts["skipped"] ?? 0], [17, 17, 0]);
    const batches = await migrationEvents(deps, "users.migrate-hashes.batch");
    let from: unknown = null;
    for (const b of batches) {
      assert.equal(b["from"], from, "each committed batch starts where the last one ended");
      from = b["to"];
    }
    const ids = (await deps.database.db.selectFrom("users").select("id").orderBy("id").execute()).map((r) => r.id);
    assert.equal(from, ids[ids.length - 1], "the walk ends at the last account");
    assert.equal(batches.reduce((n, b) => n + Number(b["wrapped"]), 0), 17);
    assert.equal(await migrationEvents(deps, "users.migrate-hashes.swept").then((s) => s.length), 0);
  });
}

forEachDialect("migrate-hashes red team: racing runners", jobSuite);

forEachDialect("migrate-hashes red team: what the job's rewrite may change", (fx) => {
  // The job rewrites the hash with `changed: false`. Were it treated as a password change, running it would lift every
  // containment at once: an invalidated password signing in again, a must-change flag dropped, an administrator's
  // initial password no longer expiring, and password_changed_at moved (sessions and remembered devices are bound to
  // it). The rewrite must change the hash and its scheme only, and each contained account must stay as contained
  // through login() (the wrapped hash still verifies, so only the containment state refuses it).
  it("attack: wrapping a contained account's hash lifts no containment — invalidated, locked, must-change and an expired initial password all still hold at login(), and password_changed_at does not move", async () => {
    const deps = await fixture(await fx.fresh());
    const mk = async (name: string): Promise<string> =>
      (await deps.users.create({ email: `${name}@example.org`, passwordHash: md5(`${name} pw`), passwordScheme: "md5", passwordInitialExpiresAt: name === "initial" ? NOW + 1000 : null })).id;
    const ids = { invalidated: await mk("invalidated"), locked: await mk("locked"), mustChange: await mk("mustchange"), initial: await mk("initial"), free: await mk("free") };
    await deps.database.db.updateTable("users").set({ password_invalidated_at: NOW - 5 }).where("id", "=", ids.invalidated).execute();
    await deps.database.db.updateTable("users").set({ locked_at: NOW - 5, locked_reason: "incident" }).where("id", "=", ids.locked).execute();
    await deps.database.db.updateTable("users").set({ password_must_change: 1 }).where("id", "=", ids.mustChange).execute();
    const columns = ["password_changed_at", "password_must_change", "password_invalidated_at", "password_initial_expires_at", "locked_at", "status"] as const;
    const snapshot = async (): Promise<unknown[]> => (await deps.database.db.selectFrom("users").select(["id", ...columns]).orderBy("id").execute()).map((r) => columns.map((c) => (r[c] === null ? null : String(r[c]))));
    const before = await snapshot();
    deps.clock.advance(60_000);
    const { job } = await openMigrationJob(deps, { actor: "redteam", batch: 2 });
    assert.equal((await runMigration(deps, job, { actor: "redteam" })).counts["wrapped"], 5);
    assert.deepEqual(await snapshot(), before, "only the hash and its scheme change");
    // The initial password has expired by now (its expiry was kept).
    deps.clock.advance(60_000);
    const flood = new FloodControl({ database: deps.database, clock: deps.clock, keyOf: floodKeyOf });
    const loginDeps = { users: deps.users, passwords: cheap, flood, audit: deps.audit, logger: { warn: () => {}, error: () => {} }, tag: (t: string) => keyedFingerprint(new Uint8Array(32), t) };
    const attempt = (name: string) => login(loginDeps, { identifier: `${name}@example.org`, password: `${name} pw`, ip: "198.51.100.9" });
    for (const name of ["invalidated", "locked", "initial"]) assert.deepEqual(await attempt(name), { outcome: "invalid" }, `${name}: still refused after the wrap`);
    assert.equal((await attempt("mustchange")).outcome, "must-change-password");
    assert.equal((await attempt("free")).outcome, "success", "the wrapped hash itself verifies");
    const stored = await deps.database.db.selectFrom("users").select(["id", "password_hash", "password_must_change"]).execute();
    for (const name of ["invalidated", "locked", "initial"] as const) {
      assert.match(stored.find((r) => r.id === ids[name])!.password_hash!, /^\$bulwark-wrap\$/, `${name}: a refused login rehashes nothing`);
    }
    assert.equal(Number(stored.find((r) => r.id === ids.mustChange)!.password_must_change), 1, "the must-change flag survives the login's rehash");
  });
});

describe("migrate-hashes red team: crafted hashes and incident scope [sqlite]", () => {
  // docs/password-hashes.md: wrapping "does not hide a legacy result that leaked elsewhere before migration". The
  // SourceLair/Sentry case: a backup taken before migrate-hashes (or the old system's own dump) with every unsalted MD5
  // leaks, and the operator scopes the response to the accounts on MD5 — `bulwark contain invalidate-passwords --scheme
  // md5` (docs/containment.md: "--scheme ID: stored password hash scheme (md5, phpass, …)"). Those owners still have the
  // very passwords the MD5s crack to; the job only wrapped them. But it rewrote password_scheme to "bulwark-wrapped", so
  // the scope selects nobody, and its dry run reports 0 users: the response silently misses every exposed account.
  // `--scheme bulwark-wrapped` is no remedy: it also takes every wrapped Drupal, phpass or sha-crypt account.
  it("attack: after migrate-hashes, a containment scope `--scheme md5` still selects the accounts whose passwords an MD5 leak exposes, by the inner scheme their wrapped hash records (was: none — the job rewrote password_scheme and the scope missed them all)", async () => {
    await onOwnSQLite(async (deps, database) => {
      const exposed = [];
      for (let i = 0; i < 4; i++) exposed.push((await deps.users.create({ email: `md5-${i}@example.org`, passwordHash: md5(`leaked ${i}`), passwordScheme: "md5" })).id);
      await deps.users.create({ email: "drupal@example.org", passwordHash: "$S$5NmmasABBCxG9XpSemMLfPLsbsGtorG5xj7BerZNxxn8CqtDSlkB", passwordScheme: "drupal7" });
      const scope = async (): Promise<string[]> => (await scopedUserIds(database.db, database.dialect, { scheme: "md5" }).execute()).map((r) => r.id).sort();
      assert.deepEqual(await scope(), [...exposed].sort(), "before the job the scope finds them");
      const { job } = await openMigrationJob(deps, { actor: "redteam", batch: 10 });
      assert.equal((await runMigration(deps, job, { actor: "redteam" })).counts["wrapped"], 5);
      for (const id of exposed) assert.equal(await cheap.verify(`leaked ${exposed.indexOf(id)}`, (await deps.users.getById(id))!.passwordHash!), true, "the leaked password still signs in");
      assert.deepEqual(await scope(), [...exposed].sort(), "the accounts an MD5 leak exposes, still on those passwords, are still in an md5-scoped response");
    });
  });

  // An import file (or a row changed in the database) carrying a hand-made `$bulwark-wrap$` value: an inner layer that is
  // itself wrapped or a slow scheme, settings of another family, another argon2 variant or version as the outer layer,
  // a second argon2id tail smuggled in the settings, a scheme id that names an Object prototype member. Each is refused
  // by identify (so the import calls the row bad and stores nothing), counted "unsupported" by the census (never a
  // strong hash), left alone by the job, and signs nobody in.
  it("attack: hand-made wrapped hashes (recursive or slow inner layer, foreign settings, argon2i or v=16 outer, two argon2id tails, a prototype-named inner scheme) are refused by identify, counted unsupported by the census, left by the job and sign nobody in", async () => {
    await onOwnSQLite(async (deps, database) => {
      const wrapped = await cheap.wrapLegacyHash(md5("pw"));
      const tail = wrapped.slice(wrapped.indexOf("$argon2id$"));
      const phpass = await cheap.wrapLegacyHash("$P$6npetjI95qN1kIVZ9V0Ce6NS5dN6cT0");
      const crafted: Record<string, string> = {
        recursive: `$bulwark-wrap$v=1$bulwark-wrapped$${wrapped}`,
        "argon2id inner": `$bulwark-wrap$v=1$argon2id$${tail}`,
        "bcrypt inner": `$bulwark-wrap$v=1$bcrypt$$2b$10$${tail}`,
        "settings on a bare digest": `$bulwark-wrap$v=1$md5$x${tail}`,
        "Drupal settings under phpass": phpass.replace("$P$", "$S$"),
        "phpass settings under drupal7": phpass.replace("$v=1$phpass$", "$v=1$drupal7$"),
        "argon2i outer": wrapped.replace("$argon2id$", "$argon2i$"),
        "v=16 outer": wrapped.replace("v=19$m", "v=16$m"),
        "two tails": `$bulwark-wrap$v=1$md5$${tail.replace("m=64,t=1", "m=8,t=1")}${tail}`,
        "prototype name": `$bulwark-wrap$v=1$constructor$${tail}`,
      };
      const emailOf = (what: string): string => `${what.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")}@example.org`;
      for (const [what, hash] of Object.entries(crafted)) {
        assert.throws(() => cheap.identify(hash), { code: "BULWARK_ERR_HASH_UNSUPPORTED" }, what);
        await deps.users.create({ email: emailOf(what), passwordHash: hash, passwordScheme: "bulwark-wrapped" });
      }
      const census = await passwordCensus({ database, passwords: cheap });
      assert.equal(census.unsupported, Object.keys(crafted).length, "each is unsupported, none read as a strong hash");
      assert.deepEqual(census.schemes.map((s) => s.scheme), ["unsupported"]);
      const { job } = await openMigrationJob(deps, { actor: "redteam", batch: 4 });
      const done = await runMigration(deps, job, { actor: "redteam" });
      assert.deepEqual([done.status, done.done], ["done", 0]);
      const stored = new Set((await database.db.selectFrom("users").select("password_hash").execute()).map((r) => r.password_hash));
      assert.deepEqual(stored, new Set(Object.values(crafted)), "the job rewrote none of them");
      const flood = new FloodControl({ database, clock: deps.clock, keyOf: floodKeyOf });
      const loginDeps = { users: deps.users, passwords: cheap, flood, audit: deps.audit, logger: { warn: () => {}, error: () => {} }, tag: (t: string) => keyedFingerprint(new Uint8Array(32), t) };
      for (const what of Object.keys(crafted)) {
        assert.deepEqual(await login(loginDeps, { identifier: emailOf(what), password: "pw", ip: "198.51.100.10" }), { outcome: "invalid" }, what);
      }
    });
  });
});
