// `bulwark users migrate-hashes | census` end to end, through the CLI (in this process, but spawned where a test kills,
// resumes or races runs, and one census): bad flags exit 2, the
// dry run prints the census and changes nothing, and the crash test — a migrate-hashes child killed
// with SIGKILL at random points on ~3,000 legacy users, then resumed — leaves every user able to log
// in with the right password (through the library's login core), nothing wrapped twice, the audit
// chain intact. Batches are all-or-nothing: after every kill, wrapped hashes == the job's `done`.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomInt } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { login } from "../src/accounts/login/index.ts";
import { openApp } from "../src/app/index.ts";
import { bulwark, bulwarkHere, MAIN } from "./helpers/cli.ts";

const DRUPAL7 = fileURLToPath(new URL("../src/accounts/import/fixtures/drupal7-users.csv", import.meta.url));
// Passwords of the Drupal 7 fixture (src/accounts/import/fixtures/README.md), by email.
const DRUPAL7_PASSWORDS: Record<string, string> = {
  "admin@example.org": "password", "jane@example.org": "correct horse battery staple", "old@example.org": "correct horse battery staple",
  "d6@example.org": "password", "phpbb@example.org": "password", "blocked@example.org": "correct horse battery staple",
  "legacy@example.org": "password", "petros@example.org": "pässwörd ✓ 密码",
};
const LEGACY_USERS = 3000;

let dir: string;
// argon2id at 4 MiB, t=1: cheap enough for 3,000 hashes in a test, slow enough to kill mid-run.
const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "4096", BULWARK_ARGON2_TIME: "1" });
const run = (args: string[], input?: string): ReturnType<typeof bulwark> => bulwark(args, { env: env(), ...(input !== undefined ? { input } : {}) });
const md5 = (text: string): string => createHash("md5").update(text).digest("hex");
const passwords = new Map<string, string>();

function rows(sql: string): Array<Record<string, unknown>> {
  const db = new DatabaseSync(join(dir, "data", "bulwark.db"), { readOnly: true });
  try {
    return (db.prepare(sql).all() as Array<Record<string, unknown>>).map((r) => ({ ...r }));
  } finally {
    db.close();
  }
}
const hashes = (): Map<string, string> => new Map(rows("SELECT email, password_hash FROM users").map((r) => [r["email"] as string, r["password_hash"] as string]));
const wrappedCount = (): number => Number(rows("SELECT count(*) AS n FROM users WHERE password_hash LIKE '$bulwark-wrap$%'")[0]!["n"]);
const jobs = (): Array<Record<string, unknown>> => rows("SELECT id, status, done, total, counts FROM jobs WHERE kind = 'migrate-hashes' ORDER BY created_at");

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-cli-migrate-"));
  assert.equal((await bulwarkHere(["init"], { env: env() })).code, 0);
  // SourceLair-style: unsalted MD5 for 3,000 users, plus the Drupal 7 export's phpass-era hashes.
  const lines = ["email,password_hash"];
  for (let i = 0; i < LEGACY_USERS; i++) {
    const email = `user${i}@example.org`;
    const password = `legacy password ${i} ${randomInt(1e9)}`;
    passwords.set(email, password);
    lines.push(`${email},${md5(password)}`);
  }
  const csv = join(dir, "legacy.csv");
  writeFileSync(csv, `${lines.join("\n")}\n`);
  const imported = await bulwarkHere(["users", "import", csv, "--batch", "1000"], { env: env() });
  assert.equal(imported.code, 0, imported.stderr);
  const drupal = await bulwarkHere(["users", "import", DRUPAL7, "--preset", "drupal7"], { env: env() });
  assert.equal(drupal.code, 0, drupal.stderr);
  for (const [email, password] of Object.entries(DRUPAL7_PASSWORDS)) passwords.set(email, password);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("users migrate-hashes and census (CLI)", () => {
  it("refuses bad flags with exit 2 and a message naming the flag, changing nothing", async () => {
    const before = hashes();
    const cases: Array<[string[], RegExp]> = [
      [["users", "migrate-hashes", "--batch", "0"], /--batch must be an integer between 1 and 10000, got "0"/],
      [["users", "migrate-hashes", "--batch", "lots"], /--batch must be an integer/],
      [["users", "migrate-hashes", "--concurrency", "-3"], /--concurrency must be an integer between 1 and 256/],
      [["users", "migrate-hashes", "--dry-run", "--new"], /--dry-run and --new do not go together/],
      [["users", "migrate-hashes", "--frobnicate"], /unknown option '--frobnicate'/],
      [["users", "migrate-hashes", "resume"], /there is no unfinished migrate-hashes job to resume/],
      [["users", "migrate-hashes", "resume", "job_doesnotexist"], /no job with id "job_doesnotexist"/],
      [["users", "census", "--by-color"], /unknown option '--by-color'/],
    ];
    for (const [args, message] of cases) {
      const r = await bulwarkHere(args, { env: env() });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
    }
    assert.deepEqual(hashes(), before);
    assert.equal(jobs().length, 0, "no job was created");
  });

  it("census: users per scheme and parameters, the share on weak schemes", async () => {
    const r = await run(["users", "census", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const census = JSON.parse(r.stdout);
    assert.deepEqual([census.users, census.withoutPassword, census.weak, census.unsalted, census.weakShare], [3008, 0, 3008, 3001, 1]);
    const md5Row = census.schemes.find((s: { scheme: string }) => s.scheme === "md5");
    assert.deepEqual(md5Row, { scheme: "md5", params: "", users: 3001, weak: true });
    assert.ok(census.schemes.some((s: { scheme: string; params: string }) => s.scheme === "drupal7" && s.params === "log2=15"));
    const human = await bulwarkHere(["users", "census"], { env: env() });
    assert.match(human.stdout, /^md5\s+3001\s+\(weak\)$/m);
    assert.match(human.stdout, /3008 user\(s\); 3008 on weak schemes \(100\.0% of those with a password\), 3001 unsalted/);
  });

  it("--dry-run prints the census of what would change and changes nothing", async () => {
    const before = hashes();
    const r = await bulwarkHere(["users", "migrate-hashes", "--dry-run", "--json"], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { dryRun: true, wouldWrap: 3008, schemes: { md5: 3001, drupal7: 3, "drupal7-wrapped-md5": 2, phpass: 2 }, belowMinimum: 0 });
    const human = await bulwarkHere(["users", "migrate-hashes", "--dry-run"], { env: env() });
    assert.match(human.stdout, /dry run: 3008 user\(s\) would be wrapped in argon2id\n\s+md5\s+3001\n/);
    assert.deepEqual(hashes(), before, "nothing rewritten");
    assert.equal(jobs().length, 0, "a dry run starts no job");
    assert.equal(rows("SELECT count(*) AS n FROM audit_events WHERE type = 'users.migrate-hashes.dry-run'")[0]!["n"], 2);
  });

  it("survives kill -9 at random points: resumed, every user logs in, nothing wrapped twice, audit verifies", { timeout: 300_000 }, async (t) => {
    // ASVS 11.4.2: afterwards no stored value is a fast hash; bulk operations never lose data (DESIGN.md).
    const before = hashes();
    let kills = 0;
    for (let attempt = 0; kills < 3 && attempt < 12; attempt++) {
      // The first run starts the job; later ones go through `resume`. Small batches: many commits to land between.
      const args = attempt === 0 ? ["users", "migrate-hashes", "--batch", "25"] : ["users", "migrate-hashes", "resume", "--batch", "25"];
      const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...args], { env: { ...process.env, ...env() }, stdio: ["ignore", "pipe", "pipe"] });
      const exited = new Promise<number | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal === "SIGKILL" ? null : _code)));
      let stderr = "";
      await new Promise<void>((resolve) => {
        child.stderr.setEncoding("utf8").on("data", (d: string) => {
          stderr += d;
          if (/(started|resuming) job/.test(stderr)) resolve();
        });
        child.on("exit", () => resolve());
      });
      await sleep(randomInt(50, 700));
      child.kill("SIGKILL");
      const code = await exited;
      const [job] = jobs();
      assert.ok(job, `a job exists after attempt ${attempt} (${stderr})`);
      // All-or-nothing batches: what is wrapped is exactly what the job says it committed.
      assert.equal(wrappedCount(), Number(job!["done"]), `after kill ${kills + 1}: wrapped hashes match the committed cursor`);
      if (code === null && job!["status"] === "running") kills++;
      t.diagnostic(`attempt ${attempt}: ${code === null ? "killed" : `exited ${code}`} at ${String(job!["done"])}/${String(job!["total"])} (${String(job!["status"])})`);
      if (job!["status"] === "done") break;
    }
    assert.ok(kills >= 3, `killed mid-run ${kills} times`);
    assert.equal(jobs().length, 1, "every run resumed the one job");

    const resumed = await run(["users", "migrate-hashes", "resume", "--json"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const result = JSON.parse(resumed.stdout);
    assert.deepEqual([result.status, result.done, result.total, result.counts.wrapped, result.counts.skipped ?? 0], ["done", 3008, 3008, 3008, 0]);

    const after = hashes();
    for (const [email, hash] of after) {
      assert.match(hash, /^\$bulwark-wrap\$v=1\$/, `${email} is wrapped`);
      assert.equal(hash.split("$argon2id$").length, 2, `${email} is wrapped exactly once`);
      if (/^[0-9a-f]{32}$/.test(before.get(email)!)) assert.ok(hash.startsWith("$bulwark-wrap$v=1$md5$$argon2id$"), `${email}: inner scheme md5`);
    }
    assert.ok(rows("SELECT password_scheme FROM users").every((r) => r["password_scheme"] === "bulwark-wrapped"));

    // Log in as a sample of users (all Drupal ones, 40 random MD5 ones) through the library's login core.
    const app = await openApp({ env: env() });
    try {
      const deps = { users: app.accounts.users, passwords: app.accounts.passwords, flood: app.accounts.flood, audit: app.audit, logger: app.logger, tag: (text: string) => app.keyring.identifierTag(text) };
      const sample = [...Object.keys(DRUPAL7_PASSWORDS), ...Array.from({ length: 40 }, () => `user${randomInt(LEGACY_USERS)}@example.org`)];
      for (const email of new Set(sample)) {
        const wrong = await login(deps, { identifier: email, password: `${passwords.get(email)!} `, ip: "192.0.2.10" });
        assert.deepEqual(wrong, { outcome: "invalid" }, `${email}: a wrong password is refused`);
        const result = await login(deps, { identifier: email, password: passwords.get(email)!, ip: "192.0.2.10" });
        // The Drupal export's blocked user answers like a wrong password (its status, not its hash).
        if (email === "blocked@example.org") assert.deepEqual(result, { outcome: "invalid" });
        else {
          assert.equal(result.outcome, "success", `${email} logs in with the right password`);
          assert.equal(result.outcome === "success" && result.rehashed, true, `${email}: the wrapped form becomes plain argon2id`);
        }
      }
    } finally {
      await app.close();
    }
    const verify = await bulwarkHere(["audit", "verify"], { env: env() });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const types = rows("SELECT type FROM audit_events WHERE type LIKE 'users.migrate-hashes.%'").map((r) => r["type"]);
    assert.ok(types.filter((t) => t === "users.migrate-hashes.resumed").length >= 3);
    assert.equal(types.filter((t) => t === "users.migrate-hashes.completed").length, 1);
    assert.equal(types.filter((t) => t === "users.migrate-hashes.batch").length, Math.ceil(3008 / 25), "each batch committed exactly once");

    // Idempotent: a new run finds nothing left to wrap.
    const again = await bulwarkHere(["users", "migrate-hashes", "--json"], { env: env() });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual([JSON.parse(again.stdout).total, JSON.parse(again.stdout).counts.wrapped ?? 0], [0, 0]);
    const census = JSON.parse((await bulwarkHere(["users", "census", "--json"], { env: env() })).stdout);
    assert.equal(census.weak, 0, "no user left on a weak scheme");
  });
});

describe("users migrate-hashes: two runs started at once", () => {
  it("share one job: one created event, one completion, every hash wrapped exactly once, done equals total", { timeout: 120_000 }, async () => {
    // Finding: two simultaneous runs each created a job, both hashed every user, both reported done
    // with done < total, and each wrote its own created and completed events.
    const own = mkdtempSync(join(tmpdir(), "bulwark-cli-migrate-twice-"));
    try {
      const ownEnv = { BULWARK_DATA_DIR: join(own, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
      assert.equal((await bulwarkHere(["init"], { env: ownEnv })).code, 0);
      const csv = join(own, "legacy.csv");
      writeFileSync(csv, ["email,password_hash", ...Array.from({ length: 300 }, (_, i) => `twice${i}@example.org,${md5(`twice ${i}`)}`)].join("\n") + "\n");
      assert.equal((await bulwarkHere(["users", "import", csv], { env: ownEnv })).code, 0);
      const [a, b] = await Promise.all([0, 1].map(() => bulwark(["users", "migrate-hashes", "--batch", "20", "--json"], { env: ownEnv })));
      assert.equal(a!.code, 0, a!.stderr);
      assert.equal(b!.code, 0, b!.stderr);
      const [ra, rb] = [JSON.parse(a!.stdout), JSON.parse(b!.stdout)];
      // Started together, the second joins the first's job. On a busy machine one process may start only
      // after the other finished: it then finds nothing left and its own job is empty (see "is idempotent").
      for (const r of [ra, rb]) assert.deepEqual([r.status, r.done], ["done", r.total]);
      assert.ok(ra.job === rb.job ? ra.total === 300 : [ra.total, rb.total].sort().join() === "0,300", `${ra.job} ${ra.total} / ${rb.job} ${rb.total}`);
      const db = new DatabaseSync(join(own, "data", "bulwark.db"), { readOnly: true });
      try {
        const all = (q: string): Array<Record<string, unknown>> => db.prepare(q).all() as Array<Record<string, unknown>>;
        const jobs = all("SELECT id, total FROM jobs WHERE kind = 'migrate-hashes'");
        assert.equal(jobs.filter((j) => Number(j["total"]) > 0).length, 1, "one job did the work: never two rivals hashing the same users");
        const types = all("SELECT type FROM audit_events WHERE type LIKE 'users.migrate-hashes.%'").map((r) => r["type"]);
        assert.equal(types.filter((t) => t === "users.migrate-hashes.created").length, jobs.length);
        assert.equal(types.filter((t) => t === "users.migrate-hashes.completed").length, jobs.length, "each job completed once");
        const stored = all("SELECT password_hash FROM users").map((r) => String(r["password_hash"]));
        assert.ok(stored.every((h) => h.startsWith("$bulwark-wrap$v=1$md5$$argon2id$") && h.split("$argon2id$").length === 2), "every hash wrapped exactly once");
      } finally {
        db.close();
      }
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });
});
