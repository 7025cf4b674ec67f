// Red-team round "bounded waits e": the PostgreSQL wait bounds (every pooled connection starts with lock_timeout
// BULWARK_DB_LOCK_TIMEOUT_SECONDS, LOCK_TIMEOUT_MS = 5 s by default, 2 s in this file; past it the statement's
// transaction rolls back, and a CLI exits 3 BULWARK_ERR_DB_BUSY "try again shortly"), part five: the CLI's bulk and
// key commands. The attacker is the environment at the worst moment, or
// anyone who can hold a row past the bound (a frozen node inside a transaction, a DBA's open session): a second,
// superuser pg client on the same schema holds the audit log's head or a row while a `bulwark` command waits on it.
// Not repeated: the HTTP routes, the outbox sender, touches, the maintenance pass, rotate-master (rounds one to four);
// containment jobs (being changed elsewhere).
// What must hold: nothing half-done, the failure named (exit 3, BULWARK_ERR_DB_BUSY's "try again") and the retry it
// asks
// for works, no orphan rows, the audit chain verifies afterwards.
// Tried: `users import` whose second batch meets a held account row; `users import` whose completion record meets the
// head taken right after its last batch committed (a trigger gate on the job's move to done makes the timing
// deterministic); `users migrate-hashes` whose last batch meets a held account row, and whose completion meets the head
// taken the same way; `audit rotate-signing-key` behind a held head; `roles grant … admin` behind a held head; `users
// create --role admin` whose grant meets the admin role's lock held past the bound.
// Held: the import's batches (exit 3, the committed batch whole, the refused one not at all, the rerun resumes after it
// and imports each row once); migrate-hashes (batch: exit 3, earlier wraps committed and counted, no hash lost, the
// rerun resumes the same job and wraps each hash once; completion: one transaction, so the job stays running and the
// rerun completes it, recorded once); rotate-signing-key (one transaction: no key, checkpoint or event, verify passes,
// the rerun rotates once); roles grant (no grant, event or notice; the rerun grants with both); users create's account
// and the grant that did not happen (no grant, event or notice; `roles grant` finishes it).
// Found (fixed since: (1) importer.ts marks the job done and records users.import.completed in one transaction, as
// migrate-hashes' complete() does, so a refused completion leaves the job unfinished for the rerun to resume; (2) users
// create maps a grant's failure, and the roles-incomplete append's, through storeBusyError): (1) `users import` marked
// its job done (finishIfUnfinished) and then appended users.import.completed in a separate statement: a busy head at that moment exits 3 "try again" after every row committed, the job is done with
// no completion event, and the rerun the message asks for meets every row as an existing account (exit 2, "bad rows,
// nothing imported") instead of resuming; docs/password-migration.md promises a rerun after a run that died resumes.
// (2) `users create --role admin` whose grant fails past the bound records user.roles-incomplete with code
// BULWARK_ERR_INTERNAL and prints the driver's "canceling statement due to lock timeout": the busy store is not named
// (the catch takes the raw pg error, never mapped through storeBusyError).
// Loopback and temp dirs only; skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type pg from "pg";
import { lockKeyOf } from "../src/store/database.ts";
import { bulwarkInProcess, fixtureCliEnv } from "./helpers/cli.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { HOLD_AUDIT_HEAD, pgSites, until, within, type PgSite, holdRows } from "./helpers/pg-site.ts";

const MASTER = testMasterKey("bounded-waits-e-red-team");
// Every test here waits out the bound at least once: a 2 s bound (the sites' and, through lockEnv, the CLI runs').
const { unavailable, site, lockBoundMs, lockEnv } = pgSites("bwaite", MASTER, { lockTimeoutSeconds: 2 });
/** Real time a CLI run behind a held row takes to be refused, with room (a command may wait more than once). */
const PAST_BOUND_MS = 2 * lockBoundMs + 5_000;
const skip = unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {};
const BUSY = /try again/;
const files = mkdtempSync(join(tmpdir(), "bwaite-"));
after(() => rmSync(files, { recursive: true, force: true }));
let written = 0;
const md5 = (text: string): string => createHash("md5").update(text).digest("hex");

type Run = { code: number; stdout: string; stderr: string };

/** A CLI run's environment on the site's PostgreSQL schema, with the file's lock bound. */
const cliEnv = (s: PgSite): NodeJS.ProcessEnv => ({ ...fixtureCliEnv(s.fx.app.config.dataDir, { url: s.url, masterKey: MASTER }), ...lockEnv });

/** `bulwark ARGS` in this process on the site's PostgreSQL schema; fails the test if it has not answered in PAST_BOUND_MS. */
async function cli(s: PgSite, args: string[]): Promise<Run> {
  const answered = await within(bulwarkInProcess(args, cliEnv(s)), PAST_BOUND_MS);
  assert.ok(answered, `\`bulwark ${args.join(" ")}\` did not answer within ${PAST_BOUND_MS} ms (a wait without bound)`);
  return answered;
}

function csvFile(text: string): string {
  const file = join(files, `legacy-${++written}.csv`);
  writeFileSync(file, text);
  return file;
}

async function count(dba: pg.Client, query: string, params: unknown[] = []): Promise<number> {
  return Number((await dba.query<{ n: string }>(query, params)).rows[0]?.n ?? 0);
}

async function eventsOf(dba: pg.Client, type: string): Promise<Array<{ subject: string; data: Record<string, unknown> }>> {
  const rows = (await dba.query<{ subject: string; data: string }>("SELECT subject, data FROM audit_events WHERE type = $1 ORDER BY seq", [type])).rows;
  return rows.map((r) => ({ subject: r.subject, data: JSON.parse(r.data) as Record<string, unknown> }));
}

async function chainVerifies(s: PgSite): Promise<void> {
  const report = await s.fx.app.audit.verify();
  assert.equal(report.ok, true, `the audit chain verifies afterwards: ${JSON.stringify(report).slice(0, 400)}`);
}

function busy(run: Run, what: string): void {
  assert.equal(run.code, 3, `${what} exits 3 (the store busy), got ${run.code}: ${run.stderr}${run.stdout}`);
  assert.match(run.stderr, BUSY, `${what} says to try again: ${run.stderr}`);
}

const GATE = 4_242_042;

/**
 * A gate on a job's move to done: the node's finishing UPDATE waits on an advisory lock the DBA holds (a trigger on
 * `jobs`), so the DBA knows every batch before it has committed. `open()` waits until the node stands at the gate, takes
 * the audit head in the DBA's transaction and lets the node on (a frozen node's timing, made deterministic; the gate is
 * let go well within the bound). `release()` lets the head go and removes the gate.
 */
async function finishGate(dba: pg.Client): Promise<{ open(): Promise<void>; release(): Promise<void> }> {
  await dba.query(`CREATE FUNCTION bwaite_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock(${GATE}); RETURN NEW; END $$`);
  await dba.query("CREATE TRIGGER bwaite_gate BEFORE UPDATE ON jobs FOR EACH ROW WHEN (NEW.status = 'done' AND OLD.status <> 'done') EXECUTE FUNCTION bwaite_gate()");
  await dba.query("SELECT pg_advisory_lock($1)", [GATE]);
  return {
    async open() {
      const gated = await until(async () => (await count(dba, "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")) > 0, 20_000);
      assert.ok(gated, "control: the command reached its finishing step");
      await dba.query("BEGIN");
      await dba.query(HOLD_AUDIT_HEAD);
      await dba.query("SELECT pg_advisory_unlock($1)", [GATE]);
    },
    async release() {
      await dba.query("ROLLBACK");
      await dba.query("SELECT pg_advisory_unlock_all()");
      await dba.query("DROP TRIGGER bwaite_gate ON jobs");
    },
  };
}

describe("`users import` behind a held row or head (PostgreSQL)", skip, () => {
  it("attack: a DBA's open transaction holds an account row the second batch of an --on-conflict update import must change — exit 3 named busy, the first batch stays imported whole, nothing of the second, and the rerun resumes and imports each row once (ASVS 16.5.3, 16.5.2)", async () => {
    const s = await site();
    try {
      const held = await s.fx.user("held-import@example.org");
      const file = csvFile(["email,display_name", "imp-a1@example.org,A1", "imp-a2@example.org,A2", "held-import@example.org,Held", "imp-a3@example.org,A3", "imp-a4@example.org,A4"].join("\n") + "\n");
      const release = await holdRows(s.dba, "SELECT id FROM users WHERE id = $1 FOR UPDATE", [held.id]);
      let first: Run;
      try {
        first = await cli(s, ["users", "import", file, "--on-conflict", "update", "--batch", "2", "--json"]);
      } finally {
        await release();
      }
      busy(first, "an import whose batch waited past the bound");
      const present = async (email: string): Promise<number> => count(s.dba, "SELECT count(*) AS n FROM users WHERE email = $1", [email]);
      assert.deepEqual([await present("imp-a1@example.org"), await present("imp-a2@example.org"), await present("imp-a3@example.org"), await present("imp-a4@example.org")], [1, 1, 0, 0],
        "the first batch committed whole, the refused batch and those after it wrote nothing");
      assert.equal((await eventsOf(s.dba, "users.import.batch")).length, 1, "one users.import.batch event: the committed batch's");

      const rerun = await cli(s, ["users", "import", file, "--on-conflict", "update", "--batch", "2", "--json"]);
      assert.equal(rerun.code, 0, `the rerun the failure asked for imports the rest: ${rerun.stderr}`);
      const report = JSON.parse(rerun.stdout) as { created: number; updated: number; resumedAfterLine: number | null };
      assert.equal(report.resumedAfterLine, 3, "the rerun resumes after the last line the committed batch wrote");
      assert.equal(report.created, 2, "the rerun creates the two rows left, not the first batch again");
      for (const email of ["imp-a1@example.org", "imp-a2@example.org", "imp-a3@example.org", "imp-a4@example.org"]) assert.equal(await present(email), 1, `${email} imported once`);
      const batches = await eventsOf(s.dba, "users.import.batch");
      assert.equal(batches.reduce((n, e) => n + Number(e.data["created"]), 0), 4, "four accounts created over the batches' events, each once");
      assert.equal((await eventsOf(s.dba, "users.import.completed")).length, 1, "the import is recorded as completed once");
      await chainVerifies(s);
    } finally {
      await s.close();
    }
  });

  it("attack: the DBA takes the audit head right after an import's last batch commits (the node freezes between the batch and the import's completion) — the failure's \"try again\" is true: the job stays unfinished and the rerun completes the import (users.import.completed recorded once) instead of meeting its own rows as conflicts (ASVS 16.5.3, 16.3.1) (was: the job was marked done before the event was refused, and the rerun started a new job that met every row as an existing account, exit 2)", async () => {
    const s = await site();
    try {
      const gate = await finishGate(s.dba);
      const file = csvFile(["email,display_name", "done-a1@example.org,A1", "done-a2@example.org,A2"].join("\n") + "\n");
      const running = bulwarkInProcess(["users", "import", file, "--json"], cliEnv(s));
      await gate.open();
      const first = await within(running, PAST_BOUND_MS);
      await gate.release();
      assert.ok(first, "the import answered within the bound");
      const present = async (email: string): Promise<number> => count(s.dba, "SELECT count(*) AS n FROM users WHERE email = $1", [email]);
      if (first.code === 0) {
        assert.equal((await eventsOf(s.dba, "users.import.completed")).length, 1, `the import answered success (exit 0) with no users.import.completed event recorded: ${first.stderr}`);
        return;
      }
      busy(first, "an import whose completion record waited past the bound");
      assert.deepEqual([await present("done-a1@example.org"), await present("done-a2@example.org")], [1, 1], "control: the batch committed before the head was taken");
      const jobs = (await s.dba.query<{ status: string }>("SELECT status FROM jobs WHERE kind = 'users-import' ORDER BY created_at")).rows.map((r) => r.status);

      const rerun = await cli(s, ["users", "import", file, "--json"]);
      assert.equal(rerun.code, 0,
        `exit 3 "${first.stderr.trim()}" after every row had committed and the job was marked ${JSON.stringify(jobs)}, with no users.import.completed event; the rerun it asked for is refused (exit ${rerun.code}): ${rerun.stderr.trim().slice(0, 300)}`);
      assert.equal((await eventsOf(s.dba, "users.import.completed")).length, 1, "the rerun records the import's completion, once");
      assert.deepEqual([await present("done-a1@example.org"), await present("done-a2@example.org")], [1, 1], "each row imported once");
      await chainVerifies(s);
    } finally {
      await s.close();
    }
  });
});

describe("`users migrate-hashes` behind a held account row (PostgreSQL)", skip, () => {
  it("attack: a DBA's open transaction holds the account row of the job's last batch — exit 3 named busy, the job left resumable with the earlier batches' wraps committed and counted, no hash lost, and the rerun wraps each remaining hash once and completes (ASVS 11.4.2, 16.5.3)", async () => {
    const s = await site();
    try {
      const lines = ["email,password_hash", ...Array.from({ length: 5 }, (_, i) => `mig-${i}@example.org,${md5(`legacy password ${i}`)}`)];
      const imported = await cli(s, ["users", "import", csvFile(lines.join("\n") + "\n"), "--json"]);
      assert.equal(imported.code, 0, `control: the legacy accounts import: ${imported.stderr}`);
      const before = new Map((await s.dba.query<{ id: string; password_hash: string }>("SELECT id, password_hash FROM users WHERE email LIKE 'mig-%' ORDER BY id")).rows.map((r) => [r.id, r.password_hash]));
      const ids = [...before.keys()];
      assert.equal(ids.length, 5);
      const last = ids[ids.length - 1]!;
      const release = await holdRows(s.dba, "SELECT id FROM users WHERE id = $1 FOR UPDATE", [last]);
      let first: Run;
      try {
        first = await cli(s, ["users", "migrate-hashes", "--batch", "2", "--concurrency", "2", "--json"]);
      } finally {
        await release();
      }
      busy(first, "a migrate-hashes batch that waited past the bound");
      const now = async (): Promise<Map<string, string>> => new Map((await s.dba.query<{ id: string; password_hash: string }>("SELECT id, password_hash FROM users WHERE email LIKE 'mig-%' ORDER BY id")).rows.map((r) => [r.id, r.password_hash]));
      const mid = await now();
      const wrappedIds = ids.filter((id) => mid.get(id)!.startsWith("$bulwark-wrap$"));
      assert.deepEqual(wrappedIds, ids.slice(0, 4), "the two batches before the held row committed, the held row's batch did not");
      assert.equal(mid.get(last), before.get(last), "the held account's hash is as it was: nothing lost");
      const job = (await s.dba.query<{ status: string; done: number; cursor: string }>("SELECT status, done, cursor FROM jobs WHERE kind = 'migrate-hashes'")).rows;
      assert.equal(job.length, 1);
      assert.ok(["running", "failed", "pending"].includes(job[0]!.status), `the job is left resumable, not ${job[0]!.status}`);
      assert.equal(Number(job[0]!.done), 4, "the job counts what its committed batches wrapped");

      const rerun = await cli(s, ["users", "migrate-hashes", "--batch", "2", "--concurrency", "2", "--json"]);
      assert.equal(rerun.code, 0, `the rerun resumes and completes: ${rerun.stderr}`);
      const result = JSON.parse(rerun.stdout) as { resumed: boolean; status: string; done: number };
      assert.equal(result.resumed, true, "the rerun resumes the same job, not a rival one");
      assert.equal(result.status, "done");
      const end = await now();
      for (const id of ids) assert.match(end.get(id)!, /^\$bulwark-wrap\$/, `${id} is wrapped`);
      for (const id of ids.slice(0, 4)) assert.equal(end.get(id), mid.get(id), `${id} was wrapped once, not wrapped again`);
      const wrappedOverEvents = [...await eventsOf(s.dba, "users.migrate-hashes.batch"), ...await eventsOf(s.dba, "users.migrate-hashes.swept")].reduce((n, e) => n + Number(e.data["wrapped"] ?? 0), 0);
      assert.equal(wrappedOverEvents, 5, "the batches' events count each hash wrapped once");
      assert.equal((await eventsOf(s.dba, "users.migrate-hashes.completed")).length, 1);
      await chainVerifies(s);
    } finally {
      await s.close();
    }
  });
  it("attack: the DBA takes the audit head right after migrate-hashes' last batch commits, as the job is marked done — exit 3 named busy, the job not left done without its users.migrate-hashes.completed event, and the rerun resumes it to done, recorded once, nothing wrapped twice (ASVS 11.4.2, 16.3.1, 16.5.3)", async () => {
    const s = await site();
    try {
      const lines = ["email,password_hash", ...Array.from({ length: 3 }, (_, i) => `fin-${i}@example.org,${md5(`legacy finish ${i}`)}`)];
      const imported = await cli(s, ["users", "import", csvFile(lines.join("\n") + "\n"), "--json"]);
      assert.equal(imported.code, 0, `control: the legacy accounts import: ${imported.stderr}`);
      const gate = await finishGate(s.dba);
      const running = bulwarkInProcess(["users", "migrate-hashes", "--concurrency", "2", "--json"], cliEnv(s));
      await gate.open();
      const first = await within(running, PAST_BOUND_MS);
      await gate.release();
      assert.ok(first, "migrate-hashes answered within the bound");
      busy(first, "a migrate-hashes run whose completion waited past the bound");
      const job = (await s.dba.query<{ status: string }>("SELECT status FROM jobs WHERE kind = 'migrate-hashes'")).rows;
      assert.deepEqual(job.map((j) => j.status), ["running"], "the job is left unfinished (resumable), not done without its event");
      assert.equal((await eventsOf(s.dba, "users.migrate-hashes.completed")).length, 0);
      const hashes = async (): Promise<string[]> => (await s.dba.query<{ password_hash: string }>("SELECT password_hash FROM users WHERE email LIKE 'fin-%' ORDER BY id")).rows.map((r) => r.password_hash);
      const mid = await hashes();
      for (const h of mid) assert.match(h, /^\$bulwark-wrap\$/, "the committed batch's wraps stand");

      const rerun = await cli(s, ["users", "migrate-hashes", "--json"]);
      assert.equal(rerun.code, 0, `the rerun completes the job: ${rerun.stderr}`);
      const result = JSON.parse(rerun.stdout) as { resumed: boolean; status: string };
      assert.deepEqual([result.resumed, result.status], [true, "done"], "the rerun resumes the same job to done");
      assert.deepEqual(await hashes(), mid, "nothing wrapped twice");
      assert.equal((await eventsOf(s.dba, "users.migrate-hashes.completed")).length, 1, "completed, recorded once");
      await chainVerifies(s);
    } finally {
      await s.close();
    }
  });
});

describe("key and grant commands behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: `audit rotate-signing-key` while a DBA's open transaction holds the audit head — exit 3 named busy, nothing half-rotated (no new key, no checkpoint, no event), the chain and checkpoints verify, and the rerun rotates once (ASVS 11.6.1, 16.4.2, 16.5.3)", async () => {
    const s = await site();
    try {
      await s.fx.user("rotate-sk@example.org");
      const cp = await cli(s, ["audit", "checkpoint"]);
      assert.equal(cp.code, 0, `control: a checkpoint is signed: ${cp.stderr}`);
      const keysBefore = (await s.dba.query<{ id: string }>("SELECT id FROM keyring_keys ORDER BY id")).rows.map((r) => r.id);
      const checkpointsBefore = await count(s.dba, "SELECT count(*) AS n FROM audit_checkpoints");
      const release = await holdRows(s.dba, HOLD_AUDIT_HEAD);
      let first: Run;
      try {
        first = await cli(s, ["audit", "rotate-signing-key", "--json"]);
      } finally {
        await release();
      }
      busy(first, "a signing-key rotation behind a held head");
      assert.deepEqual((await s.dba.query<{ id: string }>("SELECT id FROM keyring_keys ORDER BY id")).rows.map((r) => r.id), keysBefore, "no key stored by the refused rotation");
      assert.equal(await count(s.dba, "SELECT count(*) AS n FROM audit_checkpoints"), checkpointsBefore, "no checkpoint stored by the refused rotation");
      assert.equal((await eventsOf(s.dba, "audit.signing-key-rotated")).length, 0, "no rotation recorded");
      await chainVerifies(s);
      const verify = await cli(s, ["audit", "verify"]);
      assert.equal(verify.code, 0, `\`audit verify\` passes after the refused rotation: ${verify.stderr}${verify.stdout}`);

      const rerun = await cli(s, ["audit", "rotate-signing-key", "--json"]);
      assert.equal(rerun.code, 0, `the rerun rotates: ${rerun.stderr}`);
      assert.equal((await eventsOf(s.dba, "audit.signing-key-rotated")).length, 1, "rotated once");
      assert.equal((await s.dba.query("SELECT id FROM keyring_keys")).rowCount, keysBefore.length + 1, "one new key");
      const after = await cli(s, ["audit", "verify"]);
      assert.equal(after.code, 0, `\`audit verify\` passes after the rotation: ${after.stderr}${after.stdout}`);
    } finally {
      await s.close();
    }
  });

  it("attack: `users create --role admin` while another transaction holds the admin role's grant lock past the bound (the account commits, its grant waits) — the missing grant is named as the busy store it was (BULWARK_ERR_DB_BUSY in user.roles-incomplete, \"busy\" not the driver's text on stderr), with no admin grant, event or notice, and the `roles grant` it names works (ASVS 16.3.1, 16.5.1, 8.2.1) (was: user.roles-incomplete recorded BULWARK_ERR_INTERNAL and stderr quoted the driver's \"canceling statement due to lock timeout\")", async () => {
    const s = await site();
    try {
      const email = "made-admin@example.org";
      await s.dba.query("SELECT pg_advisory_lock($1)", [lockKeyOf("role:admin")]);
      let first: Run;
      try {
        first = await cli(s, ["users", "create", "--email", email, "--role", "admin", "--generate-password", "--json"]);
      } finally {
        await s.dba.query("SELECT pg_advisory_unlock_all()");
      }
      assert.equal(first.code, 3, `exit 3, got ${first.code}: ${first.stderr}`);
      assert.match(first.stderr, /could not be granted/, `the error says the grant did not happen: ${first.stderr}`);
      assert.match(first.stderr, /roles grant made-admin@example\.org ROLE/, `the error names the command that finishes it: ${first.stderr}`);
      const user = (await s.dba.query<{ id: string }>("SELECT id FROM users WHERE email = $1", [email])).rows[0];
      assert.ok(user, "the account was created (and its password printed), as the error says");
      assert.match(first.stdout, /"roles": \[\]/, `the printed account lists no role: ${first.stdout}`);
      assert.equal(await count(s.dba, "SELECT count(*) AS n FROM user_roles WHERE user_id = $1", [user.id]), 0, "no admin grant");
      assert.equal((await eventsOf(s.dba, "role.granted")).length, 0, "no role.granted event");
      const mailed = await count(s.dba, "SELECT count(*) AS n FROM outbox_messages WHERE to_address = $1", [email]);
      const incomplete = await eventsOf(s.dba, "user.roles-incomplete");
      assert.deepEqual(incomplete.map((e) => [e.subject, e.data["missing"]]), [[user.id, ["admin"]]], "the log says which role is missing");

      const grant = await cli(s, ["roles", "grant", email, "admin", "--json"]);
      assert.equal(grant.code, 0, `the named command finishes it: ${grant.stderr}`);
      assert.equal((JSON.parse(grant.stdout) as { ownerNotice: string | null }).ownerNotice, "queued", "the owner is told of the grant");
      assert.equal(await count(s.dba, "SELECT count(*) AS n FROM outbox_messages WHERE to_address = $1", [email]), mailed + 1, "one notice, queued by the grant (none by the refused one)");
      assert.equal((await eventsOf(s.dba, "role.granted")).length, 1);
      await chainVerifies(s);

      // What the operator and the log are told of why: a busy store, to try again (BULWARK_ERR_DB_BUSY), as every other
      // CLI failure past the bound is named (run.ts reportError), not an internal error quoting the driver.
      const said = { code: incomplete[0]?.data["code"], stderr: first.stderr.trim() };
      assert.ok(said.code === "BULWARK_ERR_DB_BUSY" && !/canceling statement|lock timeout/i.test(said.stderr) && /busy/.test(said.stderr),
        `a grant refused past the wait bound is recorded in user.roles-incomplete as code ${JSON.stringify(said.code)} (an internal error, not BULWARK_ERR_DB_BUSY), and stderr quotes the PostgreSQL driver's text instead of naming the busy store: "${said.stderr}"`);
    } finally {
      await s.close();
    }
  });

  it("attack: `roles grant ACCOUNT admin` while a DBA's open transaction holds the audit head — exit 3 named busy, no grant without its role.granted event and owner's notice (none of the three), and the rerun grants once with both (ASVS 8.2.1, 16.3.2, 16.5.3)", async () => {
    const s = await site();
    try {
      const user = await s.fx.user("grant-held@example.org");
      const outboxBefore = await count(s.dba, "SELECT count(*) AS n FROM outbox_messages WHERE to_address = $1", [user.email]);
      const release = await holdRows(s.dba, HOLD_AUDIT_HEAD);
      let first: Run;
      try {
        first = await cli(s, ["roles", "grant", user.email, "admin", "--json"]);
      } finally {
        await release();
      }
      busy(first, "an administrative grant behind a held head");
      assert.equal(await count(s.dba, "SELECT count(*) AS n FROM user_roles WHERE user_id = $1", [user.id]), 0, "no role granted by the refused command");
      assert.equal((await eventsOf(s.dba, "role.granted")).length, 0, "no role.granted event");
      assert.equal(await count(s.dba, "SELECT count(*) AS n FROM outbox_messages WHERE to_address = $1", [user.email]), outboxBefore, "no notice queued for a grant that did not happen");

      const rerun = await cli(s, ["roles", "grant", user.email, "admin", "--json"]);
      assert.equal(rerun.code, 0, `the rerun grants: ${rerun.stderr}`);
      const out = JSON.parse(rerun.stdout) as { changed: boolean; ownerNotice: string | null };
      assert.equal(out.changed, true);
      assert.equal(out.ownerNotice, "queued", "the owner is told of the administrative grant");
      assert.equal((await eventsOf(s.dba, "role.granted")).filter((e) => e.subject === user.id).length, 1, "granted and recorded once");
      assert.equal(await count(s.dba, "SELECT count(*) AS n FROM outbox_messages WHERE to_address = $1", [user.email]), outboxBefore + 1, "one notice");
      await chainVerifies(s);
    } finally {
      await s.close();
    }
  });
});
