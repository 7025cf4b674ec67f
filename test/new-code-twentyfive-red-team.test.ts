// Red team, round "new code twenty-five": the day's new rules, attacked at their edges.
//
// Who: (1) an outsider who can start sign-ups (POST /auth/register, open to anyone) and an administrator or API token
// with accounts.write creating accounts (POST /api/v1/users, `bulwark users create`), which now take an address held
// only by an unfinished sign-up, deleting it (src/accounts/email-change/sign-up-shell.ts createOverSignUps);
// (2) a session holder whose session sits exactly on a limit or was stamped by a node whose clock runs ahead, against
// the one open-session rule (src/accounts/sessions/open-rule.ts) now shared by validate, list, purge and containment's
// counts.
//
// Tried: a create for a look-alike address (the same letters in another script) over the plain address's sign-up;
// two administrators creating the same address at once over one sign-up; a sign-up an administrator has locked;
// sessions exactly at the absolute end, the idle end and the dated-ahead tolerance (validate, list, containment's dry
// run and purge must agree to the millisecond, on SQLite and PostgreSQL); sessions dated ahead by a fast node, which
// containment no longer counts, must still be ended (by ids and --all, revoke-sessions and invalidate-passwords).
//
// `check logins --state` was read through (window-state.ts, check-logins.ts): half-open windows meet exactly, the
// state moves only after the report, never past the log's read time, and the file rules are pinned by
// test/check-logins-since-last.test.ts; no attack found there that those tests do not already make.
//
// Held: the concurrent creates (one account, one removal, the other 409), the locked sign-up keeps its address, the
// boundaries agree everywhere, and the uncounted dated-ahead sessions are ended all the same.
// Found (fixed since: addressHolders removes only sign-ups of the address itself; one that only looks like it is
// refused as confusable): an administrator's create of a look-alike address (`ѕсоре@…` in Cyrillic) deletes the unfinished sign-up of
// the plain address (`scope@…`) and creates the look-alike, which account creation refused before (409
// BULWARK_ERR_EMAIL_CONFUSABLE, docs/decisions/0013-confusable-skeletons.md): addressHolders counts a sign-up that only
// reads like the address as one that holds it.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { SIGN_UP_REMOVED_EVENT } from "../src/accounts/email-change/index.ts";
import { createSessionManager, type SessionManager } from "../src/accounts/sessions/session-manager.ts";
import { createContainJob, dryRunContain, jobView, runJob, type ContainDeps } from "../src/contain/index.ts";
import { HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { auditHead, eventsSince } from "./helpers/audit-events.ts";
import { authFixtureOn, authFlows } from "./helpers/auth-flows.ts";
import { adminCreates } from "./helpers/admin-create.ts";
import { openContainFixture, seedContainUsers, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect, type DialectFixture } from "./helpers/dialects.ts";

const LABEL = "new-code-twentyfive-red-team";
/** "scope" written wholly in Cyrillic (ѕ с о р е): one script, so no mixed-script rule refuses it; it reads as "scope". */
const CYRILLIC_SCOPE = "\u0455\u0441\u043E\u0440\u0435";

forEachDialect("new code twenty-five: an administrator's create over an unfinished sign-up", (dx) => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  let writer: string;
  let n = 0;
  before(async () => {
    fx = await authFixtureOn(dx, LABEL, { BULWARK_REGISTRATION: "open" });
    const writerId = await flows.userWith(["accounts.write", "accounts.read"]);
    writer = await flows.tokenFor(writerId, ["accounts.write", "accounts.read"]);
  });
  after(async () => {
    await fx?.close();
  });

  // An administrator's create, through the API (the writer's token) and `bulwark users create`.
  const { api: create, cli } = adminCreates(() => fx, dx, LABEL, () => writer);

  it("attack: an administrator creates a look-alike of a signed-up address (`ѕсоре@…` in Cyrillic over the sign-up of `scope@…`) — the plain address's sign-up is not deleted, and the look-alike is refused as confusable as account creation refuses it (ASVS 1.1.1, 6.3.7) (was: the sign-up deleted and the look-alike created)", async () => {
    const problems: string[] = [];
    for (const via of ["api", "cli"] as const) {
      const domain = `corp-${via}-${++n}.example`;
      // The plain address's owner (or anyone) signed up and has not followed the link yet.
      const squat = await flows.unfinishedSignUp(`scope@${domain}`);
      const mark = await auditHead(fx.app.db.db);
      const lookalike = `${CYRILLIC_SCOPE}@${domain}`;
      let outcome: string;
      if (via === "api") {
        const res = await create({ email: lookalike });
        outcome = `${res.statusCode} ${res.statusCode === 409 ? (res.json() as { error: { code: string } }).error.code : ""}`.trim();
      } else {
        const r = await cli(["--email", lookalike, "--json"]);
        outcome = `exit ${r.code}`;
      }
      const signUpKept = (await fx.app.accounts.users.getById(squat.id)) !== null;
      const lookalikeMade = (await fx.app.accounts.users.findByIdentifier(lookalike)) !== null;
      const removed = (await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT])).length;
      if (!signUpKept || lookalikeMade || removed > 0) {
        problems.push(`${via}: the create of ${lookalike} answered ${outcome}; the sign-up of scope@${domain} was ${signUpKept ? "kept" : "DELETED"}` +
          `${removed > 0 ? " (user.sign-up-removed recorded for a different address)" : ""}, and the look-alike account ${lookalikeMade ? "WAS CREATED" : "was not created"}`);
      }
    }
    assert.deepEqual(problems, [], `an address that only reads like the sign-up's was treated as the sign-up's own: ${problems.join("; ")}`);
  });

  it("attack: two administrators create the same address at once over one unfinished sign-up — one account, one removal recorded, the other create answered 409 taken (ASVS 6.3.7)", async () => {
    const address = `twice-${++n}@corp.example`;
    const squat = await flows.unfinishedSignUp(address);
    const mark = await auditHead(fx.app.db.db);
    const answers = await Promise.all([create({ email: address }), create({ email: address })]);
    const statuses = answers.map((r) => r.statusCode).sort();
    assert.deepEqual(statuses, [201, 409], answers.map((r) => r.body).join(" | "));
    const refused = answers.find((r) => r.statusCode === 409);
    assert.equal(refused?.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    const made = answers.find((r) => r.statusCode === 201)?.json() as { user: { id: string }; signUpRemoved: string | null };
    assert.equal(made.signUpRemoved, squat.id);
    assert.equal((await fx.app.accounts.users.findByIdentifier(address))?.id, made.user.id);
    const removed = await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT]);
    assert.equal(removed.length, 1, "the sign-up is removed and recorded once");
    assert.equal(removed[0]?.data.for, made.user.id);
  });

  it("attack: a sign-up an administrator has locked (a decision about that account, perhaps while investigating the squat) is not deleted by a create for its address: 409 taken, the lock and its account kept", async () => {
    const address = `locked-${++n}@corp.example`;
    const squat = await flows.unfinishedSignUp(address);
    const lock = await fx.server.inject({ method: "POST", url: `/api/v1/users/${squat.id}/lock`, headers: { host: HOST, authorization: `Bearer ${writer}`, "content-type": "application/json" }, payload: JSON.stringify({ reason: "squat under investigation" }) });
    assert.equal(lock.statusCode, 200, lock.body);
    const mark = await auditHead(fx.app.db.db);
    const res = await create({ email: address });
    assert.equal(res.statusCode, 409, `a locked sign-up was taken over: ${res.body}`);
    assert.equal(res.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    assert.ok((await fx.app.accounts.users.getById(squat.id))?.lockedAt, "the locked account stays, locked");
    assert.deepEqual(await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT]), []);
  });
});

const NOW = Date.UTC(2026, 10, 20);
const MIN = 60_000;
const HOUR = 60 * MIN;
const IN_FORCE = { absoluteTimeoutMs: 2 * HOUR, idleTimeoutMs: 30 * MIN };

interface Dated {
  label: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  open: boolean;
}

interface Seeded {
  fx: ContainFixture;
  deps: ContainDeps;
  sessions: SessionManager;
  ids: string[];
  tokens: string[];
}

/** One user per dated session (usr_0000…), each session issued by a session manager and then given its dates. */
async function seedDated(dfx: DialectFixture, dated: (tolerance: number) => Dated[]): Promise<Seeded & { rows: Dated[] }> {
  const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
  const sessions = createSessionManager({ database: fx.database, clock: fx.clock, random: fx.random, policy: IN_FORCE });
  const rows = dated(sessions.policy.datedAheadToleranceMs);
  const ids = await seedContainUsers(fx, NOW, rows.length);
  const tokens: string[] = [];
  for (const [i, d] of rows.entries()) {
    const { token, session } = await sessions.createSession(ids[i] as string, { aal: 1 });
    await fx.database.db.updateTable("sessions").set({ created_at: d.createdAt, last_seen_at: d.lastSeenAt, expires_at: d.expiresAt }).where("id", "=", session.id).execute();
    tokens.push(token);
  }
  return { fx, deps: { ...fx, sessionPolicy: sessions.policy }, sessions, ids, tokens, rows };
}

forEachDialect("new code twenty-five: the one open-session rule at its edges", (dfx) => {
  it("attack: sessions exactly at the absolute end, the idle end and the dated-ahead tolerance (and 1 ms either side) — validate, the session list, containment's dry run and purge agree on every one, to the millisecond (ASVS 7.3.1, 7.3.2)", async () => {
    const s = await seedDated(dfx, (tol) => [
      { label: "absolute end now", createdAt: NOW - IN_FORCE.absoluteTimeoutMs, lastSeenAt: NOW - MIN, expiresAt: NOW + 10 * HOUR, open: false },
      { label: "absolute end in 1 ms", createdAt: NOW - IN_FORCE.absoluteTimeoutMs + 1, lastSeenAt: NOW - MIN, expiresAt: NOW + 10 * HOUR, open: true },
      { label: "stored expiry now", createdAt: NOW - HOUR, lastSeenAt: NOW - MIN, expiresAt: NOW, open: false },
      { label: "stored expiry in 1 ms", createdAt: NOW - HOUR, lastSeenAt: NOW - MIN, expiresAt: NOW + 1, open: true },
      { label: "idle end now", createdAt: NOW - HOUR, lastSeenAt: NOW - IN_FORCE.idleTimeoutMs, expiresAt: NOW + 10 * HOUR, open: false },
      { label: "idle end in 1 ms", createdAt: NOW - HOUR, lastSeenAt: NOW - IN_FORCE.idleTimeoutMs + 1, expiresAt: NOW + 10 * HOUR, open: true },
      { label: "created exactly the tolerance ahead", createdAt: NOW + tol, lastSeenAt: NOW + tol, expiresAt: NOW + tol + 12 * HOUR, open: true },
      { label: "created 1 ms past the tolerance ahead", createdAt: NOW + tol + 1, lastSeenAt: NOW + tol + 1, expiresAt: NOW + tol + 12 * HOUR, open: false },
      { label: "last seen 1 ms past the tolerance ahead", createdAt: NOW - MIN, lastSeenAt: NOW + tol + 1, expiresAt: NOW + 12 * HOUR, open: false },
    ]);
    const expected = s.rows.map((d) => `${d.label}: ${d.open ? "open" : "over"}`);
    // The session list (SQL).
    const listed = await Promise.all(s.ids.map((id) => s.sessions.list(id)));
    assert.deepEqual(s.rows.map((d, i) => `${d.label}: ${(listed[i]?.length ?? 0) > 0 ? "open" : "over"}`), expected, "sessions.list");
    // Containment's dry run (SQL, by the policy in force): the users holding an open session.
    const dry = await dryRunContain(s.deps, { levers: ["revoke-sessions"], scope: { ids: s.ids }, actor: "t" });
    assert.equal(dry.levers["revoke-sessions"]?.counts["sessions"], s.rows.filter((d) => d.open).length, "the dry run's count");
    // Purge (the rule's negation) deletes exactly the ones over.
    const purged = await s.sessions.purgeExpired();
    const left = new Set((await s.fx.database.db.selectFrom("sessions").select("user_id").execute()).map((r) => r.user_id));
    assert.deepEqual(s.rows.map((d, i) => `${d.label}: ${left.has(s.ids[i] as string) ? "open" : "over"}`), expected, "purgeExpired");
    assert.equal(purged, s.rows.filter((d) => !d.open).length);
    // validate (in memory) accepts exactly the ones left.
    const verdicts = await Promise.all(s.tokens.map((t) => s.sessions.validate(t)));
    assert.deepEqual(s.rows.map((d, i) => `${d.label}: ${verdicts[i]?.valid ? "open" : "over"}`), expected, "validate");
  });

  for (const lever of ["revoke-sessions by ids", "revoke-sessions --all", "invalidate-passwords"] as const) {
    it(`attack: sessions stamped by a node whose clock runs ahead (past the tolerance, so containment no longer counts them) survive ${lever}? — every one is ended all the same: no row left, refused by a node whose clock is as far ahead (ASVS 7.4.1)`, async () => {
      const s = await seedDated(dfx, (tol) => [
        { label: "a fast node's session, 10 minutes ahead", createdAt: NOW + tol + 10 * MIN, lastSeenAt: NOW + tol + 10 * MIN, expiresAt: NOW + tol + 12 * HOUR, open: false },
        { label: "last seen on the fast node", createdAt: NOW - HOUR, lastSeenAt: NOW + tol + 10 * MIN, expiresAt: NOW + 11 * HOUR, open: false },
        { label: "an ordinary open session", createdAt: NOW - HOUR, lastSeenAt: NOW - MIN, expiresAt: NOW + 11 * HOUR, open: true },
      ]);
      s.fx.clock.advance(1);
      const request = lever === "invalidate-passwords"
        ? { levers: ["invalidate-passwords"], scope: { ids: s.ids }, actor: "t" }
        : { levers: ["revoke-sessions"], scope: lever === "revoke-sessions --all" ? { all: true as const } : { ids: s.ids }, actor: "t" };
      const name = request.levers[0] as string;
      const job = await createContainJob(s.deps, request);
      const view = jobView(await runJob(s.deps, job.id));
      assert.equal(view.status, "done");
      assert.equal(view.counts[name]?.["sessions"], 1, "counted: the open one only (the new rule)");
      const rows = await s.fx.database.db.selectFrom("sessions").select(["user_id", "created_at"]).where("user_id", "is not", null).execute();
      assert.deepEqual(rows, [], "every session of the scope, counted or not, is deleted");
      // A node whose clock is as far ahead as the fast one's judges the tokens: none is open.
      const fastClock = new ManualClock(NOW + s.sessions.policy.datedAheadToleranceMs + 10 * MIN + 1);
      const fast = createSessionManager({ database: s.fx.database, clock: fastClock, random: s.fx.random, policy: IN_FORCE });
      const verdicts = await Promise.all(s.tokens.map((t) => fast.validate(t)));
      assert.deepEqual(verdicts.map((v) => v.valid), [false, false, false], `a fast node still accepts one: ${JSON.stringify(verdicts)}`);
    });
  }
});
