// Bulk import on SQLite and PostgreSQL: good rows, every kind of bad row (with line numbers), the
// Drupal 7 preset on realistic rows, salted legacy layouts, conflicts, and per-batch atomicity.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { createPasswordContext, parseSaltedTemplate } from "../passwords/index.ts";
import { createUserStore } from "../users/user-store.ts";
import { ImportRefusedError } from "./errors.ts";
import { importUsers, type ImportDeps, type ImportOptions, type ImportReport } from "./importer.ts";
import { checkHeader, parseFieldMap, resolveMap, type Preset } from "./mapping.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const FIXTURE = new URL("./fixtures/drupal7-users.csv", import.meta.url);
const BCRYPT_COST_31 = "$2b$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
const DRUPAL_2_37 = "$S$Zabcdefgh" + "x".repeat(43);

async function setup(db: Database): Promise<ImportDeps & { clock: ManualClock }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  return { database: db, clock, passwords, users: createUserStore({ database: db, clock, random: systemRandom }), audit: new AuditLog({ database: db, clock, random: systemRandom }) };
}

type Extra = Partial<Omit<ImportOptions, "rules" | "open">> & { map?: string; preset?: Preset; salted?: string; saltColumn?: string; source?: string };

function run(deps: ImportDeps, text: string, extra: Extra = {}): Promise<ImportReport> {
  const { map: mapText, preset, salted, saltColumn, source, ...rest } = extra;
  const explicit = parseFieldMap(mapText);
  const map = resolveMap({ preset: preset ?? null, map: explicit, saltColumn });
  const format = rest.format ?? "csv";
  return importUsers(deps, {
    format, onConflict: "fail", batchSize: 500, dryRun: false, skipBad: false, actor: "test", file: "test.csv",
    ...(format === "csv" ? { onHeader: (h: string[]) => checkHeader(h, map, explicit) } : {}),
    ...rest,
    rules: { map, preset: preset ?? null, source: source ?? preset ?? "test.csv", salted: salted ? parseSaltedTemplate(salted) : null },
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
    assert.deepEqual([updated.created, updated.updated], [0, 2]);
    const ana = await deps.users.getById(existing.id);
    assert.deepEqual([ana?.displayName, ana?.username, ana?.id], ["Ana B.", "ana", existing.id]);
    assert.equal(await passwords.verify("new", ana!.passwordHash!), true);
    assert.equal((await deps.users.findByIdentifier("new@example.org"))?.displayName, "New", "an empty value does not clear a field");
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
});
