// Fifth look at concurrency on PostgreSQL, after e863b33 (role removals always take the last-admin lock and read their
// caller again; permissionsHeldWithin holds the caller's role rows FOR SHARE and its "acting:<user>" advisory lock
// shared; the lock route takes the last-admin lock, the target's grant lock, its caller's acting lock shared and the
// target's exclusively). This round looks for waits in a cycle ("deadlock detected": a 500 for a user, or a failed
// containment job) between those API changes and the containment jobs that run meanwhile (lock-accounts,
// invalidate-passwords, demote-inactive-admins, revoke-sessions, revoke-tokens). The attackers: administrators, help
// desks and owners acting at once during an incident, while a responder's containment job runs over the same
// accounts (or two responders' jobs do). A deadlock here costs the responder their restore of a hijacked account or
// fails the containment job half-way (it has to be found and resumed). Real server, real API tokens, one private
// PostgreSQL cluster (sharedCluster). Each race is forced, not hoped for: a transaction of another connection holds
// what a concurrent request would hold (a grant's lock, a change's acting lock, a reset's link lock), and the test
// waits until pg_locks shows each party queued where the interleaving needs it. Four findings, fixed the same day (a
// containment batch now takes every lock its levers need before its first write, in the order single-account
// transactions take them); their tests say "(was: …)".
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { holdActing, holdGrantsTo, usableAdmins } from "../src/accounts/roles/index.ts";
import { lockAccountLinks } from "../src/accounts/password-reset/link-lock.ts";
import { userScope } from "../src/accounts/sessions/revocation.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { holdOpen } from "./helpers/held-transaction.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { raceSite } from "./helpers/pg-race.ts";

type Response = LightMyRequestResponse;
const show = (r: Response): string => `${r.statusCode} ${r.body.slice(0, 200)}`;

const unavailable = postgresUnavailable();

describe("red team, fifth look: PostgreSQL deadlocks between the API's locks and containment batches", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  const site = raceSite("pgrace5", "postgres-race-fifth-look");
  const { actor, api, waiting, until } = site;
  let made = 0;
  const { tokenFor } = authFlows(() => site.fx);


  /** Runs a containment job to its end; resolves with its final status and the error it failed with, if any. */
  async function contain(levers: string[], ids: string[], options: Record<string, unknown> = {}): Promise<{ id: string; run: Promise<{ status: string; error: string | null }> }> {
    const { id, start } = await created(levers, ids, options);
    return { id, run: start() };
  }

  /** A containment job created (its stamps raised) and not started yet: `start` runs it as `contain` does. */
  async function created(levers: string[], ids: string[], options: Record<string, unknown> = {}): Promise<{ id: string; start: () => Promise<{ status: string; error: string | null }> }> {
    const deps = containDeps(site.fx.app);
    const job = await createContainJob(deps, { levers, scope: { ids }, actor: "responder-job", options, batchSize: 100 });
    const start = () => runJob(deps, job.id).then(
      (j) => ({ status: j.status, error: j.error }),
      async (e: Error) => ({ status: (await site.fx.app.accounts.jobs.get(job.id)).status, error: `${e.message} ${String((e.cause as Error | undefined)?.message ?? "")}` }),
    );
    return { id: job.id, start };
  }

  const account = (id: string) => site.fx.app.db.db.selectFrom("users").select(["email", "locked_at", "password_invalidated_at"]).where("id", "=", id).executeTakeFirstOrThrow();

  // ---- lock-accounts writes the batch's accounts before invalidate-passwords takes their link locks ----

  it("attack: an administrator restoring a hijacked account (set-email) while a lock-accounts + invalidate-passwords job reaches that account does not deadlock on PostgreSQL: both finish (ASVS 16.5.3) (was: the job failed with deadlock detected, or the restore answered 500)", async () => {
    // invalidate-passwords takes each account's link lock before its first write (lockManyAccountsLinks), so that a
    // transaction going link lock → account row never meets it in the other order. But the levers of a batch run in
    // registry order, and lock-accounts (first) has already UPDATEd the accounts' rows when invalidate-passwords asks
    // for the link locks. set-email goes link lock → (the API's re-checks) → account row. The pairing the product
    // itself recommends (lock-accounts with invalidate-passwords) meets the administrator's way back from a hijack.
    const responder = await actor("restorer", ["admin"], ["admin"]);
    const victim = await site.fx.user(`hijacked-${++made}@example.org`);
    const restored = `restored-${made}@example.org`;
    // A grant to the victim in flight: set-email, after taking the victim's link lock, waits for it (holdGrantsTo).
    const grant = await holdOpen(site.fx.app.db, (trx) => holdGrantsTo(site.fx.app.db, trx, victim.id));
    let set!: Promise<Response>;
    let job!: Awaited<ReturnType<typeof contain>>;
    let settled = 0;
    try {
      set = api(responder.token, "POST", `/api/v1/users/${victim.id}/email`, { email: restored }).finally(() => settled++);
      await until(async () => settled > 0 || (await waiting(["advisory"])) >= 1);
      // The responder's containment job over the same account: lock-accounts writes the row, then the batch waits for
      // the victim's link lock, which set-email holds.
      job = await contain(["lock-accounts", "invalidate-passwords"], [victim.id]);
      void job.run.finally(() => settled++);
      await until(async () => settled > 0 || (await waiting(["advisory"])) >= 2);
    } finally {
      // The grant commits: set-email goes on to write the victim's row, which the job's lock-accounts holds.
      await grant.commit();
    }
    const [answer, ended] = await Promise.all([set, job.run]);
    // Secure: both succeed, one after the other (either order), and the account ends locked, its password
    // invalidated, at the address the administrator set.
    assert.ok(answer.statusCode < 500, `set-email answered ${show(answer)} (job: ${ended.status} ${ended.error ?? ""})`);
    assert.equal(ended.status, "done", `the containment job ended ${ended.status}: ${ended.error ?? ""} (set-email: ${show(answer)})`);
    assert.equal(answer.statusCode, 200, show(answer));
    const row = await account(victim.id);
    assert.equal(row.email, restored);
    assert.notEqual(row.locked_at, null);
    assert.notEqual(row.password_invalidated_at, null);
  });

  it("attack: two containment jobs over the same account (lock-accounts + invalidate-passwords, and invalidate-passwords) both finish on PostgreSQL (ASVS 16.5.3) (was: one failed half-way with deadlock detected)", async () => {
    // Two responders at once, or a retried POST /contain/jobs without an Idempotency-Key (docs/api.md: "Two such jobs
    // hold the same accounts"). The invalidate-passwords job takes the link locks first and then writes the account;
    // the other job writes the account (lock-accounts) and then takes the link locks.
    const user = await site.fx.user(`doubly-contained-${++made}@example.org`);
    // An owner's reset completing holds the account's link lock for a moment: both jobs queue on it in turn.
    const reset = await holdOpen(site.fx.app.db, (trx) => lockAccountLinks(site.fx.app.db, trx, user.id));
    let first!: Awaited<ReturnType<typeof contain>>;
    let second!: Awaited<ReturnType<typeof contain>>;
    let settled = 0;
    try {
      first = await contain(["invalidate-passwords"], [user.id]);
      void first.run.finally(() => settled++);
      await until(async () => settled > 0 || (await waiting(["advisory"])) >= 1);
      second = await contain(["lock-accounts", "invalidate-passwords"], [user.id]);
      void second.run.finally(() => settled++);
      await until(async () => settled > 0 || (await waiting(["advisory"])) >= 2);
    } finally {
      await reset.commit();
    }
    const outcomes = await Promise.all([first.run, second.run]);
    // Secure: both jobs finish; whichever comes second finds the password already invalidated.
    assert.deepEqual(outcomes.map((o) => o.status), ["done", "done"], outcomes.map((o) => `${o.status} ${o.error ?? ""}`).join(" | "));
    const row = await account(user.id);
    assert.notEqual(row.locked_at, null);
    assert.notEqual(row.password_invalidated_at, null);
  });

  // ---- revoke-sessions deletes the batch's sessions before a later lever writes the accounts ----

  it("attack: an administrator restoring a hijacked account (set-email) while a revoke-sessions + expire-passwords job reaches that account does not deadlock on PostgreSQL: the batch takes its locks first, in the order set-email does (ASVS 16.5.3) (was: set-email wrote the account then the sessions, the batch the other way round)", async () => {
    // Found by a random race (a revoke-sessions, revoke-tokens, expire-passwords job failed with "deadlock detected")
    // and forced here. No link lock is involved: set-email UPDATEs the victim's row, then ends its sessions
    // (endUserSessions: turn, stamp, DELETE); the batch runs revoke-sessions (DELETE of the victim's sessions) before
    // expire-passwords (UPDATE of the victim's row).
    const responder = await actor("restorer-sessions", ["admin"], ["admin"]);
    const victim = await site.fx.user(`hijacked-sessions-${++made}@example.org`);
    await site.fx.app.accounts.sessions.createSession(victim.id, { aal: 1 });
    const restored = `restored-sessions-${made}@example.org`;
    // The job is recorded first (its stamps raised: the victim's stamp row exists), then runs below.
    const job = await created(["revoke-sessions", "expire-passwords"], [victim.id]);
    // A login ending its rotation holds the victim's stamp row for a moment: set-email, past its UPDATE of the victim,
    // waits there to raise the stamp.
    const stamp = await holdOpen(site.fx.app.db, (trx) => trx.selectFrom("revocation_stamps").select("scope").where("scope", "=", userScope(victim.id)).forUpdate().execute());
    let set!: Promise<Response>;
    let run!: Promise<{ status: string; error: string | null }>;
    let settled = 0;
    try {
      set = api(responder.token, "POST", `/api/v1/users/${victim.id}/email`, { email: restored }).finally(() => settled++);
      await until(async () => settled > 0 || (await waiting(["transactionid", "tuple"])) >= 1);
      run = job.start();
      void run.finally(() => settled++);
      // The job waits too: on a row, or (since the batch takes its locks first) on the link lock set-email holds.
      await until(async () => settled > 0 || (await waiting(["transactionid", "tuple", "advisory"])) >= 2);
    } finally {
      await stamp.commit();
    }
    const [answer, ended] = await Promise.all([set, run]);
    assert.ok(answer.statusCode < 500, `set-email answered ${show(answer)} (job: ${ended.status} ${ended.error ?? ""})`);
    assert.equal(ended.status, "done", `the containment job ended ${ended.status}: ${ended.error ?? ""} (set-email: ${show(answer)})`);
    assert.equal(answer.statusCode, 200, show(answer));
    assert.equal((await account(victim.id)).email, restored);
    const left = await site.fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", victim.id).execute();
    assert.deepEqual(left, [], "no session of the victim is left");
  });

  // ---- demote-inactive-admins deletes role rows an inactive administrator's change holds FOR SHARE ----

  it("attack: an administrator who signs in only with API tokens (inactive by login) locking an account while a lock-accounts + demote-inactive-admins job covers both does not deadlock on PostgreSQL: the batch takes turns with the lock (ASVS 16.5.3) (was: a 500 or a failed job)", async () => {
    // The lock route reads its caller's roles FOR SHARE (permissionsHeldWithin), then waits for the target's changes in
    // flight (holdActing, exclusive), then UPDATEs the target. The job's batch UPDATEs both accounts (lock-accounts),
    // then DELETEs the caller's administrative role rows (demote-inactive-admins: no interactive login for N days, as
    // for automation that only uses tokens), which wait for the lock route's FOR SHARE; the lock route's UPDATE waits
    // for the job's row lock.
    const caller = (await site.fx.user(`token-admin-${++made}@example.org`, { roles: ["admin"] })).id;
    const target = (await site.fx.user(`lock-target-${made}@example.org`)).id;
    // Two days pass without an interactive login; the automation's token is minted after them.
    site.fx.clock.advance(2 * 86_400_000);
    const token = await tokenFor(caller, ["admin"]);
    // A change of the target in flight (its own request, holding its right to act, shared).
    const inFlight = await holdOpen(site.fx.app.db, (trx) => holdActing(site.fx.app.db, trx, target, "shared"));
    let lock!: Promise<Response>;
    let job!: Awaited<ReturnType<typeof contain>>;
    let settled = 0;
    try {
      lock = api(token, "POST", `/api/v1/users/${target}/lock`, { reason: "suspicious" }).finally(() => settled++);
      await until(async () => settled > 0 || (await waiting(["advisory"])) >= 1);
      job = await contain(["lock-accounts", "demote-inactive-admins"], [caller, target], { inactiveDays: 1 });
      void job.run.finally(() => settled++);
      // The job waits too: on a row, or (since the batch takes its locks first) on the last-admin lock the lock route holds.
      await until(async () => settled > 0 || (await waiting(["transactionid", "tuple", "advisory"])) >= 2);
    } finally {
      await inFlight.commit();
    }
    const [answer, ended] = await Promise.all([lock, job.run]);
    // Secure: both finish, in either order (a lock that comes second finds the account locked, or its caller demoted: 403).
    assert.ok(answer.statusCode < 500, `the lock answered ${show(answer)} (job: ${ended.status} ${ended.error ?? ""})`);
    assert.equal(ended.status, "done", `the containment job ended ${ended.status}: ${ended.error ?? ""} (lock: ${show(answer)})`);
    assert.notEqual((await account(target)).locked_at, null);
    assert.equal((await site.fx.app.accounts.roles.permissionsOf(caller)).has("admin"), false, "the inactive administrator was demoted");
    assert.ok((await usableAdmins(site.fx.app.db.db)) >= 1, "an administrator is left usable");
  });
});
