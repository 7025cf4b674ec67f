// `bulwark contain …` and `bulwark dev seed` end to end: exit codes, dry run, confirmation, status, list,
// undo, resume; the same commands against PostgreSQL when it is available.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { addressProblem } from "../src/notify/validate.ts";
import { bulwark, bulwarkHere } from "./helpers/cli.ts";


let dir: string;
const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-contain-cli-"));
  assert.equal((await bulwarkHere(["init"], { env: env() })).code, 0);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("dev seed", () => {
  it("seeds synthetic users with sessions and tokens, and refuses a database with real users", async () => {
    const r = await bulwark(["dev", "seed", "--users", "300", "--sessions-per-user", "2", "--tokens-per-user", "1", "--json"], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.users, 300);
    assert.ok(report.admins >= 1);
    assert.ok((report.byScheme.md5 ?? 0) + (report.byScheme.sha1 ?? 0) + (report.byScheme.bcrypt ?? 0) > 0, "some legacy hashes");
    assert.equal(report.sessions, 600);
    assert.equal(report.tokens, 300);
    assert.ok(report.mfa >= report.admins && report.mfa < 300, "every administrator and a few others have a second factor");
    const seeded = new DatabaseSync(join(dir, "data", "bulwark.db"), { readOnly: true });
    const rows = seeded.prepare("SELECT email, display_name FROM users").all() as Array<{ email: string; display_name: string }>;
    seeded.close();
    assert.deepEqual(rows.map((r) => [r.email, addressProblem(r.email)]).filter(([, problem]) => problem !== null), [], "every seeded address is one the outbox can mail");
    assert.ok(rows.some((r) => /[^\x00-\x7f]/.test(r.display_name)), "names keep their letters (müller)");
    const dry = await bulwarkHere(["contain", "revoke-sessions", "revoke-tokens", "--all", "--dry-run", "--json"], { env: env() });
    assert.equal(dry.code, 0, dry.stderr);
    const counts = JSON.parse(dry.stdout).levers;
    assert.deepEqual(counts["revoke-sessions"].counts, { users: 300, sessions: 600, stamps: 1 }, "the seeded sessions are live and in the table");
    assert.deepEqual(counts["revoke-tokens"].counts, { users: 300, tokens: 300, stamps: 1 });
    const mfaDry = await bulwarkHere(["contain", "require-mfa-reenrolment", "--all", "--dry-run", "--json"], { env: env() });
    assert.equal(mfaDry.code, 0, mfaDry.stderr);
    assert.equal(JSON.parse(mfaDry.stdout).levers["require-mfa-reenrolment"].counts.webauthn, report.mfa, "the seeded factors are what the lever would remove");
    assert.equal((await bulwarkHere(["dev", "seed", "--users", "0"], { env: env() })).code, 2);
    assert.equal((await bulwarkHere(["dev", "seed", "--users", "5", "--legacy-share", "2"], { env: env() })).code, 2);
    const real = await bulwarkHere(["users", "create", "--email", "real@example.org", "--generate-password"], { env: env() });
    assert.equal(real.code, 0, real.stderr);
    const refused = await bulwarkHere(["dev", "seed", "--users", "5"], { env: env() });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /real \(non-seeded\) users/);
    assert.equal((await bulwarkHere(["dev", "seed", "--users", "5", "--force"], { env: env() })).code, 0);
  });

  it("names the rule a refused number breaks, not just \"a number\"", async () => {
    for (const [args, message] of [
      [["--users", "-1"], /--users must be a whole number from 1 to 20000000; got "-1"/],
      [["--users", "0"], /--users must be a whole number from 1 to 20000000/],
      [["--users", "5", "--legacy-share", "2"], /--legacy-share must be a share between 0 and 1, such as 0\.3; got "2"/],
      [["--users", "5", "--sessions-per-user", "x"], /--sessions-per-user must be a whole number from 0 to 100; got "x"/],
    ] as const) {
      const r = await bulwarkHere(["dev", "seed", ...args], { env: env() });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
    }
  });
});

describe("contain", () => {
  it("status with no job yet answers so, exit 0 (was: exit 2, a usage error); a job over nobody says it changed nothing; list shows an unreadable job row as such instead of failing", async () => {
    const fresh = mkdtempSync(join(tmpdir(), "bulwark-contain-empty-"));
    try {
      const freshEnv = { ...env(), BULWARK_DATA_DIR: join(fresh, "data") };
      assert.equal((await bulwarkHere(["init"], { env: freshEnv })).code, 0);
      const status = await bulwarkHere(["contain", "status"], { env: freshEnv });
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /no containment jobs yet/);
      assert.equal((await bulwarkHere(["contain", "status", "--json"], { env: freshEnv })).stdout.trim(), "null");
      // A job over nobody ends having changed nothing, and says so (was: "nothing yet", as if it were still to act).
      const empty = await bulwarkHere(["contain", "lock-accounts", "--all", "--yes"], { env: freshEnv });
      assert.equal(empty.code, 0, empty.stderr);
      assert.match(empty.stdout, /done, 0\/0\n {2}lock-accounts: nothing changed/);
      // A damaged row (its spec is not JSON): listed as unreadable, the command still answers.
      const db = new DatabaseSync(join(fresh, "data", "bulwark.db"));
      db.prepare("INSERT INTO jobs (id, kind, status, spec, counts, cursor, total, done, actor, created_at, updated_at) VALUES ('job_damaged', 'contain', 'done', '{not json', '{}', NULL, 0, 0, 'cli:test', 1, 1)").run();
      db.close();
      const list = await bulwarkHere(["contain", "list"], { env: freshEnv });
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /job_damaged +contain +done +UNREADABLE: /);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it("refuses bad usage with exit 2: no lever, unknown lever, no scope, bad time, unreadable --ids", async () => {
    for (const args of [
      ["contain"],
      ["contain", "explode-everything", "--all"],
      ["contain", "expire-passwords"],
      ["contain", "expire-passwords", "--created-before", "yesterday"],
      ["contain", "expire-passwords", "--ids", join(dir, "missing.txt")],
      ["contain", "expire-passwords", "--all", "--scheme", "md5"],
      ["contain", "undo", "job_nope"],
      ["contain", "resume", "job_nope"],
    ]) {
      const r = await bulwarkHere(args, { env: env() });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^bulwark: /);
    }
  });

  it("refuses, with exit 2 and no job, a scope that would silently name nobody or the wrong users", async () => {
    const jobs = async (): Promise<number> => JSON.parse((await bulwarkHere(["contain", "list", "--json"], { env: env() })).stdout).length;
    const before = await jobs();
    const empty = join(dir, "empty-ids.txt");
    writeFileSync(empty, "# the breached accounts\n\n");
    for (const [args, message] of [
      [["contain", "lock-accounts", "--role", "admni", "--yes"], /unknown role "admni": nothing was done; known roles: .*\badmin\b/],
      [["contain", "lock-accounts", "--role", "admni", "--dry-run"], /unknown role "admni"/],
      [["contain", "lock-accounts", "--ids", empty, "--dry-run"], /--ids file lists no user ids or emails/],
      [["contain", "lock-accounts", "--created-before", "2026-02-30", "--dry-run"], /--created-before: "2026-02-30" is not a date: February 2026 has 28 days/],
      [["contain", "lock-accounts", "--active-between", "2026-04-31", "2026-05-02", "--dry-run"], /--active-between: "2026-04-31" is not a date: April 2026 has 30 days/],
    ] as const) {
      const r = await bulwarkHere([...args], { env: env() });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
    }
    assert.equal(await jobs(), before, "no job was created");
  });

  it("dry-runs, refuses more than 100 users without --yes on a non-terminal, then runs, lists, shows and undoes", async () => {
    const dry = await bulwarkHere(["contain", "expire-passwords", "lock-accounts", "--all", "--dry-run", "--json"], { env: env() });
    assert.equal(dry.code, 0, dry.stderr);
    const report = JSON.parse(dry.stdout);
    assert.equal(report.dryRun, true);
    assert.ok(report.users > 300);
    assert.equal(report.levers["lock-accounts"].counts.users, report.users);
    const refused = await bulwark(["contain", "lock-accounts", "--all"], { env: env() });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /pass --yes/);
    const ran = await bulwark(["contain", "expire-passwords", "lock-accounts", "--all", "--yes", "--json", "--incident", "inc_42", "--batch-size", "50"], { env: env() });
    assert.equal(ran.code, 0, ran.stderr);
    const job = JSON.parse(ran.stdout);
    assert.match(job.id, /^job_/);
    assert.equal(job.status, "done");
    assert.equal(job.counts["lock-accounts"].users, report.users);
    assert.equal(job.incidentId, "inc_42");
    const status = await bulwarkHere(["contain", "status", job.id, "--json"], { env: env() });
    assert.equal(JSON.parse(status.stdout).status, "done");
    const list = await bulwarkHere(["contain", "list", "--json"], { env: env() });
    assert.equal(JSON.parse(list.stdout)[0].id, job.id);
    assert.equal((await bulwarkHere(["contain", "resume", job.id], { env: env() })).code, 2, "a finished job has nothing to resume");
    const undo = await bulwarkHere(["contain", "undo", job.id, "--yes", "--json"], { env: env() });
    assert.equal(undo.code, 0, undo.stderr);
    const undone = JSON.parse(undo.stdout);
    assert.equal(undone.status, "done");
    assert.equal(undone.counts["lock-accounts"].restored, report.users);
    assert.deepEqual(undone.leftAlone, []);
    const after = await bulwarkHere(["contain", "lock-accounts", "--all", "--dry-run", "--json"], { env: env() });
    assert.equal(JSON.parse(after.stdout).levers["lock-accounts"].counts.users, report.users, "every lock was undone");
    const verify = await bulwarkHere(["audit", "verify"], { env: env() });
    assert.equal(verify.code, 0, verify.stderr);
  });

  it("takes an --ids file of ids and emails, and refuses to undo a job with no reversible lever", async () => {
    const file = join(dir, "ids.txt");
    writeFileSync(file, "# breached accounts\nREAL@example.org\n\nusr_doesnotexist\n");
    const dry = await bulwarkHere(["contain", "invalidate-passwords", "--ids", file, "--dry-run"], { env: env() });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /note: 1 --ids entries name no user and are left out: usr_doesnotexist/);
    assert.match(dry.stdout, /invalidate-passwords: users 1, resetEmailsQueued 1, resetEmailsRefused 0/, "the real run's count names");
    const r = await bulwarkHere(["contain", "invalidate-passwords", "--ids", file, "--json"], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    const job = JSON.parse(r.stdout);
    assert.equal(job.total, 1);
    assert.match(job.notes.join(" "), /1 --ids entries name no user and are left out: usr_doesnotexist/);
    assert.deepEqual(job.counts["invalidate-passwords"], { users: 1, resetEmailsQueued: 1, resetEmailsRefused: 0, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 0 });
    assert.match(job.notes.join(" "), /1 reset emails wait in the outbox: no SMTP is configured/);
    // The link is in the outbox, keyed by job and user, sent by the server once SMTP is configured.
    const db = new DatabaseSync(join(dir, "data", "bulwark.db"), { readOnly: true });
    try {
      const rows = db.prepare("SELECT to_address, body_text, idempotency_key FROM outbox_messages WHERE kind = 'account.containment-reset-link'").all() as Array<{ to_address: string; body_text: string; idempotency_key: string }>;
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.to_address, "real@example.org");
      // Sealed at rest under the keyring: a copy of the database holds no working link; the server opens it to send.
      assert.match(rows[0]?.body_text ?? "", /^sealed:bwk1\./);
      assert.doesNotMatch(rows[0]?.body_text ?? "", /prt_/);
      assert.match(rows[0]?.idempotency_key ?? "", new RegExp(`^account\\.containment-reset:${job.id}\\.\\d{10}:usr_`));
    } finally {
      db.close();
    }
    const again = await bulwarkHere(["contain", "invalidate-passwords", "--ids", file, "--json"], { env: env() });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout).counts["invalidate-passwords"], { users: 0, resetEmailsQueued: 0, resetEmailsRefused: 0, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 0 }, "already invalidated: no second mail");
    const undo = await bulwarkHere(["contain", "undo", job.id], { env: env() });
    assert.equal(undo.code, 2);
    assert.match(undo.stderr, /not reversible|none of its levers/);
  });
});

describe("contain undo: dry run, confirmation, and options that belong to other commands", () => {
  let udir: string;
  let jobId: string;
  const uenv = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(udir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent" });
  const db = (): DatabaseSync => new DatabaseSync(join(udir, "data", "bulwark.db"));
  // Accounts still locked by the job (the one re-locked by the fraud desk is not counted).
  const lockedByJob = (): number => {
    const d = db();
    try {
      return Number((d.prepare("SELECT count(*) AS n FROM users WHERE locked_at IS NOT NULL AND locked_reason = 'containment'").get() as { n: number }).n);
    } finally {
      d.close();
    }
  };
  const undoJobs = async (): Promise<number> => JSON.parse((await bulwarkHere(["contain", "list", "--json"], { env: uenv() })).stdout).filter((j: { kind: string }) => j.kind === "contain-undo").length;

  before(async () => {
    udir = mkdtempSync(join(tmpdir(), "bulwark-contain-undo-"));
    assert.equal((await bulwarkHere(["init"], { env: uenv() })).code, 0);
    assert.equal((await bulwarkHere(["dev", "seed", "--users", "150"], { env: uenv() })).code, 0);
    const ran = await bulwarkHere(["contain", "lock-accounts", "--all", "--yes", "--json"], { env: uenv() });
    assert.equal(ran.code, 0, ran.stderr);
    jobId = JSON.parse(ran.stdout).id;
    // One account is unlocked and locked again by someone else after the job: the undo must leave it alone.
    const d = db();
    try {
      d.prepare("UPDATE users SET locked_reason = 'fraud desk' WHERE id = (SELECT min(id) FROM users)").run();
    } finally {
      d.close();
    }
  });
  after(() => rmSync(udir, { recursive: true, force: true }));

  it("--dry-run restores nothing and reports what the undo would restore and leave alone (was: the real undo ran)", async () => {
    const before = lockedByJob();
    assert.equal(before, 149);
    const dry = await bulwarkHere(["contain", "undo", jobId, "--dry-run", "--json"], { env: uenv() });
    assert.equal(dry.code, 0, dry.stderr);
    const report = JSON.parse(dry.stdout);
    assert.equal(report.dryRun, true);
    assert.equal(report.undoOf, jobId);
    assert.deepEqual(report.counts, { "lock-accounts": { restored: 149, skipped: 1 } });
    assert.equal(report.leftAlone.length, 1);
    assert.equal(report.leftAlone[0].lever, "lock-accounts");
    assert.equal(lockedByJob(), before, "no account was unlocked");
    assert.equal(await undoJobs(), 0, "no undo job was created");
    const human = await bulwarkHere(["contain", "undo", jobId, "--dry-run"], { env: uenv() });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^dry run: .*nothing was changed$/m);
    assert.match(human.stdout, /lock-accounts: would restore 149, would leave alone 1/);
    assert.equal(lockedByJob(), before, "still no account unlocked");
  });

  it("resume and undo refuse contain's own options with exit 2 and do nothing (was: --dry-run swallowed, the job ran)", async () => {
    // A job that stopped (marked failed, as a lost connection leaves it): `resume` would run it.
    const other = await bulwarkHere(["contain", "revoke-tokens", "--all", "--yes", "--json"], { env: uenv() });
    assert.equal(other.code, 0, other.stderr);
    const stopped = JSON.parse(other.stdout).id as string;
    const d = db();
    try {
      d.prepare("UPDATE jobs SET status = 'failed' WHERE id = ?").run(stopped);
    } finally {
      d.close();
    }
    for (const args of [
      ["contain", "resume", stopped, "--dry-run"],
      ["contain", "--dry-run", "resume", stopped],
      ["contain", "resume", stopped, "--all"],
      ["contain", "undo", jobId, "--all"],
      ["contain", "undo", jobId, "--incident", "inc_1", "--yes"],
      ["contain", "status", jobId, "--role", "admin"],
    ]) {
      const r = await bulwarkHere(args, { env: uenv() });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^bulwark: contain (resume|undo|status) does not take --/, args.join(" "));
    }
    assert.equal(lockedByJob(), 149, "no account was unlocked");
    assert.equal(await undoJobs(), 0, "no undo job was created");
    const after = db();
    try {
      assert.equal((after.prepare("SELECT status FROM jobs WHERE id = ?").get(stopped) as { status: string }).status, "failed", "the stopped job was not resumed");
      assert.equal((after.prepare("SELECT count(*) AS n FROM audit_events WHERE type = 'contain.job.resumed'").get() as { n: number }).n, 0);
    } finally {
      after.close();
    }
  });

  it("undo above 100 users needs --yes when stdin is not a terminal, then restores what the dry run said", async () => {
    const refused = await bulwark(["contain", "undo", jobId], { env: uenv() });
    assert.equal(refused.code, 2, refused.stdout);
    assert.match(refused.stderr, /acts on 150 users \(more than 100\): pass --yes/);
    assert.equal(lockedByJob(), 149, "nothing was unlocked without confirmation");
    assert.equal(await undoJobs(), 0, "no undo job was created");
    const undo = await bulwark(["contain", "undo", jobId, "--yes", "--json"], { env: uenv() });
    assert.equal(undo.code, 0, undo.stderr);
    const job = JSON.parse(undo.stdout);
    assert.deepEqual(job.counts["lock-accounts"], { restored: 149, skipped: 1 }, "as the dry run reported");
    assert.equal(lockedByJob(), 0);
  });
});
