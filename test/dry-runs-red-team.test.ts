// Red team, round "dry runs": dry runs that are not dry. Bulwark promises that every bulk or destructive operation has
// a dry run that reports what would happen and changes nothing; a responder in the middle of a breach runs it first and
// acts on what it says. The attacker here is the gap between the two: a dry run that writes (ends sessions, spends
// links, mails, locks, takes a key or a job), a dry run whose report is not what the real run then does (other
// accounts, other counts, a refusal it did not announce), and a dry run that tells more than the real operation would.
// Who holds what: the operator on the server's shell (`bulwark contain`, `users set-email`, `roles delete`, `contain
// undo`, with or without the server's BULWARK_PUBLIC_URL), a help desk holding accounts.write over the API (POST
// /api/v1/users/:id/email with dryRun), the containment library (dryRunContain, dryRunUndo) on SQLite and PostgreSQL.
// Tried: every lever's dry run and an undo's dry run against a snapshot of every table, with a mailer that records any
// call, on both dialects (the undo's dry run runs the real undo in a transaction it rolls back: PostgreSQL's sequences
// and row locks are where that could leak); the CLI's dry runs from a shell without BULWARK_PUBLIC_URL; `roles delete
// --dry-run` of a built-in role; an undo's dry run while an earlier undo of the job failed part-way; set-email's
// forecast against its outcome (a containment hold on the account's reset links, an expired link); invalidate-passwords'
// forecast against what its job spends at creation; `dryRun` sent as null, 0 or "true" to set-email.
// Pinned elsewhere and not repeated: the CLI's dry runs on SQLite byte for byte (bulk-operations-red-team), the levers'
// counts against their jobs' (contain-job-reporting, contain-revoke, contain-reset-email, contain-incident-levers), an
// Idempotency-Key on a dry run (api-contain-idempotency), dryRun: null on a containment (api-contain-audit-attacks), the
// parent's --dry-run swallowed by resume/undo/status (cli-contain; cancel and list refuse it too: checked by hand).
// Held: no dry run writes a row or calls the mailer on either dialect; set-email refuses a dryRun that is not a boolean.
// Found (fixed since: each dry run now runs the real run's check or count): `roles delete --dry-run` vouched for deleting
// a built-in role that the real run refuses (the CLI refuses it before the dry run, with RoleStore's error);
// `users set-email --dry-run` and `contain … --dry-run --json` from a shell without BULWARK_PUBLIC_URL said nothing of
// the refusal the real run then gives (publicURLRefusal, shared with requirePublicURL: a note, and realRunRefused with
// the real run's code and message in --json); `contain undo --dry-run` forecast an undo that createUndoJob refuses (an
// earlier undo failed part-way: refuseRivalUndo, run by undoable for the dry run and the plan too); set-email's dry run
// said liftsResetHold: false where the change then lifts a containment hold (now whenever a hold stands; the change
// also records the lift, user.reset-hold-lifted naming its user.email-set, which it did not), and counted 0 open links
// where the change reports an expired one spent (now every unused link, as the change spends them); invalidate-passwords'
// dry run said nothing of the open email-change links its job spends when it is created (emailChangeLinksSpent, the
// same condition as begin's).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import { createSessionManager } from "../src/accounts/sessions/session-manager.ts";
import { currentEpoch } from "../src/accounts/sessions/revocation.ts";
import { containDeps, createContainJob, createUndoJob, dryRunContain, runJob, type ResetNotifier } from "../src/contain/index.ts";
import { dryRunUndo } from "../src/contain/undo.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { SCHEMA_TABLES, type Schema } from "../src/store/schema.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { bulwark, bulwarkHere, initSite, type CLISite } from "./helpers/cli.ts";
import { apiTokenRow, codeOf, openContainFixture, seedContainUsers, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { scratchRoot } from "./helpers/scratch.ts";

const { fresh } = scratchRoot("bulwark-dry-runs-rt-");
const NOW = Date.UTC(2026, 10, 20, 12);
const HOUR = 3_600_000;
/** A hash the stores take as an argon2id password (its password matches nothing). */
const HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

/** A mailer that only counts: a dry run must never reach it. */
function spyNotifier(): ResetNotifier & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async enqueueReset(_trx, user, jobId) {
      calls.push(`reset ${user.id} ${jobId}`);
    },
    async enqueueNotice(_trx, user, jobId, event) {
      calls.push(`notice ${event.type} ${user.id} ${jobId}`);
    },
  };
}

/** Every table the migrations create but the audit log's, row by row (sorted, so heap order does not matter). */
async function snapshot(db: Kysely<Schema>): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of SCHEMA_TABLES) {
    if (table.startsWith("audit_")) continue;
    const rows = await db.selectFrom(table as never).selectAll().execute();
    out[table] = rows.map((r) => JSON.stringify(r)).sort();
  }
  return out;
}

function changedTables(before: Record<string, string[]>, after: Record<string, string[]>): string[] {
  return Object.keys(before).filter((t) => JSON.stringify(before[t]) !== JSON.stringify(after[t]));
}

async function auditTypesAfter(db: Kysely<Schema>, seq: number): Promise<string[]> {
  return (await db.selectFrom("audit_events").select(["type", "seq"]).where("seq", ">", seq).orderBy("seq").execute()).map((e) => e.type);
}

async function lastSeq(db: Kysely<Schema>): Promise<number> {
  const row = await db.selectFrom("audit_events").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst();
  return Number(row?.seq ?? 0);
}

forEachDialect("dry runs, red team: nothing written, nobody mailed", (dfx) => {
  it("attack: every lever's dry run (each alone, all together, over --all and over a list) and an undo's dry run of a finished lock + expire + demote job leave every table as it was, append only their own events and never call the mailer (the undo's rolled-back transaction included) (ASVS 16.3.3, 2.3.2)", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    const db = fx.database.db;
    const ids = await seedContainUsers(fx, NOW, 6);
    // Something for every lever to find: sessions, tokens, a TOTP seed, open links of both kinds, two dormant
    // administrators, and a finished job (lock-accounts, expire-passwords, demote-inactive-admins) to undo.
    const sm = createSessionManager({ database: fx.database, clock: fx.clock, random: systemRandom });
    for (const id of ids) await sm.createSession(id);
    await apiTokenRow(fx, ids[0] as string, "tok_dry1");
    await db.insertInto("mfa_totp").values({ user_id: ids[1] as string, secret_ct: "ct", created_at: NOW, confirmed_at: NOW, last_step: null }).execute();
    await db.insertInto("password_reset_tokens").values({ id: "prt_open", user_id: ids[2] as string, secret_hash: "h", created_at: NOW - 1000, expires_at: NOW + HOUR, used_at: null }).execute();
    await db.insertInto("email_change_tokens").values({ id: "ect_open", user_id: ids[3] as string, new_email: "moved@example.net", secret_hash: "h", created_at: NOW - 1000, expires_at: NOW + HOUR, used_at: null, issued_epoch: currentEpoch() }).execute();
    await db.updateTable("users").set({ last_login_at: NOW - 200 * 86_400_000 }).where("id", "in", [ids[4] as string, ids[5] as string]).execute();
    for (const id of [ids[4], ids[5]] as string[]) await fx.roles.grant(id, "admin", "test");
    const job = await createContainJob({ ...fx, notifier: null }, { levers: ["lock-accounts", "expire-passwords", "demote-inactive-admins"], scope: { ids: ids.slice(3) }, actor: "cli:ops" });
    await runJob({ ...fx, notifier: null }, job.id);
    fx.clock.advance(1000);

    const mailer = spyNotifier();
    const deps = { ...fx, notifier: mailer };
    const levers = ["lock-accounts", "revoke-sessions", "revoke-tokens", "invalidate-passwords", "expire-passwords", "require-mfa-reenrolment", "unlink-sso", "demote-inactive-admins", "rotate-keys"];
    const before = await snapshot(db);
    const seq = await lastSeq(db);
    const expected: string[] = [];
    for (const scope of [{ all: true }, { ids: [...ids, "nobody@example.org"] }]) {
      for (const lever of levers) {
        await dryRunContain(deps, { levers: [lever], scope, actor: "cli:ops" });
        expected.push("contain.dry-run");
      }
      const all = await dryRunContain(deps, { levers, scope, actor: "cli:ops" });
      expected.push("contain.dry-run");
      assert.ok((all.levers["invalidate-passwords"]?.counts["resetEmailsQueued"] ?? 0) > 0, "the dry run forecasts reset mails (so the mailer was there to be called)");
    }
    const undo = await dryRunUndo(deps, job.id, "cli:ops");
    expected.push("contain.undo.dry-run");
    assert.ok(Object.values(undo.counts).some((c) => c.restored > 0), `the undo's dry run forecasts restores: ${JSON.stringify(undo.counts)}`);
    const after = await snapshot(db);
    assert.deepEqual(changedTables(before, after), [], "a dry run wrote to these tables");
    assert.deepEqual(await auditTypesAfter(db, seq), expected, "each dry run appended its one event and nothing else");
    assert.deepEqual(mailer.calls, [], "a dry run called the mailer");
  });
});

describe("dry runs, red team: the CLI (SQLite site, an operator on the server's shell)", () => {
  let s: CLISite;
  let email: string;
  const noURL = (): NodeJS.ProcessEnv => ({ ...s.env, BULWARK_PUBLIC_URL: undefined });
  before(async () => {
    s = await initSite(fresh("cli"), { here: true });
    const seeded = await s.runHere(["dev", "seed", "--users", "6", "--sessions-per-user", "1"]);
    assert.equal(seeded.code, 0, seeded.stderr);
    email = String(s.rows("SELECT email FROM users ORDER BY id LIMIT 1")[0]?.["email"]);
  });

  it("attack: `roles delete ROLE --dry-run` of a built-in role — the dry run refuses it as the real run does (exit 2, built in and cannot be deleted) (ASVS 2.2.1, 16.5.3) (was: it said it would take the role from its holders, exit 0)", async () => {
    for (const role of ["admin", "auditor"]) {
      const dry = await s.runHere(["roles", "delete", role, "--dry-run"]);
      const real = await s.runHere(["roles", "delete", role, "--yes"]);
      assert.equal(real.code, 2, `the real run refuses ${role}: ${real.stdout}${real.stderr}`);
      assert.match(real.stderr, /built in and cannot be deleted/);
      assert.equal(dry.code, real.code,
        `roles delete ${role} --dry-run answered exit ${dry.code} "${dry.stdout.trim()}" for a deletion the real run refuses ("${real.stderr.trim()}"): the operator who checked first is told the built-in role would go (src/cli/commands/users-admin.ts: the dry run skips RoleStore.delete's builtin check)`);
    }
  });

  it("attack: `users set-email --dry-run` from a shell without BULWARK_PUBLIC_URL, where the real run refuses (exit 2: the link would point at localhost) — the dry run says so, naming BULWARK_PUBLIC_URL, as `contain --dry-run` does (docs/http-auth.md: \"both take a dry run first\") (was: it forecast \"a reset link would go to the new address\", exit 0, and nothing more)", async () => {
    const dry = await bulwarkHere(["users", "set-email", email, "owner-back@example.org", "--dry-run"], { env: noURL() });
    const real = await bulwarkHere(["users", "set-email", email, "owner-back@example.org"], { env: noURL() });
    assert.equal(real.code, 2, `the real run refuses without BULWARK_PUBLIC_URL: ${real.stdout}${real.stderr}`);
    assert.match(real.stderr, /BULWARK_PUBLIC_URL/);
    assert.equal(String(s.rows("SELECT email FROM users ORDER BY id LIMIT 1")[0]?.["email"]), email, "nothing changed");
    assert.ok(dry.code === real.code || /BULWARK_PUBLIC_URL/.test(dry.stdout + dry.stderr),
      `set-email --dry-run answered exit ${dry.code} "${dry.stdout.trim().split("\n")[0]}" and never named BULWARK_PUBLIC_URL, though the real run is refused for it (src/cli/commands/users-admin.ts: requirePublicURL runs after the dry-run branch)`);
  });

  it("attack: `contain invalidate-passwords --dry-run --json` from a shell without BULWARK_PUBLIC_URL, where the real run exits 2 — the JSON report a script reads carries the real run's refusal (realRunRefused: its code and message), as the human dry run notes it (ASVS 16.5.3) (was: the JSON report read as if the job could run)", async () => {
    const ids = s.file("ids.txt", `${email}\n`);
    const human = await bulwarkHere(["contain", "invalidate-passwords", "--ids", ids, "--dry-run"], { env: noURL() });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /BULWARK_PUBLIC_URL is not set here/, "the human dry run warns");
    // The report a script reads, from the CLI as its own process (the others run in this process: same program, same env).
    const json = await bulwark(["contain", "invalidate-passwords", "--ids", ids, "--dry-run", "--json"], { env: noURL() });
    const real = await bulwarkHere(["contain", "invalidate-passwords", "--ids", ids, "--json"], { env: noURL() });
    assert.equal(real.code, 2, `the real run refuses: ${real.stdout}${real.stderr}`);
    assert.equal(s.rows("SELECT count(*) AS n FROM jobs WHERE kind = 'contain'")[0]?.["n"], 0, "no job was created");
    assert.ok(json.code === real.code || /BULWARK_PUBLIC_URL/.test(json.stdout + json.stderr),
      `contain … --dry-run --json answered exit ${json.code} with a report that never names BULWARK_PUBLIC_URL (${json.stdout.replace(/\s+/g, " ").slice(0, 160)}…), though the real run is refused for it (src/cli/commands/contain.ts: the note is printed only in the human branch)`);
  });
});

describe("dry runs, red team: the library (SQLite)", () => {
  let dir: string;
  const opened: Database[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-dry-runs-lib-"));
  });
  after(async () => {
    for (const d of opened) await d.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  let n = 0;
  const fixture = async (notifier: ResetNotifier | null = null): Promise<ContainFixture> => {
    const database = openSQLite(join(dir, `db-${++n}.sqlite`), { create: true });
    opened.push(database);
    return openContainFixture(database, { now: NOW, notifier });
  };

  it("attack: `contain undo JOB --dry-run` while an earlier undo of the job failed part-way, where the real undo is refused (resume the failed one) — the dry run refuses what createUndoJob refuses, with the same error (ASVS 2.3.4, 16.5.3) (was: it forecast the restores)", async () => {
    const fx = await fixture();
    const ids = await seedContainUsers(fx, NOW, 4);
    const job = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids }, actor: "cli:ops" });
    await runJob(fx, job.id);
    fx.clock.advance(1000);
    // The first undo (an API request, say) failed part-way: a lost connection marks it failed; it can be resumed.
    const first = await createUndoJob(fx, job.id, "cli:ops");
    assert.equal(await fx.jobs.markFailed(first.id, "connection lost"), true);
    assert.equal(await codeOf(createUndoJob(fx, job.id, "cli:ops")), "BULWARK_ERR_CONTAIN_UNDO", "the real undo is refused while the failed one can be resumed");
    let dry: unknown;
    const code = await codeOf((async () => {
      dry = await dryRunUndo(fx, job.id, "cli:ops");
    })());
    assert.equal(code, "BULWARK_ERR_CONTAIN_UNDO",
      `the undo's dry run answered ${JSON.stringify(dry)} (would restore every lock) for an undo the real command refuses while undo job ${first.id} failed part-way (src/contain/undo.ts dryRunUndo: undoable() does not look for a rival undo; createUndoJob does)`);
  });

  it("attack: invalidate-passwords' dry run over accounts with open email-change links, which its job spends when it is created (begun.emailChangeLinksSpent) — the dry run counts them (emailChangeLinksSpent), as require-mfa-reenrolment's counts the links it spends (ASVS 6.4.3, 16.3.3) (was: not a word of them)", async () => {
    const mailer = spyNotifier();
    const fx = await fixture(mailer);
    const db = fx.database.db;
    const ids = await seedContainUsers(fx, NOW, 3);
    const link = (id: string, userId: string, usedAt: number | null) => db.insertInto("email_change_tokens")
      .values({ id, user_id: userId, new_email: `${id}@example.net`, secret_hash: "h", created_at: NOW - 1000, expires_at: NOW + HOUR, used_at: usedAt, issued_epoch: currentEpoch() }).execute();
    // Two owners are half-way through moving their address (an open link each); a third used theirs long ago.
    await link("ect_a", ids[0] as string, null);
    await link("ect_b", ids[1] as string, null);
    await link("ect_used", ids[2] as string, NOW - 500);
    const dry = await dryRunContain(fx, { levers: ["invalidate-passwords"], scope: { ids }, actor: "cli:ops" });
    const report = dry.levers["invalidate-passwords"];
    assert.equal(report?.counts["users"], 3);
    const job = await createContainJob(fx, { levers: ["invalidate-passwords"], scope: { ids }, actor: "cli:ops" });
    await runJob(fx, job.id);
    const spent = (await db.selectFrom("email_change_tokens").select("id").where("id", "in", ["ect_a", "ect_b"]).where("used_at", "is not", null).execute()).length;
    assert.equal(spent, 2, "the job spent both open email-change links");
    const created = await db.selectFrom("audit_events").select("data").where("type", "=", "contain.revocation.raised").orderBy("seq", "desc").executeTakeFirstOrThrow();
    const begun = (JSON.parse(created.data) as { begun?: Record<string, number> }).begun ?? {};
    assert.equal(begun["invalidate-passwords.emailChangeLinksSpent"], 2, "the job's own record counts them");
    const said = report?.counts["emailChangeLinksSpent"] ?? ((report?.notes ?? []).some((note) => /email.change link/i.test(note)) ? 2 : 0);
    assert.equal(said, 2,
      `the dry run reported ${JSON.stringify(report)}: not a word of the 2 open email-change links the job then spent at its creation (src/contain/levers/invalidate-passwords.ts dryRun counts none of what begin() spends; the job records begun ${JSON.stringify(begun)})`);
  });
});

describe("dry runs, red team: POST /api/v1/users/:id/email (a help desk holding accounts.write, SQLite)", () => {
  let fx: APIFixture;
  let token: string;
  let deskId: string;
  before(async () => {
    fx = await openAPIFixture();
    const desk = await fx.user(["accounts.write", "accounts.read"]);
    deskId = desk.id;
    token = await fx.token(desk.id, ["accounts.write", "accounts.read"]);
  });
  after(async () => {
    await fx?.close();
  });

  const victim = async (label: string): Promise<{ id: string; email: string }> => {
    const u = await fx.user([], { email: `${label}-${process.pid}@example.org` });
    await fx.app.db.db.updateTable("users").set({ password_hash: HASH, password_scheme: "argon2id" }).where("id", "=", u.id).execute();
    return u;
  };
  const setEmail = (id: string, body: unknown) => fx.call("POST", `/api/v1/users/${id}/email`, { token, body });
  const heldAt = async (id: string): Promise<number | null> => {
    const row = await fx.app.db.db.selectFrom("users").select("reset_held_at").where("id", "=", id).executeTakeFirstOrThrow();
    return row.reset_held_at === null ? null : Number(row.reset_held_at);
  };

  it("attack: dryRun sent as null, 0, \"true\" or \"false\" is refused with a 400 naming the field and changes nothing (no address moved, no event, no mail) — a client's unset option never runs the real change (ASVS 2.2.1, 16.5.3)", async () => {
    const v = await victim("coerced");
    const outbox = async (): Promise<number> => (await fx.app.db.db.selectFrom("outbox_messages").select("id").execute()).length;
    const mails = await outbox();
    for (const dryRun of [null, 0, "true", "false", 1]) {
      const res = await setEmail(v.id, { email: "coerced-new@example.org", dryRun });
      assert.equal(res.statusCode, 400, `dryRun: ${JSON.stringify(dryRun)} answered ${res.statusCode} ${res.body.slice(0, 160)}`);
      assert.match(res.body, /dryRun/);
    }
    assert.equal((await fx.app.accounts.users.getById(v.id))?.email, v.email, "the address did not move");
    assert.equal((await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", "user.email-set").where("subject", "=", v.id).execute()).length, 0);
    assert.equal(await outbox(), mails, "nothing was mailed");
  });

  it("attack: a set-email dry run to a new address on an account whose reset links a containment job holds (its own address changed during the incident) — the forecast says what the change does: liftsResetHold: true, and the change answers resetHoldLifted: true, clears the hold and records user.reset-hold-lifted (docs/containment.md: \"said in the answer: resetHoldLifted, and liftsResetHold in the dry run\") (was: the dry run answered liftsResetHold: false, and the change's lift was not in the audit log)", async () => {
    const v = await victim("held");
    // The account moved its own address during the incident (a hijacker, maybe), then invalidate-passwords held its link.
    await fx.app.audit.append({ type: "auth.email.changed", actor: v.id, subject: v.id, data: {} });
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [v.id] }, actor: "cli:ops" });
    const done = await runJob(deps, job.id);
    assert.equal(done.counts["invalidate-passwords.resetEmailsWithheld"], 1, "the job held the reset link back");
    assert.notEqual(await heldAt(v.id), null, "and the public reset form with it");
    const dry = await setEmail(v.id, { email: `held-owner-${process.pid}@example.org`, dryRun: true });
    assert.equal(dry.statusCode, 200, dry.body);
    const forecast = dry.json() as { changed: boolean; liftsResetHold: boolean };
    assert.equal(forecast.changed, true);
    assert.notEqual(await heldAt(v.id), null, "the dry run left the hold");
    const real = await setEmail(v.id, { email: `held-owner-${process.pid}@example.org` });
    assert.equal(real.statusCode, 200, real.body);
    const outcome = real.json() as { changed: boolean; resetHoldLifted: boolean; eventId: string };
    assert.equal(await heldAt(v.id), null, "the change lifted the hold");
    assert.equal(outcome.resetHoldLifted, true);
    // The lift is in the log as a confirmation's is (docs/containment.md: "recorded as user.reset-hold-lifted with who
    // asked"), in the change's commit, naming the change that lifted it.
    const lifted = await fx.app.db.db.selectFrom("audit_events").select(["actor", "data"]).where("type", "=", "user.reset-hold-lifted").where("subject", "=", v.id).execute();
    assert.equal(lifted.length, 1, "the change recorded the lift of the hold");
    assert.equal(lifted[0]?.actor, deskId, "with who asked");
    const liftData = JSON.parse(lifted[0]?.data ?? "{}") as Record<string, unknown>;
    assert.equal(liftData["event"], outcome.eventId, `naming the change's user.email-set event: ${lifted[0]?.data}`);
    assert.equal(liftData["via"], "api");
    assert.equal(forecast.liftsResetHold, outcome.resetHoldLifted,
      `the dry run said liftsResetHold: ${forecast.liftsResetHold}, the change then answered resetHoldLifted: ${outcome.resetHoldLifted} and cleared users.reset_held_at (src/accounts/email-change/set-by-administrator.ts forecastSetEmail: liftsResetHold is "!changed && held", the change lifts it whenever held)`);
  });

  it("attack: a set-email dry run on an account holding an unused but expired reset link — the dry run and the change count the same links (openLinks: 1, linksSpent: 1: every unused one, which the change spends) (was: the dry run counted 0, the change reported 1 ended)", async () => {
    const v = await victim("expired");
    const now = fx.app.clock.now();
    await fx.app.db.db.insertInto("password_reset_tokens").values({ id: `prt_exp_${process.pid}`, user_id: v.id, secret_hash: "h", created_at: now - 2 * HOUR, expires_at: now - HOUR, used_at: null }).execute();
    const dry = await setEmail(v.id, { email: `expired-owner-${process.pid}@example.org`, dryRun: true });
    assert.equal(dry.statusCode, 200, dry.body);
    const forecast = dry.json() as { openLinks: number; sessions: number };
    const real = await setEmail(v.id, { email: `expired-owner-${process.pid}@example.org` });
    assert.equal(real.statusCode, 200, real.body);
    const outcome = real.json() as { linksSpent: number; sessionsEnded: number };
    assert.equal(forecast.sessions, outcome.sessionsEnded, "sessions counted alike");
    assert.equal(forecast.openLinks, outcome.linksSpent,
      `the dry run forecast openLinks: ${forecast.openLinks}, the change reported linksSpent: ${outcome.linksSpent} for the same account (src/accounts/email-change/set-by-administrator.ts: forecastSetEmail counts unexpired links, spendResetLinks/spendEmailChangeLinks spend and count every unused one)`);
  });
});
