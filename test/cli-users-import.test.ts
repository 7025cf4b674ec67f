// `bulwark users import` end to end, through the CLI (in this process; one spawned run per block): bad flags and
// bad files are refused with exit 2 and a message naming the problem, a dry run changes nothing, a real run is
// all-or-nothing per batch, legacy ids are kept as external ids, salted layouts are stored
// self-describing, hostile hashes never reach the database, a re-import that updates accounts
// never puts back a weaker hash nor undoes containment, an import that disables an account or
// replaces its password ends its sessions, and a resumed import keeps its recorded source.
import assert from "node:assert/strict";
import { hashSync } from "@node-rs/bcrypt";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { openApp } from "../src/app/index.ts";
import { bulwarkInProcess, initSite, type CLISite } from "./helpers/cli.ts";

const DRUPAL7 = fileURLToPath(new URL("../src/accounts/import/fixtures/drupal7-users.csv", import.meta.url));

let root: string;
let seq = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-cli-import-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A fresh, initialised data dir of its own. */
function site(): Promise<CLISite> {
  return initSite(join(root, `site-${++seq}`), { here: true });
}

/** Runs the CLI in this process against the site. */
function inProcess(s: CLISite, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return bulwarkInProcess(args, { ...s.env, BULWARK_LOG_LEVEL: "silent" });
}

const userCount = (s: CLISite): number => Number(s.rows("SELECT count(*) AS n FROM users")[0]!["n"]);
const md5 = (text: string): string => createHash("md5").update(text).digest("hex");

/**
 * Leaves what a run that died after its first two batches of 3 (lines 2-7) leaves, as kill -9 would: the file's
 * import job, its cursor at line 7. The run's source is the file's name, as the CLI derives it.
 */
async function dieAfterTwoBatches(s: CLISite, name: string, text: string): Promise<void> {
  const app = await openApp({ env: s.env });
  try {
    const { importUsers, resolveMap, parseFieldMap } = await import("../src/accounts/import/index.ts");
    let reads = 0;
    await assert.rejects(importUsers(
      { database: app.db, users: app.accounts.users, passwords: app.accounts.passwords, audit: app.audit, clock: app.clock, jobs: app.accounts.jobs, notices: null },
      {
        format: "csv", onConflict: "fail", batchSize: 3, dryRun: false, skipBad: false, actor: "test", file: name,
        rules: { map: resolveMap({ preset: null, map: parseFieldMap(undefined), saltColumn: undefined }), preset: null, source: name, salted: null },
        open: async function* () {
          if (++reads < 3) yield text;
          else {
            yield text.split("\n").slice(0, 8).join("\n") + "\n";
            throw new Error("killed");
          }
        },
      },
    ), /killed/);
  } finally {
    await app.close();
  }
}

describe("users import: bad flags and bad files exit 2 and change nothing", () => {
  it("refuses bad flags with a message naming the flag", async () => {
    const s = await site();
    const csv = s.file("users.csv", "email,password_hash\nana@example.org,5f4dcc3b5aa765d61d8327deb882cf99\n");
    const cases: Array<[string[], RegExp]> = [
      [["--format", "xml"], /--format must be one of csv, jsonl, got "xml"/],
      [["--on-conflict", "merge"], /--on-conflict must be one of skip, update, fail/],
      [["--batch", "0"], /--batch must be an integer between 1 and 5000/],
      [["--preset", "wordpress"], /--preset must be one of drupal7/],
      [["--map", "mail"], /--map entry "mail" is not FIELD=COLUMN/],
      [["--map", "password=pass"], /--map names an unknown field "password"/],
      [["--map", "email=email,email=password_hash"], /--map names the field "email" twice \(email and password_hash\); give it once/],
      [["--map", "email=courriel"], /--map email=courriel: the header has no "courriel" column|no "courriel" column for email/],
      [["--salted", "sha256(salt+password)"], /--salted and --salt-column go together/],
      [["--salted", "sha3(salt+password)", "--salt-column", "salt"], /template "sha3\(salt\+password\)" is not understood/],
      [["--replace-passwords"], /--replace-passwords goes with --on-conflict update/],
      [["--replace-passwords", "--on-conflict", "skip"], /--replace-passwords goes with --on-conflict update/],
    ];
    for (const [flags, message] of cases) {
      const r = await s.runHere(["users", "import", csv, ...flags]);
      assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, flags.join(" "));
    }
    assert.equal(userCount(s), 0);
  });

  it("refuses a missing file, a directory, and a file whose format cannot be told", async () => {
    const s = await site();
    const missing = await s.runHere(["users", "import", join(s.dir, "nope.csv")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.csv: ENOENT/);
    const dir = await s.runHere(["users", "import", s.dir, "--format", "csv"]);
    assert.equal(dir.code, 2);
    assert.match(dir.stderr, /is not a file/);
    const txt = await s.runHere(["users", "import", s.file("users.txt", "email\nana@example.org\n")]);
    assert.equal(txt.code, 2);
    assert.match(txt.stderr, /--format csv\|jsonl is required/);
    const noEmail = await s.runHere(["users", "import", s.file("nomail.csv", "name,pass\nana,x\n")]);
    assert.equal(noEmail.code, 2);
    assert.match(noEmail.stderr, /the header has no "email" column for email \(use --map email=COLUMN\)/);
    assert.equal(userCount(s), 0);
  });

  it("a dry run reports every bad row with its line number and reason, writes nothing, and exits 1", async () => {
    // ASVS 2.2.1: every row is validated against structure and limits; hostile hash costs are bad rows.
    const s = await site();
    const jsonl = s.file("users.jsonl", [
      JSON.stringify({ email: "ok@example.org", password_hash: md5("fine password") }),
      "{not json",
      JSON.stringify({ email: "not-an-email", password_hash: md5("x") }),
      "",
      JSON.stringify({ email: "cost@example.org", password_hash: "$2b$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy" }),
      JSON.stringify({ email: "drupal@example.org", password_hash: "$S$Z" + "abcdefgh" + "x".repeat(43) }),
      JSON.stringify({ email: "argon@example.org", password_hash: "$argon2id$v=19$m=67108864,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY" }),
      JSON.stringify({ email: "crypt@example.org", password_hash: "$6$rounds=1000000000$saltsalt$" + "x".repeat(86) }),
      JSON.stringify({ email: "garbage@example.org", password_hash: "not-a-hash" }),
      JSON.stringify({ email: "OK@example.org", password_hash: md5("dup") }),
      JSON.stringify({ email: "obj@example.org", status: { active: true } }),
      JSON.stringify(["an", "array"]),
      JSON.stringify({ email: "time@example.org", created_at: "yesterday" }),
    ].join("\n") + "\n");
    const r = await s.runHere(["users", "import", jsonl, "--dry-run", "--json"]);
    assert.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.dryRun, true);
    assert.deepEqual([report.rows, report.created, report.failed], [12, 1, 11]);
    const reasons = new Map<number, string>(report.bad.map((b: { line: number; reason: string }) => [b.line, b.reason]));
    assert.deepEqual([...reasons.keys()], [2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13], "every bad row, by line, blank line 4 ignored");
    assert.match(reasons.get(2)!, /not valid JSON/);
    assert.match(reasons.get(3)!, /email/);
    assert.match(reasons.get(5)!, /bcrypt cost 31 is above the limit of 15/);
    assert.match(reasons.get(6)!, /log2|count/);
    assert.match(reasons.get(7)!, /argon2 m \(KiB\) 67108864 is above the limit/);
    assert.match(reasons.get(8)!, /rounds 1000000000 is above the limit/);
    assert.match(reasons.get(9)!, /not one we recognise/);
    assert.match(reasons.get(10)!, /duplicate of line 1/);
    assert.match(reasons.get(11)!, /holds an object or array/);
    assert.match(reasons.get(12)!, /not a JSON object/);
    assert.match(reasons.get(13)!, /neither unix seconds nor an ISO-8601 date/);
    assert.equal(userCount(s), 0, "a dry run writes no account");

    // The human form lists the same lines.
    const human = await s.runHere(["users", "import", jsonl, "--dry-run"]);
    assert.equal(human.code, 1);
    for (const line of reasons.keys()) assert.match(human.stdout, new RegExp(`line ${line}: `));

    // A real run of the same file refuses to start: nothing imported, not even the good row.
    const real = await s.runHere(["users", "import", jsonl]);
    assert.equal(real.code, 2);
    assert.match(real.stderr, /11 bad row\(s\), nothing imported .*--skip-bad.*line 2: /);
    assert.equal(userCount(s), 0);
    // --skip-bad imports the good row only; no hostile hash reaches the database.
    const skip = await s.run(["users", "import", jsonl, "--skip-bad", "--json"]);
    assert.equal(skip.code, 0, skip.stderr);
    assert.deepEqual([JSON.parse(skip.stdout).created, JSON.parse(skip.stdout).failed], [1, 11]);
    assert.deepEqual(s.rows("SELECT email, password_scheme FROM users"), [{ email: "ok@example.org", password_scheme: "md5" }]);
  });
});

describe("users import: Drupal 7 preset", () => {
  it("dry run changes nothing; the real run creates 8, skips uid 0, keeps legacy ids as external ids under random ids", async () => {
    // ASVS 6.3.2: Drupal's anonymous placeholder (uid 0) does not become an account.
    const s = await site();
    const dry = await s.runHere(["users", "import", DRUPAL7, "--preset", "drupal7", "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(
      (({ rows, created, skipped, failed }) => ({ rows, created, skipped, failed }))(JSON.parse(dry.stdout)),
      { rows: 9, created: 8, skipped: 1, failed: 0 },
    );
    assert.equal(userCount(s), 0, "dry run: no account");
    const audit = s.rows("SELECT type FROM audit_events").map((r) => r["type"]);
    assert.ok(audit.includes("users.import.dry-run"), "the dry run is audited");

    const r = await s.run(["users", "import", DRUPAL7, "--preset", "drupal7"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /created 8, updated 0, skipped 1, failed 0/);
    assert.match(r.stdout, /line 2: skipped, uid 0 is Drupal's anonymous user/);
    const users = s.rows("SELECT id, email, username, status, external_source, external_id, password_scheme, created_at, last_login_at FROM users ORDER BY CAST(external_id AS INTEGER)");
    assert.deepEqual(users.map((u) => u["external_id"]), ["1", "2", "3", "4", "5", "6", "7", "8"]);
    assert.ok(users.every((u) => u["external_source"] === "drupal7"));
    assert.ok(users.every((u) => /^usr_[a-z2-7]{26}$/.test(String(u["id"]))), "Bulwark's own ids are random");
    assert.notDeepEqual(users.map((u) => u["id"]), [...users.map((u) => u["id"])].sort(), "ids do not follow the legacy order");
    assert.deepEqual(users.map((u) => u["password_scheme"]), ["drupal7", "drupal7", "drupal7-wrapped-md5", "drupal7-wrapped-md5", "phpass", "phpass", "md5", "drupal7"]);
    assert.equal(users[5]!["status"], "disabled", "Drupal status 0 is a blocked account");
    assert.equal(users[0]!["username"], "admin");
    assert.equal(Number(users[0]!["created_at"]), 1262304000 * 1000);
    assert.equal(users[3]!["last_login_at"], null, "Drupal's login 0 means never");
    const batches = s.rows("SELECT data FROM audit_events WHERE type = 'users.import.batch'");
    assert.equal(batches.length, 1);

    // The imported legacy hash verifies the fixture's password through `bulwark hash verify`.
    const petros = s.rows("SELECT password_hash FROM users WHERE external_id = '8'")[0]!["password_hash"] as string;
    assert.equal((await s.runHere(["hash", "verify", petros], "pässwörd ✓ 密码\n")).code, 0);
    assert.equal((await s.runHere(["hash", "verify", petros], "passwörd ✓ 密码\n")).code, 1);
  });

  it("takes the format from the extension whatever the preset: a JSONL export is read as JSONL, a .txt needs --format", async () => {
    // Was: `preset || ext === ".csv" ? "csv" : …` made every preset file CSV: the JSONL line failed as a CSV
    // header, and a .txt was read as CSV although the docs say the format is required when the extension does not tell.
    const s = await site();
    const row = { uid: 1, name: "admin", pass: "$S$DxVn7wubSRzoK9X2pkGx4njeGKkM8UZa2ypkxxkqcGV5l3H8Zj1T", mail: "admin@example.org", status: 1, created: 1400000000, access: 0, login: 0 };
    for (const name of ["users.jsonl", "users.ndjson"]) {
      const r = await inProcess(s, ["users", "import", s.file(name, `${JSON.stringify(row)}\n`), "--preset", "drupal7", "--dry-run", "--json"]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.deepEqual((({ rows, created, failed }) => ({ rows, created, failed }))(JSON.parse(r.stdout)), { rows: 1, created: 1, failed: 0 }, name);
    }
    const txt = s.file("users.txt", "uid,name,pass,mail,status,created,access,login\n1,admin,,admin@example.org,1,1400000000,0,0\n");
    const refused = await inProcess(s, ["users", "import", txt, "--preset", "drupal7", "--dry-run"]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--format csv\|jsonl is required \(it cannot be told from the file name\)/);
    const told = await inProcess(s, ["users", "import", txt, "--preset", "drupal7", "--format", "csv", "--dry-run", "--json"]);
    assert.equal(told.code, 0, told.stderr);
    assert.equal(JSON.parse(told.stdout).created, 1);
    assert.equal(userCount(s), 0, "dry runs only");
  });

  it("--on-conflict fail | skip | update on existing emails", async () => {
    const s = await site();
    assert.equal((await s.runHere(["users", "import", DRUPAL7, "--preset", "drupal7"])).code, 0);
    const before = s.rows("SELECT id, email, password_hash, username FROM users ORDER BY email");

    const fail = await s.runHere(["users", "import", DRUPAL7, "--preset", "drupal7"]);
    assert.equal(fail.code, 2);
    assert.match(fail.stderr, /8 bad row\(s\), nothing imported.*an account with this email already exists \(--on-conflict fail\)/);
    const skip = await s.runHere(["users", "import", DRUPAL7, "--preset", "drupal7", "--on-conflict", "skip", "--json"]);
    assert.equal(skip.code, 0, skip.stderr);
    assert.deepEqual([JSON.parse(skip.stdout).created, JSON.parse(skip.stdout).skipped], [0, 9]);
    assert.deepEqual(s.rows("SELECT id, email, password_hash, username FROM users ORDER BY email"), before, "skip and fail change nothing");

    // update: a file with a new name and a new hash for one account, an empty hash for another.
    const upd = s.file("update.csv", `uid,name,pass,mail,status,created,access,login\n1,root,${md5("new one")},admin@example.org,1,1262304000,0,0\n2,jane,,jane@example.org,1,1293840000,0,0\n`);
    const r = await s.runHere(["users", "import", upd, "--preset", "drupal7", "--on-conflict", "update", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([JSON.parse(r.stdout).created, JSON.parse(r.stdout).updated, JSON.parse(r.stdout).passwordsKept], [0, 2, 1]);
    const adminBefore = before.find((u) => u["email"] === "admin@example.org")!;
    let after = new Map(s.rows("SELECT email, username, password_hash, id FROM users").map((u) => [u["email"], u]));
    assert.equal(after.get("admin@example.org")!["username"], "root");
    assert.equal(after.get("admin@example.org")!["password_hash"], adminBefore["password_hash"], "an update keeps stored passwords unless told to replace them");
    // --replace-passwords never downgrades: Drupal's salted, iterated SHA-512 does not give way to a bare MD5, though
    // both rank below the policy as fast digests (a bad row naming why; nothing written).
    const downgrade = await s.runHere(["users", "import", upd, "--preset", "drupal7", "--on-conflict", "update", "--replace-passwords", "--dry-run"]);
    assert.equal(downgrade.code, 1, downgrade.stdout);
    assert.match(downgrade.stdout, /line 2: the file's password hash \(md5\) may be weaker than the stored one \(drupal7\)/);
    // A stronger hash is replaced: the dry run names it, the real run writes it.
    // At or above bcrypt's minimum cost (10): one below it replaces no fast digest, which migrate-hashes would lift.
    const stronger = hashSync("new one", { cost: 10 });
    const up = s.file("upgrade.csv", `uid,name,pass,mail,status,created,access,login\n1,root,${stronger},admin@example.org,1,1262304000,0,0\n2,jane,,jane@example.org,1,1293840000,0,0\n`);
    const dry = await s.runHere(["users", "import", up, "--preset", "drupal7", "--on-conflict", "update", "--replace-passwords", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /line 2: password hash would be replaced \(drupal7 -> bcrypt\)/);
    assert.equal((await s.runHere(["users", "import", up, "--preset", "drupal7", "--on-conflict", "update", "--replace-passwords"])).code, 0);
    after = new Map(s.rows("SELECT email, username, password_hash, id FROM users").map((u) => [u["email"], u]));
    assert.equal(after.get("admin@example.org")!["password_hash"], stronger);
    const janeBefore = before.find((u) => u["email"] === "jane@example.org")!;
    assert.equal(after.get("jane@example.org")!["password_hash"], janeBefore["password_hash"], "an empty hash never clears a password");
    assert.equal(after.get("jane@example.org")!["id"], janeBefore["id"]);
  });
});

describe("users import: a large report stays readable", () => {
  it("lists the first 20 skipped rows by line and counts the rest; --json lists every one", async () => {
    // Was: one line per skipped row, so re-importing a large file under --on-conflict skip printed a line per account.
    const s = await site();
    const rows = Array.from({ length: 45 }, (_, i) => `user${i}@example.org`);
    const file = s.file("many.csv", `email\n${rows.join("\n")}\n`);
    assert.equal((await inProcess(s, ["users", "import", file])).code, 0);
    const again = await inProcess(s, ["users", "import", file, "--on-conflict", "skip"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /created 0, updated 0, skipped 45, failed 0/);
    const listed = again.stdout.split("\n").filter((l) => /^ {2}line \d+: skipped, /.test(l));
    assert.deepEqual(listed.map((l) => Number(/line (\d+)/.exec(l)![1])), Array.from({ length: 20 }, (_, i) => i + 2), "the first 20 by line");
    assert.match(again.stdout, /\n {2}… and 25 more skipped rows \(--json lists every one\)\n/);
    const json = await inProcess(s, ["users", "import", file, "--on-conflict", "skip", "--json"]);
    assert.equal(JSON.parse(json.stdout).skippedRows.length, 45);
    // Bad rows are listed the same way, on a dry run of a file whose 30 rows are all bad.
    const bad = s.file("bad.csv", `email\n${Array.from({ length: 30 }, (_, i) => `not-an-address-${i}`).join("\n")}\n`);
    const dry = await inProcess(s, ["users", "import", bad, "--dry-run"]);
    assert.equal(dry.code, 1);
    assert.equal(dry.stdout.split("\n").filter((l) => /^ {2}line \d+: /.test(l)).length, 20);
    assert.match(dry.stdout, /… and 10 more bad rows \(--json lists every one\)/);
  });
});

describe("users import: an update after migrate-hashes and containment", () => {
  it("attack: re-importing a row with --on-conflict update neither restores its MD5 nor lifts containment", async () => {
    // Finding: migrate-hashes wrapped the MD5, `contain invalidate-passwords` ran, and re-importing the
    // same row (only display_name changed) restored the raw MD5 and cleared password_invalidated_at.
    const s = await site();
    const legacy = md5("Ana's old password");
    assert.equal((await s.runHere(["users", "import", s.file("r1.csv", `email,display_name,password_hash\nana@example.org,Ana,${legacy}\n`)])).code, 0);
    const migrated = await s.runHere(["users", "migrate-hashes"]);
    assert.equal(migrated.code, 0, migrated.stderr);
    const contained = await s.runHere(["contain", "invalidate-passwords", "lock-accounts", "--all", "--yes"]);
    assert.equal(contained.code, 0, contained.stderr);
    const columns = "password_hash, password_scheme, password_changed_at, password_invalidated_at, locked_at, locked_reason, password_must_change";
    const [before] = s.rows(`SELECT ${columns} FROM users`);
    assert.equal(before!["password_scheme"], "bulwark-wrapped");
    assert.notEqual(before!["password_invalidated_at"], null);

    const r2 = s.file("r2.csv", `email,display_name,password_hash\nana@example.org,Ana B.,${legacy}\n`);
    const dry = await s.runHere(["users", "import", r2, "--on-conflict", "update", "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual((({ updated, passwordsReplaced, passwordsKept }) => ({ updated, passwordsReplaced, passwordsKept }))(JSON.parse(dry.stdout)), { updated: 1, passwordsReplaced: [], passwordsKept: 1 });
    const r = await s.run(["users", "import", r2, "--on-conflict", "update"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /updated 1/);
    assert.match(r.stdout, /1 stored password hash\(es\) differ from the file's and were kept/);
    assert.deepEqual(s.rows(`SELECT ${columns} FROM users`), [before], "hash, scheme and containment untouched");
    assert.equal(s.rows("SELECT display_name FROM users")[0]!["display_name"], "Ana B.");

    // Told to replace passwords, the weaker MD5 is a bad row: the dry run names it, the real run refuses.
    const told = await s.runHere(["users", "import", r2, "--on-conflict", "update", "--replace-passwords", "--dry-run"]);
    assert.equal(told.code, 1);
    assert.match(told.stdout, /line 2: the file's password hash \(md5, a fast digest\) is weaker than the stored one \(bulwark-wrapped/);
    const refused = await s.runHere(["users", "import", r2, "--on-conflict", "update", "--replace-passwords"]);
    assert.equal(refused.code, 2);
    assert.deepEqual(s.rows(`SELECT ${columns} FROM users`), [before]);
  });
});

describe("users import: salted legacy layouts (SourceLair)", () => {
  it("stores sha256(salt+password) hex and md5(password+salt) base64 self-describing; the passwords verify", async () => {
    const s = await site();
    const salt = "0123456789abcdef0123456789abcdef"; // SourceLair's 32-character salts
    const sha = createHash("sha256").update(salt + "sourcelair secret").digest("hex");
    const csv = s.file("sourcelair.csv", `id,email,hash,salt\n17,dev@example.org,${sha},${salt}\n18,ops@example.org,${sha.replace(/^./, "0")},${salt}\n`);
    const r = await s.run(["users", "import", csv, "--map", "external_id=id,password_hash=hash", "--salted", "sha256(salt+password):hex", "--salt-column", "salt", "--source", "sourcelair", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).created, 2);
    const dev = s.rows("SELECT password_hash, password_scheme, external_source, external_id FROM users WHERE email = 'dev@example.org'")[0]!;
    assert.equal(dev["password_scheme"], "salted-digest");
    assert.match(dev["password_hash"] as string, /^\$salted-digest\$a=sha256,l=salt\+password,e=hex\$/);
    assert.deepEqual([dev["external_source"], dev["external_id"]], ["sourcelair", "17"]);
    assert.equal((await s.runHere(["hash", "verify", dev["password_hash"] as string], "sourcelair secret\n")).code, 0);
    assert.equal((await s.runHere(["hash", "verify", dev["password_hash"] as string], "sourcelair secreT\n")).code, 1);

    const salt2 = "pepper!";
    const b64 = createHash("md5").update("old php app" + salt2).digest("base64");
    const jsonl = s.file("php.jsonl", JSON.stringify({ mail: "php@example.org", digest: b64, s: salt2 }) + "\n" + JSON.stringify({ mail: "nosalt@example.org", digest: b64, s: "" }) + "\n");
    const dry = await s.runHere(["users", "import", jsonl, "--map", "email=mail,password_hash=digest", "--salted", "md5(password+salt):base64", "--salt-column", "s", "--dry-run", "--json"]);
    assert.equal(dry.code, 1);
    assert.deepEqual(JSON.parse(dry.stdout).bad, [{ line: 2, reason: 'no salt in column "s" for the salted layout' }]);
    const ok = await s.runHere(["users", "import", jsonl, "--map", "email=mail,password_hash=digest", "--salted", "md5(password+salt):base64", "--salt-column", "s", "--skip-bad"]);
    assert.equal(ok.code, 0, ok.stderr);
    const php = s.rows("SELECT password_hash FROM users WHERE email = 'php@example.org'")[0]!["password_hash"] as string;
    assert.match(php, /^\$salted-digest\$a=md5,l=password\+salt,e=base64\$/);
    assert.equal((await s.runHere(["hash", "verify", php], "old php app\n")).code, 0);
  });
});

describe("users import: all-or-nothing per batch", () => {
  it("writes in audited batches with counts; a row clashing with an existing account is reported, not half-written", async () => {
    const s = await site();
    // (The write-time rollback of a whole batch is proven in import.conformance.test.ts, where a
    // concurrent change can be staged between validation and write.)
    assert.equal((await s.runHere(["users", "import", s.file("seed.csv", "email,username\ntaken@example.org,taken\n")])).code, 0);
    const csv = s.file("batch.csv", "email,username\na@example.org,a\nb@example.org,b\nc@example.org,c\nd@example.org,taken\n");
    const dry = await s.runHere(["users", "import", csv, "--batch", "2", "--dry-run", "--json"]);
    assert.equal(dry.code, 1);
    assert.deepEqual(JSON.parse(dry.stdout).bad, [{ line: 5, reason: "the username belongs to another account" }]);
    const r = await s.run(["users", "import", csv, "--batch", "2", "--skip-bad", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual([report.created, report.failed, report.batches], [3, 1, 2]);
    assert.deepEqual(s.rows("SELECT email FROM users ORDER BY email").map((u) => u["email"]), ["a@example.org", "b@example.org", "c@example.org", "taken@example.org"]);
    const batches = s.rows("SELECT data FROM audit_events WHERE type = 'users.import.batch' ORDER BY seq").map((e) => JSON.parse(e["data"] as string));
    assert.deepEqual(batches.slice(-2).map((b) => [b.lines, b.created]), [["2-3", 2], ["4-4", 1]], "one audited batch per transaction, with its counts");
  });
  it("the same command after a run that died resumes after the last written batch, and says so", async () => {
    const s = await site();
    const text = `email\n${Array.from({ length: 9 }, (_, i) => `r${i + 1}@example.org`).join("\n")}\n`;
    const csv = s.file("resume.csv", text);
    await dieAfterTwoBatches(s, "resume.csv", text);
    assert.equal(userCount(s), 6);
    const dry = await s.runHere(["users", "import", csv, "--batch", "3", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would create 3,/);
    assert.match(dry.stdout, /would resume the interrupted import of this file \(job job_\w+\): its 6 rows up to line 7 were already written/);
    const r = await s.run(["users", "import", csv, "--batch", "3"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /created 3,/);
    assert.match(r.stdout, /resumed the interrupted import of this file/);
    assert.equal(userCount(s), 9);
    assert.equal((await s.runHere(["audit", "verify"])).code, 0);
  });
});

describe("users import: resuming under other settings", () => {
  it("a resume with another --on-conflict or --map is refused, naming what the first run used, until they match", async () => {
    // Was: only the source was checked, so the rest of a file could be imported under other rules than its start.
    const s = await site();
    const text = `email\n${Array.from({ length: 9 }, (_, i) => `r${i + 1}@example.org`).join("\n")}\n`;
    const csv = s.file("users.csv", text);
    await dieAfterTwoBatches(s, "users.csv", text);
    for (const extra of [["--on-conflict", "skip", "--dry-run"], ["--on-conflict", "update"], ["--map", "email=email,display_name=email"]]) {
      const r = await s.runHere(["users", "import", csv, "--batch", "3", ...extra]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /this file's import was interrupted \(job job_\w+, written through line 7\) under other settings: /, extra.join(" "));
      assert.match(r.stderr, extra[0] === "--map" ? /columns .*display_name=display_name.* then, columns .*display_name=email.* now/ : /--on-conflict fail then, --on-conflict (skip|update) now/);
      assert.match(r.stderr, /resume with .*once it is done, a new run of the file applies other settings to every row/);
    }
    assert.equal(userCount(s), 6, "the refused runs wrote nothing");
    const r = await s.run(["users", "import", csv, "--batch", "3"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /resumed the interrupted import of this file/);
    assert.equal(userCount(s), 9);
  });
});

describe("users import: resuming under another source", () => {
  it("the same file under another name is refused, naming both sources, until --source names the recorded one", async () => {
    // Finding: the resume of users.csv, run as "users (1).csv" (a second download), linked the remaining accounts to
    // the source "users (1).csv", and the next update of users.csv found half of them linked to another external id.
    const s = await site();
    const text = `email,external_id\n${Array.from({ length: 9 }, (_, i) => `r${i + 1}@example.org,${i + 1}`).join("\n")}\n`;
    s.file("users.csv", text);
    await dieAfterTwoBatches(s, "users.csv", text);
    const renamed = s.file("users (1).csv", text);
    for (const extra of [["--dry-run"], []]) {
      const r = await s.runHere(["users", "import", renamed, "--batch", "3", ...extra]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /this file's import was interrupted \(job job_\w+, written through line 7\) under the source "users\.csv", but this run's source is "users \(1\)\.csv" .*resume with --source "users\.csv"/);
    }
    assert.equal(userCount(s), 6, "the refused runs wrote nothing");
    const r = await s.run(["users", "import", renamed, "--batch", "3", "--source", "users.csv"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /as source "users\.csv": 9 rows; created 3,/);
    assert.match(r.stdout, /resumed the interrupted import of this file/);
    assert.deepEqual(s.rows("SELECT external_source AS source, count(*) AS n FROM users GROUP BY 1"), [{ source: "users.csv", n: 9 }]);
  });
});

describe("users import: sessions of the accounts it disables or gives another password", () => {
  it("attack: a session from before the import ends when it disables the account or replaces its password, and stays ended", async () => {
    // ASVS 7.4.2, 7.4.3. Finding: the import only set the status or the hash; re-enabling the account revived a
    // thief's session, and a replaced password left every session alive.
    const s = await site();
    assert.equal((await s.runHere(["users", "import", s.file("seed.csv", `email,password_hash\nd@example.org,${md5("d")}\np@example.org,${md5("p")}\n`)])).code, 0);
    const signIn = async (email: string): Promise<string> => {
      const app = await openApp({ env: s.env });
      try {
        const user = await app.accounts.users.findByIdentifier(email);
        return (await app.accounts.sessions.createSession(user!.id, { aal: 1, ip: "127.0.0.1", userAgent: "t" })).token;
      } finally {
        await app.close();
      }
    };
    const live = async (token: string): Promise<boolean> => {
      const app = await openApp({ env: s.env });
      try {
        return (await app.accounts.sessions.validate(token)).valid;
      } finally {
        await app.close();
      }
    };
    const [disabled, changed] = [await signIn("d@example.org"), await signIn("p@example.org")];
    const file = s.file("change.csv", `email,status,password_hash\nd@example.org,disabled,\np@example.org,,${md5("p2")}\n`);
    const dry = await s.runHere(["users", "import", file, "--on-conflict", "update", "--replace-passwords", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual([await live(disabled), await live(changed)], [true, true], "a dry run ends no session");
    const r = await s.run(["users", "import", file, "--on-conflict", "update", "--replace-passwords"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([await live(disabled), await live(changed)], [false, false]);
    assert.equal(s.rows("SELECT count(*) AS n FROM sessions")[0]!["n"], 0);
    assert.equal((await s.runHere(["users", "import", s.file("enable.csv", "email,status\nd@example.org,active\n"), "--on-conflict", "update"])).code, 0);
    assert.equal(await live(disabled), false, "enabling the account again revives no session");
  });
});
