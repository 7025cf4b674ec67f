// Crash test (issue 5): a 200,000-user containment job (expire-passwords, revoke-sessions, lock-accounts over
// --all) is killed with SIGKILL at random points at least five times and resumed each time; its end state must
// equal that of an uninterrupted run on an identical copy of the database, no batch may be applied twice, and
// the audit chain must verify. SQLite only: seeding and running 200,000 users twice on PostgreSQL would take
// minutes; the claim/resume logic is the same code, and PostgreSQL resume and sharing are tested in
// contain-levers.test.ts and contain-revoke.test.ts.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, it } from "node:test";
import { bulwark, MAIN } from "./helpers/cli.ts";

const USERS = Number(process.env["BULWARK_CRASH_USERS"] ?? 200_000);
const KILLS = 5;
const COMMAND = ["contain", "expire-passwords", "revoke-sessions", "lock-accounts", "--all", "--yes", "--json"];

let dir: string;
const dataA = (): string => join(dir, "a");
const dataB = (): string => join(dir, "b");
const env = (data: string): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: data, BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });

before(() => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-contain-crash-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function start(args: string[], data: string): ChildProcess {
  const childEnv = { ...process.env, ...env(data) };
  delete childEnv["BULWARK_DATABASE_URL"];
  delete childEnv["BULWARK_MASTER_KEY"];
  return spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...args], { env: childEnv, stdio: "ignore" });
}

/** The containment job of a data dir (at most one exists in this test), read directly from the file. */
function jobOf(data: string): { id: string; status: string; done: number; total: number; spec: { at: number }; counts: string } | null {
  const db = new DatabaseSync(join(data, "bulwark.db"), { readOnly: true });
  try {
    const row = db.prepare("SELECT id, status, done, total, spec, counts FROM jobs WHERE kind = 'contain'").get() as Record<string, string | number> | undefined;
    return row ? { id: String(row["id"]), status: String(row["status"]), done: Number(row["done"]), total: Number(row["total"]), spec: JSON.parse(String(row["spec"])), counts: String(row["counts"]) } : null;
  } finally {
    db.close();
  }
}

/** A digest of everything the job changes, with the job's own action time replaced by "AT" (the two runs differ in it). */
function endState(data: string): Record<string, unknown> {
  const job = jobOf(data);
  assert.ok(job, `no job in ${data}`);
  const at = job.spec.at;
  const db = new DatabaseSync(join(data, "bulwark.db"), { readOnly: true });
  try {
    const digest = (sql: string): { rows: number; sha256: string } => {
      const h = createHash("sha256");
      let rows = 0;
      for (const r of db.prepare(sql).iterate()) {
        h.update(JSON.stringify(r).replaceAll(String(at), "AT")).update("\n");
        rows++;
      }
      return { rows, sha256: h.digest("hex") };
    };
    return {
      status: job.status, done: job.done, total: job.total, counts: JSON.parse(job.counts),
      users: digest("SELECT id, password_must_change, locked_at, locked_reason FROM users ORDER BY id"),
      sessions: digest("SELECT id, user_id FROM sessions ORDER BY id"),
      changes: digest("SELECT lever, user_id, entity, before, after FROM contain_changes ORDER BY lever, user_id, entity"),
      scope: digest("SELECT seq, user_id FROM contain_job_users ORDER BY seq"),
    };
  } finally {
    db.close();
  }
}

/** The stage (and batch number, for batches of users) of the job's committed step events, in order of the chain. */
function batchEvents(data: string, jobId: string): Array<{ stage: string; batch?: number }> {
  const db = new DatabaseSync(join(data, "bulwark.db"), { readOnly: true });
  try {
    return (db.prepare("SELECT data FROM audit_events WHERE type = 'contain.job.batch' AND subject = ? ORDER BY seq").all(jobId) as Array<{ data: string }>)
      .map((r) => JSON.parse(r.data) as { stage: string; batch?: number });
  } finally {
    db.close();
  }
}

it(`a ${USERS}-user job killed with SIGKILL ${KILLS}+ times resumes to the uninterrupted end state, and the audit chain verifies`, { timeout: 600_000 }, async (t) => {
  assert.equal((await bulwark(["init"], { env: env(dataA()) })).code, 0);
  const seeded = await bulwark(["dev", "seed", "--users", String(USERS), "--sessions-per-user", "1", "--json"], { env: env(dataA()) });
  assert.equal(seeded.code, 0, seeded.stderr);
  // Identical second database: the same file (and key), copied while nothing has it open.
  cpSync(dataA(), dataB(), { recursive: true });

  const began = performance.now();
  const straight = await bulwark(COMMAND, { env: env(dataB()) });
  const runMs = performance.now() - began;
  assert.equal(straight.code, 0, straight.stderr);
  assert.equal(JSON.parse(straight.stdout).status, "done");
  t.diagnostic(`uninterrupted run: ${Math.round(runMs)} ms`);

  let kills = 0;
  let midJob = 0;
  for (let attempt = 0; kills < KILLS && attempt < 50; attempt++) {
    const job = jobOf(dataA());
    if (job?.status === "done") break;
    const child = start(job ? ["contain", "resume", job.id, "--json"] : COMMAND, dataA());
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    // A random moment inside what is left of the work (the process needs part of it just to start).
    const left = job && job.total > 0 ? 1 - job.done / job.total : 1;
    const delay = 200 + Math.random() * runMs * left * 0.6;
    const timer = new Promise<"kill">((resolve) => setTimeout(() => resolve("kill"), delay));
    if ((await Promise.race([exited, timer])) === "kill") {
      child.kill("SIGKILL");
      await exited;
      kills++;
      const now = jobOf(dataA());
      if (now && now.done > 0 && now.done < now.total) midJob++;
      t.diagnostic(`kill ${kills} after ${Math.round(delay)} ms: ${now ? `${now.done}/${now.total} done` : "no job yet"}`);
    }
  }
  assert.ok(kills >= KILLS, `killed ${kills} times`);
  assert.ok(midJob >= 1, "at least one kill landed between batches of a started job");
  const job = jobOf(dataA());
  assert.ok(job, "the job was created");
  if (job.status !== "done") {
    const finish = await bulwark(["contain", "resume", job.id, "--json"], { env: env(dataA()) });
    assert.equal(finish.code, 0, finish.stderr);
  }

  const a = endState(dataA());
  const b = endState(dataB());
  assert.equal(a["status"], "done");
  assert.deepEqual(a, b, "the resumed job ends exactly where the uninterrupted one did");
  assert.deepEqual(a["counts"], { "lock-accounts.users": USERS, "revoke-sessions.users": USERS, "revoke-sessions.sessions": USERS, "expire-passwords.users": USERS });
  const events = batchEvents(dataA(), job.id);
  // On SQLite an --all revoke-sessions deletes the sessions in one step of its own (a table rebuild), first.
  assert.deepEqual(events.filter((e) => e.stage !== "users").map((e) => e.stage), ["revoke-sessions (all users at once)"], "the whole-table step committed exactly once");
  const batches = events.filter((e) => e.stage === "users").map((e) => e.batch as number);
  assert.deepEqual([...batches].sort((x, y) => x - y), Array.from({ length: Math.ceil(USERS / 1000) }, (_, i) => i), "every batch committed exactly once");
  for (const data of [dataA(), dataB()]) {
    const verify = await bulwark(["audit", "verify"], { env: env(data) });
    assert.equal(verify.code, 0, verify.stderr + verify.stdout);
  }
});
