// Bulk import on SQLite and PostgreSQL: good rows, every kind of bad row (with line numbers), the
// Drupal 7 preset on realistic rows, salted legacy layouts, conflicts, per-batch atomicity, and
// updates that never downgrade a password hash nor undo containment.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { sql } from "kysely";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { holdOpen, until } from "../../../test/helpers/held-transaction.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { JobStore } from "../../jobs/job-store.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { createPasswordContext, parseSaltedTemplate } from "../passwords/index.ts";
import { createUserStore } from "../users/user-store.ts";
import { ImportOptionError, ImportRefusedError } from "./errors.ts";
import { importUsers, type ImportDeps, type ImportOptions, type ImportReport } from "./importer.ts";
import { checkHeader, parseFieldMap, resolveMap, type Preset } from "./mapping.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const FIXTURE = new URL("./fixtures/drupal7-users.csv", import.meta.url);
const BCRYPT_COST_31 = "$2b$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
const DRUPAL_2_37 = "$S$Zabcdefgh" + "x".repeat(43);

async function setup(db: Database): Promise<ImportDeps & { clock: ManualClock }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  return {
    database: db, clock, passwords, users: createUserStore({ database: db, clock, random: systemRandom }), audit: new AuditLog({ database: db, clock, random: systemRandom }),
    jobs: new JobStore({ database: db, clock, random: systemRandom }),
    notices: null,
  };
}

type Extra = Partial<Omit<ImportOptions, "rules" | "open">> & { map?: string; preset?: Preset; salted?: string; saltColumn?: string; source?: string; ignore?: string[] };

function run(deps: ImportDeps, text: string, extra: Extra = {}): Promise<ImportReport> {
  const { map: mapText, preset, salted, saltColumn, source, ignore, ...rest } = extra;
  const explicit = parseFieldMap(mapText);
  const map = resolveMap({ preset: preset ?? null, map: explicit, saltColumn });
  const format = rest.format ?? "csv";
  return importUsers(deps, {
    format, onConflict: "fail", batchSize: 500, dryRun: false, skipBad: false, actor: "test", file: "test.csv",
    ...(format === "csv" ? { onHeader: (h: string[]) => checkHeader(h, map, explicit, { preset: preset ?? null, ignore: ignore ?? [] }) } : {}),
    ...rest,
    rules: { map, preset: preset ?? null, source: source ?? preset ?? "test.csv", salted: salted ? parseSaltedTemplate(salted) : null, ...(ignore ? { ignored: ignore } : {}) },
    open: async function* () {
      yield text;
    },
  });
}

async function auditTypes(deps: ImportDeps): Promise<string[]> {
  return (await deps.audit.tail(1000)).map((e) => e.type);
}

const md5 = (s: string): string => createHash("md5").update(s).digest("hex");

forEachDialect("users import", (fx) => {
  it("imports good rows with random ids, legacy ids as external ids, one audit event per batch and a summary", async () => {
    const deps = await setup(await fx.fresh());
    const csv = ["id,mail,login,hash,state,joined", ...[1, 2, 3, 4, 5].map((i) => `${i},u${i}@example.org,user${i},${md5(`pw${i}`)},${i === 5 ? "disabled" : "active"},2020-01-0${i}T00:00:00Z`)].join("\r\n");
    const report = await run(deps, csv, { map: "external_id=id,email=mail,username=login,password_hash=hash,status=state,created_at=joined", batchSize: 2, source: "legacy-app" });
    assert.deepEqual([report.rows, report.created, report.updated, report.skipped, report.failed, report.batches], [5, 5, 0, 0, 0, 3]);
    const u5 = await deps.users.findByIdentifier("user5");
    assert.ok(u5);
    assert.match(u5.id, /^usr_[a-z2-7]{26}$/, "Bulwark ids are random, not the legacy ones");
    assert.deepEqual([u5.externalSource, u5.externalId, u5.status, u5.passwordScheme, u5.createdAt], ["legacy-app", "5", "disabled", "md5", Date.UTC(2020, 0, 5)]);
    assert.equal(await passwords.verify("pw5", u5.passwordHash!), true);
    const types = await auditTypes(deps);
    assert.deepEqual(types, ["users.import.batch", "users.import.batch", "users.import.batch", "users.import.completed"]);
    assert.ok(!JSON.stringify(await deps.audit.tail(10)).includes(md5("pw1")), "no hash in the audit log");
  });

  it("reports every kind of bad row with its line number in a dry run, writes nothing but an audit event, and a real run refuses", async () => {
    const deps = await setup(await fx.fresh());
    const lines = [
      "email,username,password_hash,status,created_at,last_login_at", // 1
      `good@example.org,good,${md5("x")},1,1600000000,0`, // 2
      ",nomail,,,,", // 3 missing email
      "not-an-address,bad1,,,,", // 4
      "at@example.org,has@at,,,,", // 5 username with @
      `cost@example.org,cost,${BCRYPT_COST_31},,,`, // 6
      `count@example.org,count,${DRUPAL_2_37},,,`, // 7
      "junk@example.org,junk,not-a-hash,,,", // 8
      "status@example.org,status,,maybe,,", // 9
      "date@example.org,date,,,yesterday,", // 10
      "GOOD@example.org,other,,,,", // 11 duplicate email (case-insensitive)
      "short@example.org,short", // 12 wrong column count
      'quoted@example.org,"q, the user",,,,', // 13 fine: a quoted comma
    ];
    const report = await run(deps, lines.join("\n"), { dryRun: true });
    assert.deepEqual(report.bad.map((b) => b.line), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const reason = (line: number): string => report.bad.find((b) => b.line === line)!.reason;
    assert.match(reason(3), /email is empty/);
    assert.match(reason(4), /not an address/);
    assert.match(reason(5), /must not contain @/);
    assert.match(reason(6), /bcrypt cost 31 is above the limit/);
    assert.match(reason(7), /unsupported password hash/);
    assert.match(reason(8), /unsupported password hash/);
    assert.match(reason(9), /status "maybe"/);
    assert.match(reason(10), /created_at "yesterday"/);
    assert.match(reason(11), /duplicate of line 2/);
    assert.match(reason(12), /has 2 fields, the header has 6/);
    assert.deepEqual([report.created, report.failed], [2, 10]);
    assert.equal(await deps.users.count(), 0, "a dry run writes no account");
    assert.deepEqual(await auditTypes(deps), ["users.import.dry-run"]);

    await assert.rejects(run(deps, lines.join("\n")), (e: unknown) => e instanceof ImportRefusedError && /10 bad row\(s\), nothing imported/.test(e.message));
    assert.equal(await deps.users.count(), 0);
    const partial = await run(deps, lines.join("\n"), { skipBad: true });
    assert.deepEqual([partial.created, partial.failed], [2, 10]);
    assert.equal((await deps.users.findByIdentifier("quoted@example.org"))?.username, "q, the user");
  });

  it("imports a Drupal 7 users export: anonymous uid 0 skipped, blocked users disabled, every hash verifies", async () => {
    const deps = await setup(await fx.fresh());
    const report = await run(deps, readFileSync(FIXTURE, "utf8"), { preset: "drupal7" });
    assert.deepEqual([report.rows, report.created, report.skipped, report.failed], [9, 8, 1, 0]);
    assert.deepEqual(report.skippedRows, [{ line: 2, reason: "uid 0 is Drupal's anonymous user" }]);
    const expect: Array<[string, string, string]> = [
      ["admin@example.org", "drupal7", "password"],
      ["jane@example.org", "drupal7", "correct horse battery staple"],
      ["old@example.org", "drupal7-wrapped-md5", "correct horse battery staple"],
      ["d6@example.org", "drupal7-wrapped-md5", "password"],
      ["phpbb@example.org", "phpass", "password"],
      ["blocked@example.org", "phpass", "correct horse battery staple"],
      ["legacy@example.org", "md5", "password"],
      ["petros@example.org", "drupal7", "pässwörd ✓ 密码"],
    ];
    for (const [email, scheme, password] of expect) {
      const u = await deps.users.findByIdentifier(email);
      assert.ok(u, email);
      assert.equal(u.passwordScheme, scheme, email);
      assert.equal(await passwords.verify(password, u.passwordHash!), true, email);
      assert.equal(await passwords.verify(`${password}x`, u.passwordHash!), false, email);
      assert.equal(u.externalSource, "drupal7");
    }
    const admin = await deps.users.findByIdentifier("admin");
    assert.deepEqual([admin?.externalId, admin?.createdAt, admin?.lastLoginAt, admin?.status], ["1", 1262304000_000, 1385856000_000, "active"]);
    assert.equal((await deps.users.findByIdentifier("blocked"))?.status, "disabled");
    assert.equal((await deps.users.findByIdentifier("d6-user"))?.lastLoginAt, null, "login 0 means never");
    assert.equal((await deps.users.findByIdentifier("Πέτρος"))?.email, "petros@example.org");
  });

  it("stores a declared salted layout in the self-describing form, and refuses a row without its salt", async () => {
    const deps = await setup(await fx.fresh());
    const salt = "0123456789abcdef0123456789abcdef"; // SourceLair: a 32-character salt
    const digest = createHash("sha256").update(salt + "hunter2 but longer").digest("hex");
    const csv = `email,pw,salt\nsl@example.org,${digest},${salt}\nnosalt@example.org,${digest},\n`;
    const dry = await run(deps, csv, { map: "password_hash=pw", salted: "sha256(salt+password):hex", saltColumn: "salt", dryRun: true });
    assert.deepEqual(dry.bad, [{ line: 3, reason: 'no salt in column "salt" for the salted layout' }]);
    await run(deps, csv, { map: "password_hash=pw", salted: "sha256(salt+password):hex", saltColumn: "salt", skipBad: true });
    const u = await deps.users.findByIdentifier("sl@example.org");
    assert.match(u?.passwordHash ?? "", /^\$salted-digest\$a=sha256,l=salt\+password,e=hex\$/);
    assert.equal(u?.passwordScheme, "salted-digest");
    assert.equal(await passwords.verify("hunter2 but longer", u!.passwordHash!), true);
  });

  it("handles existing emails as told: fail refuses, skip leaves them, update changes only supplied fields", async () => {
    const deps = await setup(await fx.fresh());
    const existing = await deps.users.create({ email: "Ana@example.org", username: "ana", displayName: "Ana", passwordHash: md5("old"), passwordScheme: "md5" });
    const csv = `email,display_name,password_hash\nana@example.org,Ana B.,${md5("new")}\nnew@example.org,New,\n`;
    const dry = await run(deps, csv, { dryRun: true });
    assert.deepEqual(dry.bad, [{ line: 2, reason: "an account with this email already exists (--on-conflict fail)" }]);
    await assert.rejects(run(deps, csv), ImportRefusedError);

    const skipped = await run(deps, csv, { onConflict: "skip" });
    assert.deepEqual([skipped.created, skipped.skipped, skipped.updated], [1, 1, 0]);
    assert.equal((await deps.users.getById(existing.id))?.displayName, "Ana");

    const csv2 = `email,display_name,password_hash\nana@example.org,Ana B.,${md5("new")}\nnew@example.org,,\n`;
    const updated = await run(deps, csv2, { onConflict: "update" });
    assert.deepEqual([updated.created, updated.updated, updated.passwordsKept], [0, 2, 1]);
    const ana = await deps.users.getById(existing.id);
    assert.deepEqual([ana?.displayName, ana?.username, ana?.id], ["Ana B.", "ana", existing.id]);
    assert.equal(await passwords.verify("old", ana!.passwordHash!), true, "an update keeps the stored password unless told to replace it");
    const replaced = await run(deps, csv2, { onConflict: "update", replacePasswords: true });
    assert.deepEqual(replaced.passwordsReplaced, [{ line: 2, from: "md5", to: "md5" }]);
    assert.equal(await passwords.verify("new", (await deps.users.getById(existing.id))!.passwordHash!), true);
    assert.equal((await deps.users.findByIdentifier("new@example.org"))?.displayName, "New", "an empty value does not clear a field");
  });

  it("an update keeps the later last login: the file's when it is newer or none is stored, the stored one when the file's is older (ASVS 2.2.3)", async () => {
    const deps = await setup(await fx.fresh());
    const now = deps.clock.now();
    const recent = await deps.users.create({ email: "recent@example.org" });
    const stale = await deps.users.create({ email: "stale@example.org" });
    const never = await deps.users.create({ email: "never@example.org" });
    // recent@ signed in to Bulwark yesterday, stale@ in 2015; never@ has not signed in.
    await deps.database.db.updateTable("users").set({ last_login_at: now - 86_400_000 }).where("id", "=", recent.id).execute();
    await deps.database.db.updateTable("users").set({ last_login_at: Date.UTC(2015, 0, 1) }).where("id", "=", stale.id).execute();
    const fileLogin = Date.UTC(2020, 0, 1);
    const csv = `email,display_name,last_login_at\n${["recent", "stale", "never"].map((n) => `${n}@example.org,${n},${fileLogin / 1000}`).join("\n")}\n`;
    const dry = await run(deps, csv, { onConflict: "update", dryRun: true });
    const report = await run(deps, csv, { onConflict: "update" });
    assert.deepEqual([dry.updated, report.updated], [3, 3], "every row is an update, in the dry run as in the run");
    assert.equal((await deps.users.getById(recent.id))?.lastLoginAt, now - 86_400_000, "a sign-in recorded by Bulwark is not rewound to the export's");
    assert.equal((await deps.users.getById(stale.id))?.lastLoginAt, fileLogin, "a newer login in the file moves it forward");
    assert.equal((await deps.users.getById(never.id))?.lastLoginAt, fileLogin);
    assert.equal((await deps.users.getById(recent.id))?.displayName, "recent", "the rest of the row is still applied");
  });

  it("attack: a re-import with --on-conflict update neither restores a wrapped MD5 nor undoes containment", async () => {
    // Finding: after migrate-hashes wrapped an MD5 and containment invalidated it, re-importing the same
    // row (only display_name changed) put back the raw MD5 and cleared password_invalidated_at.
    const deps = await setup(await fx.fresh());
    const legacy = md5("leaked password");
    const user = await deps.users.create({ email: "ana@example.org", displayName: "Ana", passwordHash: legacy, passwordScheme: "md5" });
    const wrapped = await passwords.wrapLegacyHash(legacy);
    const incident = Date.UTC(2026, 10, 2);
    // What migrate-hashes and the invalidate-passwords, lock-accounts and expire-passwords levers leave behind.
    await deps.database.db.updateTable("users").set({ password_hash: wrapped, password_scheme: "bulwark-wrapped", password_invalidated_at: incident, locked_at: incident, locked_reason: "containment", password_must_change: 1 }).where("id", "=", user.id).execute();
    const before = await deps.database.db.selectFrom("users").selectAll().where("id", "=", user.id).executeTakeFirstOrThrow();
    const csv = `email,display_name,password_hash\nana@example.org,Ana B.,${legacy}\n`;

    const dry = await run(deps, csv, { onConflict: "update", dryRun: true });
    assert.deepEqual([dry.updated, dry.passwordsReplaced, dry.passwordsKept, dry.bad], [1, [], 1, []]);
    const report = await run(deps, csv, { onConflict: "update" });
    assert.deepEqual([report.updated, report.passwordsReplaced, report.passwordsKept], [1, [], 1]);
    const after = await deps.database.db.selectFrom("users").selectAll().where("id", "=", user.id).executeTakeFirstOrThrow();
    assert.equal(after.display_name, "Ana B.", "other fields update as before");
    const containment = ["password_hash", "password_scheme", "password_changed_at", "password_invalidated_at", "locked_at", "locked_reason", "password_must_change"] as const;
    for (const column of containment) assert.equal(after[column], before[column], column);

    // Even told to replace passwords, a weaker hash is a bad row: the dry run says so, the real run refuses.
    const told = await run(deps, csv, { onConflict: "update", replacePasswords: true, dryRun: true });
    assert.deepEqual(told.bad.map((b) => b.line), [2]);
    assert.match(told.bad[0]!.reason, /the file's password hash \(md5, a fast digest\) is weaker than the stored one \(bulwark-wrapped, a slow hash below the current policy\); --replace-passwords never downgrades/);
    await assert.rejects(run(deps, csv, { onConflict: "update", replacePasswords: true }), ImportRefusedError);
    const still = await deps.database.db.selectFrom("users").selectAll().where("id", "=", user.id).executeTakeFirstOrThrow();
    for (const column of containment) assert.equal(still[column], before[column], column);
  });

  it("--replace-passwords replaces a differing hash that is not weaker, reports it in the dry run, and keeps containment", async () => {
    const deps = await setup(await fx.fresh());
    const incident = Date.UTC(2026, 10, 2);
    const a = await deps.users.create({ email: "a@example.org", passwordHash: md5("old a"), passwordScheme: "md5" });
    const b = await deps.users.create({ email: "b@example.org", passwordHash: null, passwordScheme: null });
    await deps.database.db.updateTable("users").set({ password_invalidated_at: incident, locked_at: incident, locked_reason: "containment" }).where("id", "=", a.id).execute();
    // A slow hash at or above its minimum cost (bcrypt 10): one below it (bcrypt 4) replaces no fast digest (census-salt round).
    const bcryptOfNew = "$2b$10$tUw5vpaiKUFukz/.wfh5gOZU7SyOTYCBQ54sC3pr5Kkh3z/ZhLfbG"; // glibc libxcrypt's crypt() for "correct horse battery staple"
    const csv = `email,password_hash\na@example.org,${bcryptOfNew}\nb@example.org,${md5("first b")}\n`;
    const dry = await run(deps, csv, { onConflict: "update", replacePasswords: true, dryRun: true });
    assert.deepEqual(dry.passwordsReplaced, [{ line: 2, from: "md5", to: "bcrypt" }, { line: 3, from: null, to: "md5" }]);
    assert.equal((await deps.users.getById(a.id))?.passwordHash, md5("old a"), "a dry run writes nothing");
    const real = await run(deps, csv, { onConflict: "update", replacePasswords: true });
    assert.deepEqual(real.passwordsReplaced, dry.passwordsReplaced);
    const rowA = await deps.database.db.selectFrom("users").selectAll().where("id", "=", a.id).executeTakeFirstOrThrow();
    // The account's password was set in this same millisecond (the test clock stands still): the change time still
    // moves forward, one past it — it is the password's version (a login racing the change must see it move).
    assert.deepEqual([rowA.password_hash, rowA.password_scheme, Number(rowA.password_changed_at)], [bcryptOfNew, "bcrypt", deps.clock.now() + 1]);
    assert.deepEqual([rowA.password_invalidated_at, rowA.locked_at, rowA.locked_reason], [incident, incident, "containment"], "replacing a password never lifts containment");
    assert.equal((await deps.users.getById(b.id))?.passwordHash, md5("first b"));
    const batch = (await deps.audit.tail(5)).find((e) => e.type === "users.import.batch");
    assert.equal(batch?.data["passwordsReplaced"], 2);
  });

  // The two moments a stored hash can change under an import, each made to happen on purpose (the wrap used to be sent
  // from the progress callback and raced the batch: under load on PostgreSQL it landed after the batch's commit, and
  // the test saw no refusal to check).
  it("rolls back a --replace-passwords batch when the stored hash was wrapped after validation, before the batch read it", async () => {
    const deps = await setup(await fx.fresh());
    const user = await deps.users.create({ email: "w@example.org", passwordHash: md5("old"), passwordScheme: "md5" });
    const wrapped = await passwords.wrapLegacyHash(md5("old"));
    // migrate-hashes wraps the stored MD5 after the validation pass judged md5 -> md5 a fair replacement: the write
    // phase's first transaction (the batch's) begins once the wrap has committed, so the batch reads the wrapped hash.
    let writing = false;
    let wrap: Promise<unknown> | null = null;
    const database = deps.database;
    const transaction = database.transaction.bind(database);
    database.transaction = (async (...args: Parameters<typeof transaction>) => {
      if (writing) wrap ??= database.db.updateTable("users").set({ password_hash: wrapped, password_scheme: "bulwark-wrapped" }).where("id", "=", user.id).execute();
      await wrap;
      return transaction(...args);
    }) as typeof database.transaction;
    await assert.rejects(
      run(deps, `email,password_hash\nw@example.org,${md5("new")}\n`, { onConflict: "update", replacePasswords: true, onProgress: (_n, phase) => { writing ||= phase === "write"; } }),
      (e: unknown) => e instanceof ImportRefusedError
        && /line 2: the file's password hash \(md5, a fast digest\) is weaker.*batch 1 was rolled back/.test(e.message),
    );
    assert.ok(wrap !== null, "no transaction began in the write phase: the wrap was not made where this test means it");
    assert.equal((await deps.users.getById(user.id))?.passwordHash, wrapped);
  });

  it("rolls back a --replace-passwords batch when the stored hash was wrapped between the batch's read and its write (PostgreSQL: reads take no row lock)", async (t) => {
    const db = await fx.fresh();
    if (db.dialect !== "postgres") {
      t.skip("SQLite runs one writer at a time: no other writer can change the row between the batch's read and its write");
      return;
    }
    const deps = await setup(db);
    const user = await deps.users.create({ email: "w@example.org", passwordHash: md5("old"), passwordScheme: "md5" });
    const wrapped = await passwords.wrapLegacyHash(md5("old"));
    // The wrap is written and held uncommitted: the batch reads the MD5 still committed, judges md5 -> md5 fair, and
    // its update waits on the row; the wrap commits while it waits, so the compare-and-set finds another hash.
    const holder = await holdOpen(db, (trx) => trx.updateTable("users").set({ password_hash: wrapped, password_scheme: "bulwark-wrapped" }).where("id", "=", user.id).execute());
    const imported = run(deps, `email,password_hash\nw@example.org,${md5("new")}\n`, { onConflict: "update", replacePasswords: true });
    imported.catch(() => undefined);
    const waiting = async (): Promise<boolean> => {
      const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM pg_locks WHERE NOT granted`.execute(db.db);
      return Number(rows[0]?.n ?? 0) > 0;
    };
    const waited = await until(waiting, 30_000);
    await holder.commit();
    assert.ok(waited, "the batch's write never waited on the held wrap");
    await assert.rejects(imported, (e: unknown) => e instanceof ImportRefusedError
      && /line 2: the stored password hash changed while the batch was written.*batch 1 was rolled back/.test(e.message));
    assert.equal((await deps.users.getById(user.id))?.passwordHash, wrapped);
  });

  it("refuses a username or external id that belongs to another account", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "taken@example.org", username: "taken", externalSource: "app", externalId: "9" });
    const csv = "email,username,external_id\nx@example.org,TAKEN,1\ny@example.org,y,9\n";
    const report = await run(deps, csv, { dryRun: true, source: "app" });
    assert.deepEqual(report.bad.map((b) => [b.line, b.reason]), [[2, "the username belongs to another account"], [3, "external id app:9 belongs to another account"]]);
  });

  it("imports JSONL and reports its malformed lines", async () => {
    const deps = await setup(await fx.fresh());
    const jsonl = `{"email":"j1@example.org","username":"j1","created_at":1600000000}\n{"email":"j2@example.org"\n{"email":["j3@example.org"]}\n`;
    const report = await run(deps, jsonl, { format: "jsonl", skipBad: true });
    assert.deepEqual(report.bad.map((b) => b.line), [2, 3]);
    assert.match(report.bad[1]!.reason, /holds an object or array/);
    assert.equal(report.created, 1);
    assert.equal((await deps.users.findByIdentifier("j1"))?.createdAt, 1600000000_000);
  });

  it("attack: a column or JSONL key no field reads (an export's \"Status\", \"password\") refuses the file, dry run and real run, unless ignored by name", async () => {
    // Finding: "Status" (blocked) and "password" were dropped silently: the account came in active, without a hash.
    const deps = await setup(await fx.fresh());
    const csv = `email,Status,password\nbanned@example.org,blocked,${md5("hunter2")}\n`;
    const refused = (e: unknown): boolean => e instanceof ImportOptionError && /columns "Status", "password" that no field reads/.test(e.message) && /--map status=Status/.test(e.message) && /--ignore-columns Status,password/.test(e.message);
    for (const dryRun of [true, false]) await assert.rejects(run(deps, csv, { dryRun }), refused);
    // Without the caller's header hook too: the importer checks the columns itself.
    await assert.rejects(run(deps, csv, { onHeader: () => {} }), refused);
    const jsonl = `{"email":"j1@example.org"}\n{"email":"j2@example.org","Status":"blocked"}\n{"email":"j3@example.org","password":"x","Status":"0"}\n`;
    for (const dryRun of [true, false]) {
      await assert.rejects(run(deps, jsonl, { format: "jsonl", dryRun }), (e: unknown) => e instanceof ImportOptionError && /\(first at line 2\) keys "Status", "password" that no field reads/.test(e.message));
    }
    assert.deepEqual(await deps.database.db.selectFrom("users").select("id").execute(), [], "a refused file writes nothing");
    assert.deepEqual((await auditTypes(deps)).filter((t) => t.startsWith("users.import")), [], "nor records a dry run it refused");
    // Mapped, the columns are read; ignored by name, they are left out knowingly.
    const mapped = await run(deps, csv, { map: "status=Status,password_hash=password" });
    assert.equal(mapped.created, 1);
    const banned = await deps.users.findByIdentifier("banned@example.org");
    assert.equal(banned?.status, "disabled");
    assert.equal(banned?.passwordScheme, "md5");
    const ignored = await run(deps, jsonl, { format: "jsonl", ignore: ["Status", "password"] });
    assert.equal(ignored.created, 3);
  });

  it("rolls back a whole batch when a conflict appears after validation, keeping earlier batches", async () => {
    const deps = await setup(await fx.fresh());
    const csv = ["email", ...[1, 2, 3, 4, 5, 6].map((i) => `r${i}@example.org`)].join("\n");
    let raced = false;
    const race = async (): Promise<void> => {
      raced = true;
      await deps.users.create({ email: "r5@example.org" });
    };
    let pendingRace: Promise<void> | null = null;
    await assert.rejects(
      run(deps, csv, {
        batchSize: 3,
        // Another writer creates r5 between validation and the write of batch 2.
        onProgress: (_n, phase) => {
          if (phase === "write" && !raced) pendingRace = race();
        },
      }),
      (e: unknown) => e instanceof ImportRefusedError && /line 6: .*batch 2 was rolled back/.test(e.message),
    );
    await pendingRace;
    const emails = (await deps.database.db.selectFrom("users").select("email").orderBy("email").execute()).map((r) => r.email);
    assert.deepEqual(emails, ["r1@example.org", "r2@example.org", "r3@example.org", "r5@example.org"]);
    assert.deepEqual((await auditTypes(deps)).filter((t) => t.startsWith("users.import")), ["users.import.batch"]);
  });
  it("resumes an interrupted import of the same file after its last written batch, instead of meeting its own rows as conflicts", async () => {
    const deps = await setup(await fx.fresh());
    const lines = ["email", ...Array.from({ length: 10 }, (_, i) => `c${i + 1}@example.org`)];
    const whole = lines.join("\n");
    const map = resolveMap({ preset: null, map: parseFieldMap(undefined), saltColumn: undefined });
    const options = (open: ImportOptions["open"], extra: Partial<ImportOptions> = {}): ImportOptions => ({
      format: "csv", onConflict: "fail", batchSize: 3, dryRun: false, skipBad: false, actor: "test", file: "c.csv",
      rules: { map, preset: null, source: "c.csv", salted: null }, open, ...extra,
    });
    // The first run dies while writing: its third read of the file (digest, validation, write) breaks after row 7,
    // so batches 1-3 and 4-6 are committed and row 7 is not.
    let opened = 0;
    const dying = async function* (): AsyncGenerator<string> {
      opened++;
      if (opened < 3) {
        yield whole;
        return;
      }
      yield `${lines.slice(0, 8).join("\n")}\n`;
      throw new Error("the process died");
    };
    await assert.rejects(importUsers(deps, options(dying)), /the process died/);
    assert.equal(await deps.users.count(), 6);
    const again = async function* (): AsyncGenerator<string> {
      yield whole;
    };
    // A dry run says what the resumed run will do: no conflicts for the rows already written.
    const dry = await importUsers(deps, options(again, { dryRun: true }));
    assert.deepEqual({ bad: dry.bad, created: dry.created, alreadyImported: dry.alreadyImported, resumedAfterLine: dry.resumedAfterLine }, { bad: [], created: 4, alreadyImported: 6, resumedAfterLine: 7 });
    const resumed = await importUsers(deps, options(again));
    assert.equal(resumed.jobId, dry.jobId);
    assert.deepEqual({ created: resumed.created, failed: resumed.failed, alreadyImported: resumed.alreadyImported, rows: resumed.rows }, { created: 4, failed: 0, alreadyImported: 6, rows: 10 });
    assert.equal(await deps.users.count(), 10, "every row once");
    const job = await deps.jobs.get(resumed.jobId as string);
    assert.equal(job.status, "done");
    assert.equal(job.cursor, "11", "through the last line");
    const types = (await auditTypes(deps)).filter((t) => t.startsWith("users.import"));
    assert.deepEqual(types.filter((t) => t !== "users.import.batch"), ["users.import.dry-run", "users.import.resumed", "users.import.completed"]);
    assert.equal(types.filter((t) => t === "users.import.batch").length, 4, "two batches before the crash, two after");
    // Done: the same file again is a new import, whose rows now all exist.
    await assert.rejects(importUsers(deps, options(again)), (e: unknown) => e instanceof ImportRefusedError && /10 bad row/.test(e.message));
  });

  it("a batch is written once when two runs of the same import race: the slower one stops", async () => {
    const deps = await setup(await fx.fresh());
    const csv = ["email", ...Array.from({ length: 6 }, (_, i) => `d${i + 1}@example.org`)].join("\n");
    // Run A is interrupted after its first batch; B and C then resume the same job at once.
    let opened = 0;
    await assert.rejects(run(deps, csv, {
      batchSize: 3,
      onProgress: (n, phase) => {
        if (phase === "write" && n === 5 && opened++ === 0) throw new Error("interrupted");
      },
    }), /interrupted/);
    assert.equal(await deps.users.count(), 3);
    const results = await Promise.allSettled([run(deps, csv, { batchSize: 3 }), run(deps, csv, { batchSize: 3 })]);
    assert.equal(await deps.users.count(), 6, "every row once");
    const ok = results.filter((r) => r.status === "fulfilled");
    assert.ok(ok.length >= 1, "one run finished the job");
    for (const r of results) if (r.status === "rejected") assert.match(String(r.reason), /another run of this import|already exists/);
  });
});
