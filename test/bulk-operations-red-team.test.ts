// Red team, bulk and destructive operations (the CLI; the API too for a containment scope): the contract "bulk and
// destructive operations have a dry run, run in batches, survive a crash and resume; bad input always gets a clear
// error that names what is wrong, and never loses what is stored". Attacked this round: every dry run against a full
// dump of the store; a users import killed with SIGKILL mid-write and then resumed (and the dry run's forecast of that
// resume); bad input an operator types or a hostile export carries (a mistyped --scheme, a header whose columns no
// field maps); `roles delete`; `init` over a store whose key is gone; `audit checkpoint` and `audit rotate-signing-key
// --dry-run` over a chain whose head was moved back. The attacker: an operator's typo, a hostile or careless input
// file, someone who can write the database rows, and the crash at the worst moment. SQLite through the CLI: the killed
// import and its resume spawned, as an operator runs them; the other commands in this process (runCLI, the same
// program). Six findings were fixed the same day; their tests say "(was: …)".
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, existsSync, renameSync } from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { bulwarkHere, initSite, MAIN, type CLISite } from "./helpers/cli.ts";
import { openAPIFixture } from "./helpers/api-fixture.ts";
import { scratchRoot } from "./helpers/scratch.ts";

const { fresh } = scratchRoot("bulwark-bulk-rt-");

type Dump = Record<string, string>;

/** Every table of a data dir's SQLite database, row by row (as JSON), read-only. */
function dumpAll(dataDir: string): Dump {
  const db = new DatabaseSync(join(dataDir, "bulwark.db"), { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout = 10000");
    const out: Dump = {};
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>;
    for (const { name } of tables) out[name] = JSON.stringify(db.prepare(`SELECT * FROM "${name}"`).all());
    return out;
  } finally {
    db.close();
  }
}

/** The tables whose content differs between two dumps. */
function changedTables(before: Dump, after: Dump): string[] {
  return [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((t) => before[t] !== after[t]).sort();
}

/** Runs SQL against a data dir's database (the attacker with write access to the rows, or a test's setup). */
function write(dataDir: string, sqlText: string): void {
  const db = new DatabaseSync(join(dataDir, "bulwark.db"));
  try {
    db.exec(sqlText);
  } finally {
    db.close();
  }
}

const dataOf = (s: CLISite): string => join(s.dir, "data");


/** One number a query answers on a data dir's database (read-only). */
function scalar(dataDir: string, sqlText: string): number {
  const db = new DatabaseSync(join(dataDir, "bulwark.db"), { readOnly: true });
  try {
    return Number((db.prepare(sqlText).get() as { n: unknown } | undefined)?.n);
  } finally {
    db.close();
  }
}

/** A site with seeded users (legacy hashes, sessions, tokens, one administrator). */
async function seededSite(name: string, users = 40): Promise<CLISite> {
  const s = await initSite(fresh(name), { here: true });
  const seeded = await s.runHere(["dev", "seed", "--users", String(users), "--sessions-per-user", "1", "--tokens-per-user", "1", "--json"]);
  assert.equal(seeded.code, 0, seeded.stderr);
  return s;
}

/** A copy of a site's data dir, run with the same settings. */
function copyOf(s: CLISite, name: string): { env: NodeJS.ProcessEnv; data: string } {
  const data = join(fresh(name), "data");
  cpSync(dataOf(s), data, { recursive: true });
  return { env: { ...s.env, BULWARK_DATA_DIR: data }, data };
}

describe("bulk and destructive operations, red team", () => {
  it("attack: every dry run (import, migrate-hashes, set-email, roles delete, each lever, undo, requeue-dead, rotate-signing-key) leaves every table but the audit log byte for byte as it was, and appends at most its own event", async () => {
    const s = await seededSite("dry");
    const data = dataOf(s);
    // Something for every dry run to look at: a role with holders, a finished containment job to undo (it queued reset
    // mails), two of them dead in the outbox, an import file with new and existing accounts.
    assert.equal((await s.runHere(["roles", "create", "helpdesk", "--permission", "accounts.read"])).code, 0);
    const users = s.rows("SELECT id, email FROM users ORDER BY id LIMIT 6");
    for (const u of users.slice(0, 3)) assert.equal((await s.runHere(["roles", "grant", String(u["email"]), "helpdesk"])).code, 0);
    const ids = s.file("ids.txt", `${users.map((u) => u["id"]).join("\n")}\n`);
    const job = await s.runHere(["contain", "lock-accounts", "expire-passwords", "invalidate-passwords", "--ids", ids, "--json"]);
    assert.equal(job.code, 0, job.stderr);
    const jobId = String(JSON.parse(job.stdout).id);
    write(data, "UPDATE outbox_messages SET status = 'dead', attempts = 5, last_error = '550 no' WHERE id IN (SELECT id FROM outbox_messages ORDER BY id LIMIT 2)");
    const csv = s.file("in.csv", `email,password_hash\nfresh1@example.org,${createHash("md5").update("pw").digest("hex")}\n${users[4]!["email"]},\n`);

    const dryRuns: Array<{ args: string[]; events: string[] }> = [
      { args: ["users", "import", csv, "--on-conflict", "update", "--dry-run"], events: ["users.import.dry-run"] },
      { args: ["users", "migrate-hashes", "--dry-run"], events: ["users.migrate-hashes.dry-run"] },
      { args: ["users", "set-email", String(users[5]!["email"]), "moved@example.org", "--dry-run"], events: [] },
      { args: ["roles", "delete", "helpdesk", "--dry-run"], events: [] },
      ...["lock-accounts", "revoke-sessions", "revoke-tokens", "invalidate-passwords", "expire-passwords", "require-mfa-reenrolment", "unlink-sso", "demote-inactive-admins", "rotate-keys"]
        .map((lever) => ({ args: ["contain", lever, "--all", "--dry-run"], events: ["contain.dry-run"] })),
      { args: ["contain", "undo", jobId, "--dry-run"], events: ["contain.undo.dry-run"] },
      { args: ["outbox", "requeue-dead", "--dry-run"], events: [] },
      { args: ["audit", "rotate-signing-key", "--dry-run"], events: [] },
    ];
    for (const { args, events } of dryRuns) {
      const before = dumpAll(data);
      const r = await s.runHere(args);
      const after = dumpAll(data);
      const what = args.filter((a) => !a.startsWith("/")).join(" ");
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.match(r.stdout, /dry run/, `${what} says it is a dry run`);
      const changed = changedTables(before, after).filter((t) => t !== "audit_events" && t !== "audit_head");
      assert.deepEqual(changed, [], `${what} wrote to ${changed.join(", ")}`);
      const seqs = (d: Dump): Set<number> => new Set((JSON.parse(d["audit_events"] ?? "[]") as Array<{ seq: number }>).map((e) => e.seq));
      const old = seqs(before);
      const added = (JSON.parse(after["audit_events"] ?? "[]") as Array<{ seq: number; type: string }>).filter((e) => !old.has(e.seq)).map((e) => e.type);
      assert.deepEqual(added, events, `${what} appended only its own event`);
    }
  });

  it("attack: a users import killed with SIGKILL mid-write resumes: the dry run forecasts the rest, the re-run writes each row once, no line twice in the audit log, one completion", { timeout: 120_000 }, async () => {
    const s = await initSite(fresh("import-crash"), { here: true });
    const data = dataOf(s);
    const N = 12_000;
    const lines = ["email,password_hash"];
    for (let i = 0; i < N; i++) lines.push(`crash${i}@example.org,${createHash("md5").update(`pw${i}`).digest("hex")}`);
    const file = s.file("big.csv", `${lines.join("\n")}\n`);
    const command = ["users", "import", file, "--batch", "20"];

    const jobRow = (): { status: string; cursor: string | null; done: number } | null => {
      const db = new DatabaseSync(join(data, "bulwark.db"), { readOnly: true });
      try {
        db.exec("PRAGMA busy_timeout = 10000");
        const row = db.prepare("SELECT status, cursor, done FROM jobs WHERE kind = 'users-import'").get() as { status: string; cursor: string | null; done: number } | undefined;
        return row ? { ...row, done: Number(row.done) } : null;
      } finally {
        db.close();
      }
    };
    const childEnv = { ...process.env };
    for (const key of ["BULWARK_DATA_DIR", "BULWARK_DATABASE_URL", "BULWARK_MASTER_KEY"]) delete childEnv[key];
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...command], { env: { ...childEnv, ...s.env }, stdio: "ignore" });
    let exited = false;
    const ended = new Promise<void>((resolve) => child.on("exit", () => {
      exited = true;
      resolve();
    }));
    // Killed once a few batches have committed: mid-write, past the validation pass.
    for (;;) {
      if (exited) break;
      const j = jobRow();
      if (j && j.done >= 200) break;
      await sleep(5);
    }
    assert.equal(exited, false, "the import ended before it could be killed mid-write (make the file longer)");
    child.kill("SIGKILL");
    await ended;
    const killed = jobRow();
    assert.ok(killed && killed.done > 0 && killed.done < N, `killed mid-write: ${JSON.stringify(killed)}`);
    const written = Number(s.rows("SELECT count(*) AS n FROM users")[0]!["n"]);
    assert.ok(written > 0 && written < N, `${written} users written before the kill`);

    // The dry run names the interrupted job and what the resume would still create.
    // The dry run and the resume after the crash are spawned, as an operator runs them.
    const dry = await s.run([...command, "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    const forecast = JSON.parse(dry.stdout) as { created: number; resumedAfterLine: number | null; alreadyImported: number };
    assert.notEqual(forecast.resumedAfterLine, null, "the dry run sees the interrupted import");
    assert.equal(forecast.created, N - written, "the dry run forecasts exactly the rows not yet written");

    const resumed = await s.run([...command, "--json"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const report = JSON.parse(resumed.stdout) as { created: number; resumedAfterLine: number | null };
    assert.notEqual(report.resumedAfterLine, null, "the re-run resumed the interrupted job");
    assert.equal(report.created, forecast.created, "the resume created what the dry run forecast");

    const emails = s.rows("SELECT email FROM users").map((r) => String(r["email"]));
    assert.equal(emails.length, N, "every row written");
    assert.equal(new Set(emails).size, N, "no row written twice");
    // Each line of the file is in exactly one committed batch's audit event; the counts add up; one completion.
    const batches = s.rows("SELECT data FROM audit_events WHERE type = 'users.import.batch' ORDER BY seq").map((r) => JSON.parse(String(r["data"])) as { lines: string; created: number });
    const covered = new Map<number, number>();
    for (const b of batches) {
      const [from, to] = b.lines.split("-").map(Number) as [number, number];
      for (let line = from; line <= to; line++) covered.set(line, (covered.get(line) ?? 0) + 1);
    }
    assert.equal(covered.size, N, "every data line is in a batch event");
    assert.ok([...covered.values()].every((n) => n === 1), "no line in two batch events");
    assert.equal(batches.reduce((n, b) => n + b.created, 0), N, "the batch events count each account once");
    assert.equal(s.rows("SELECT count(*) AS n FROM audit_events WHERE type = 'users.import.completed'")[0]!["n"], 1);
    assert.equal(jobRow()?.status, "done");
    const verify = await s.runHere(["audit", "verify"]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  it("attack: a mistyped --scheme (phppas for phpass) is refused like a mistyped --role — exit 2 / HTTP 400 naming the scheme and the known ones, no job (ASVS 2.2.1) (was: a containment job over nobody that reported done, exit 0 / 202)", async () => {
    const s = await seededSite("scheme", 60);
    const legacy = Number(s.rows("SELECT count(*) AS n FROM users WHERE password_scheme = 'md5'")[0]!["n"]);
    assert.ok(legacy > 0, "the seed holds md5 accounts: `--scheme md5` names real accounts");
    const control = await s.runHere(["contain", "lock-accounts", "--scheme", "md5", "--dry-run", "--json"]);
    assert.equal(JSON.parse(control.stdout).users, legacy);
    // The role typo is refused, naming it: the rule a scheme typo should meet too.
    const role = await s.runHere(["contain", "lock-accounts", "--role", "admni", "--dry-run"]);
    assert.equal(role.code, 2);
    assert.match(role.stderr, /admni/);

    const before = dumpAll(dataOf(s));
    const cli = [];
    for (const args of [["--dry-run"], ["--yes"]]) cli.push({ args, ...(await s.runHere(["contain", "lock-accounts", "--scheme", "phppas", ...args])) });
    const jobs = s.rows("SELECT id FROM jobs WHERE kind = 'contain'");
    const changed = changedTables(before, dumpAll(dataOf(s))).filter((t) => t !== "audit_events" && t !== "audit_head");

    // The API takes the same scope through the same library.
    const fx = await openAPIFixture();
    try {
      const responder = await fx.user(["contain.run", "accounts.read"]);
      const token = await fx.token(responder.id, ["contain.run"]);
      const api = [];
      for (const dryRun of [true, false]) {
        const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { scheme: "phppas" }, dryRun } });
        api.push({ dryRun, status: res.statusCode, body: res.body });
      }
      for (const r of cli) {
        assert.equal(r.code, 2, `contain --scheme phppas ${r.args.join(" ")} exited ${r.code}: ${r.stdout.trim()}`);
        assert.match(r.stderr, /phppas/, "the message names the unknown scheme");
      }
      assert.deepEqual(jobs, [], "no job over nobody was created");
      assert.deepEqual(changed, []);
      for (const r of api) {
        assert.equal(r.status, 400, `POST /api/v1/contain/jobs scope.scheme "phppas" (dryRun ${r.dryRun}) answered ${r.status}: ${r.body.slice(0, 200)}`);
        assert.match(r.body, /phppas/);
      }
    } finally {
      await fx.close();
    }
  });

  it("attack: an import whose header has columns no field maps (Status, password) is refused naming them, with --map and --ignore-columns as the ways out, writing nothing (ASVS 2.2.1, 2.2.3) (was: dropped silently: an account blocked at the source was created active, without its password hash)", async () => {
    const s = await initSite(fresh("columns"), { here: true });
    const md5 = createHash("md5").update("hunter2").digest("hex");
    // An export as another system writes it: its own capitalisation and its own name for the hash column.
    const file = s.file("export.csv", `email,Status,password\nbanned@example.org,blocked,${md5}\nok@example.org,active,${md5}\n`);
    const dry = await s.runHere(["users", "import", file, "--dry-run"]);
    const real = await s.runHere(["users", "import", file]);
    const banned = s.rows("SELECT status, password_hash FROM users WHERE email = 'banned@example.org'")[0];
    if (real.code === 0) {
      // Imported: then the columns were read, not dropped.
      assert.equal(banned?.["status"], "disabled", `an account blocked at the source was imported ${String(banned?.["status"])}, its "Status" column ignored`);
      assert.notEqual(banned?.["password_hash"], null, 'its "password" column was ignored: the account has no password');
    } else {
      assert.equal(real.code, 2);
      assert.match(real.stderr, /Status/, "the refusal names the column no field takes");
      assert.deepEqual(s.rows("SELECT id FROM users"), [], "a refused import writes nothing");
    }
    assert.match(dry.stdout + dry.stderr, /Status/, "the dry run names the column it would not read");
  });

  it("attack: roles delete ends each holder's grant in that holder's audit trail (role.revoked per holder, role.deleted with the count), in the deletion's transaction (ASVS 16.2.1, 16.3.3) (was: only role.deleted, naming none of them)", async () => {
    const s = await seededSite("role-delete", 10);
    assert.equal((await s.runHere(["roles", "create", "helpdesk", "--permission", "accounts.write"])).code, 0);
    const holders = s.rows("SELECT id, email FROM users ORDER BY id LIMIT 3");
    for (const h of holders) assert.equal((await s.runHere(["roles", "grant", String(h["email"]), "helpdesk"])).code, 0);
    const dry = await s.runHere(["roles", "delete", "helpdesk", "--dry-run"]);
    assert.match(dry.stdout, /would take it from 3 users/);
    const lastSeq = Number(s.rows("SELECT max(seq) AS n FROM audit_events")[0]!["n"]);
    const r = await s.runHere(["roles", "delete", "helpdesk", "--yes"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(s.rows("SELECT count(*) AS n FROM user_roles WHERE role = 'helpdesk'")[0]!["n"], 0, "the holders lost the role");
    const events = s.rows(`SELECT type, subject, data FROM audit_events WHERE seq > ${lastSeq}`);
    for (const h of holders) {
      const id = String(h["id"]);
      const named = events.some((e) => e["subject"] === id || String(e["data"]).includes(id));
      assert.ok(named, `no audit event names ${id} losing helpdesk (events: ${events.map((e) => `${e["type"]} ${e["subject"]} ${e["data"]}`).join(" | ")})`);
    }
  });

  it("attack: init over a store whose master key is missing or another is refused, naming the key, with no key minted and no row changed", async () => {
    const s = await seededSite("init-over", 5);
    const data = dataOf(s);
    // Something encrypted under the current key: reset mails a containment job queued.
    const ids = s.file("ids.txt", `${s.rows("SELECT id FROM users LIMIT 2").map((r) => r["id"]).join("\n")}\n`);
    assert.equal((await s.runHere(["contain", "invalidate-passwords", "--ids", ids])).code, 0);
    const before = dumpAll(data);
    renameSync(join(data, "master.key"), join(s.dir, "master.key.moved"));
    const missing = await s.runHere(["init"]);
    assert.equal(missing.code, 2, missing.stdout);
    assert.match(missing.stderr, /master\.key/);
    assert.match(missing.stderr, /BULWARK_MASTER_KEY/);
    assert.equal(existsSync(join(data, "master.key")), false, "no new key file over a store the old one encrypted");
    const other = await bulwarkHere(["init"], { env: { ...s.env, BULWARK_MASTER_KEY: randomBytes(32).toString("base64") } });
    assert.equal(other.code, 2, other.stdout);
    assert.match(other.stderr, /master key/);
    assert.deepEqual(changedTables(before, dumpAll(data)), [], "neither refusal changed a row");
    renameSync(join(s.dir, "master.key.moved"), join(data, "master.key"));
    assert.equal((await s.runHere(["audit", "verify"])).code, 0);
  });

  it("attack: audit checkpoint over a chain whose head was moved back is refused, naming the head and repair-head, storing nothing (ASVS 16.4.2) (was: a checkpoint signed at the old head, exit 0, though verify called the chain broken)", async () => {
    const s = await seededSite("checkpoint-behind", 5);
    const { env, data } = copyOf(s, "checkpoint-behind-copy");
    const newest = scalar(data, "SELECT max(seq) AS n FROM audit_events");
    // The head moved back five events (the rows past it left in place): appends now fail, verify says BROKEN.
    write(data, `UPDATE audit_head SET seq = ${newest - 5}, hash = (SELECT hash FROM audit_events WHERE seq = ${newest - 5}) WHERE id = 1`);
    const verify = await bulwarkHere(["audit", "verify"], { env: env });
    assert.equal(verify.code, 1, "verify calls the chain broken");
    const before = dumpAll(data);
    const cp = await bulwarkHere(["audit", "checkpoint", "--json"], { env: env });
    assert.notEqual(cp.code, 0, `audit checkpoint exited 0 over a broken chain and printed ${cp.stdout.trim().replace(/\s+/g, " ")}`);
    assert.match(cp.stderr, /head/, "the refusal names the head problem (and the repair)");
    assert.deepEqual(changedTables(before, dumpAll(data)), [], "no checkpoint stored at the moved-back head");
  });

  it("attack: audit checkpoint over a chain whose head row was deleted fails with the missing head, not 'the log is empty' (ASVS 16.4.2) (was: exit 0, nothing to checkpoint)", async () => {
    const s = await seededSite("checkpoint-headless", 5);
    const { env, data } = copyOf(s, "checkpoint-headless-copy");
    write(data, "DELETE FROM audit_head");
    const events = scalar(data, "SELECT count(*) AS n FROM audit_events");
    assert.ok(events > 10);
    const cp = await bulwarkHere(["audit", "checkpoint"], { env: env });
    assert.doesNotMatch(cp.stdout, /the audit log is empty/, `the log holds ${events} events`);
    assert.notEqual(cp.code, 0, "a missing head is a broken chain (exit 1) or a failure (exit 3), never success");
  });

  it("attack: audit rotate-signing-key --dry-run over a head moved back fails as the real run does, naming the head (was: the dry run promised a rotation the real run then refused)", async () => {
    const s = await seededSite("rotate-dry", 5);
    const { env, data } = copyOf(s, "rotate-dry-copy");
    const newest = scalar(data, "SELECT max(seq) AS n FROM audit_events");
    write(data, `UPDATE audit_head SET seq = ${newest - 3}, hash = (SELECT hash FROM audit_events WHERE seq = ${newest - 3}) WHERE id = 1`);
    const dry = await bulwarkHere(["audit", "rotate-signing-key", "--dry-run"], { env: env });
    const real = await bulwarkHere(["audit", "rotate-signing-key"], { env: env });
    assert.notEqual(real.code, 0, "the real rotation cannot append its event over this chain");
    assert.match(real.stderr, /head/);
    assert.notEqual(dry.code, 0, `the dry run exited 0 (${dry.stdout.trim()}) though the real run then failed (${real.code}: ${real.stderr.trim()})`);
    assert.match(dry.stdout + dry.stderr, /head/, "the dry run names what the real run would meet");
  });
});
