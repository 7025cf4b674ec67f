// Red team, the upgrade, second look: the rows this session's changes meet in a store the previous release wrote
// (d935f11; read with `git show d935f11:<path>`), opened by today's code while things are in flight. The attackers: a
// mailbox thief holding reset links it asked for while the victims' authenticator apps stood, counting on a containment
// job that straddles the upgrade; a relay whose sign-in sat at the second-factor gate when the nodes were replaced; and
// bad luck (an old sender mid-delivery, an import killed half way, a legacy host's clock five minutes fast). Old stores
// are built with the migrator stopped at 33, or rows are put back exactly as the previous release left them (each test
// says how, and which file of d935f11 it follows). One finding, fixed since ("attack: … (was: …)"): require-mfa-reenrolment
// spent open links only in the batches today's code runs, so a job resumed across the upgrade left the links of the
// accounts its earlier batches covered; a closing check of the job now spends them (spendLinksLeftOpen). Pinned as holding: a pre-34 session at the gate is not
// remembered; an old sender's 5-minute claim is honoured by a 15-minute one, no double delivery; a half-written import
// resumes under its job and judges only the rows after its cursor. Read and not tested (nothing to pin beyond existing
// tests): the 100-failure stop's rows (flood_streaks, 'account'/'ip' events) are written today by the very statements the
// previous release ran, so test/lockout-red-team.test.ts covers a stop left by it; sign-ups the previous release counted
// under "mail-to" spend the email-change budget until they leave its one-hour window, no longer. Loopback and temp dirs.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { containDeps, jobView, runJob } from "../src/contain/index.ts";
import { jobRunnerOf } from "../src/http/api/index.ts";
import { authFixture, HOST, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { Outbox } from "../src/notify/outbox.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { migrate } from "../src/store/migrator.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { createPasswordContext } from "../src/accounts/passwords/index.ts";
import { createUserStore } from "../src/accounts/users/user-store.ts";
import { importUsers, type ImportDeps, type ImportOptions, type ImportReport } from "../src/accounts/import/importer.ts";
import { parseFieldMap, resolveMap } from "../src/accounts/import/mapping.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";

const MINUTE = 60_000;
// The previous release's schema (d935f11 ends at migration 33).
const THROUGH_33 = MIGRATIONS.filter((m) => m.version <= 33);
const importPasswords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const THIEFS_PASSWORD = "thief's pick 4417 marsh lantern";

describe("upgrade, second look: a require-mfa-reenrolment job half run by the previous release", () => {
  let fx: AuthFixture;
  let adminToken: string;
  before(async () => {
    fx = await authFixture();
    // Jobs are driven by hand (runJob): the batches the previous release ran, then the resume after the upgrade.
    await jobRunnerOf(fx.server)?.stop();
    const admin = await fx.user("responder@example.org", { roles: ["admin"] });
    await ensureSecondFactor(fx.app, admin.id); // an administrator without a factor: the MFA policy would hold the token
    adminToken = (await fx.app.accounts.tokens.create(admin.id, { name: "responder", scopes: ["admin"] })).token;
  });
  after(async () => {
    await fx.close();
  });
  const { withTOTP, resetToken } = authFlows(() => fx);

  function api(method: "GET" | "POST", url: string, body?: unknown): Promise<LightMyRequestResponse> {
    return fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${adminToken}` }, ...(body === undefined ? {} : { payload: body as object }) });
  }

  function complete(token: string): Promise<LightMyRequestResponse> {
    return fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword: THIEFS_PASSWORD } });
  }

  it("attack: a reset link a mailbox thief kept, for an account whose factor a require-mfa-reenrolment batch of the previous release removed, is spent by the job's closing check once today's code finishes the job, and the job says so (ASVS 6.4.3, 7.4.3) (was: it reset the password with no factor, and the job reported done counting only its own batches' links)", async () => {
    const a = await withTOTP("straddle-a@example.org");
    const b = await withTOTP("straddle-b@example.org");
    const decoy = await fx.user("straddle-decoy@example.org");
    // While the thief read both mailboxes: a reset link for each account, harmless while the app guards it.
    const kept = new Map([[a.id, await resetToken(a.email)], [b.id, await resetToken(b.email)]]);
    for (const link of kept.values()) assert.equal((await complete(link)).statusCode, 401, "control: the app guards the link while it stands");
    fx.clock.advance(5 * MINUTE);
    const posted = await api("POST", "/api/v1/contain/jobs", { levers: ["require-mfa-reenrolment"], scope: { ids: [a.id, b.id] }, batchSize: 1 });
    assert.equal(posted.statusCode, 202, posted.body);
    const jobId = (posted.json() as { job: { id: string } }).job.id;
    const deps = containDeps(fx.app);
    // Batch 1 on the previous release (d935f11): its lever deleted the factors, raised the stamps, ended the sessions and
    // queued the notices exactly as today's does, and left every link alone (no touchesLinks, no spendOpenLinks: git show
    // d935f11:src/contain/levers/require-mfa-reenrolment.ts). Today's batch 1 is run with the links held under a decoy
    // account, then put back: the link rows end as that release left them, untouched.
    const linkIds = [...kept.values()].map((t) => t.slice(0, t.indexOf(".")));
    const owners = new Map((await fx.app.db.db.selectFrom("password_reset_tokens").select(["id", "user_id"]).where("id", "in", linkIds).execute()).map((r) => [r.id, r.user_id]));
    await fx.app.db.db.updateTable("password_reset_tokens").set({ user_id: decoy.id }).where("id", "in", linkIds).execute();
    await runJob(deps, jobId, { stopAfterBatches: 1 });
    for (const [id, owner] of owners) await fx.app.db.db.updateTable("password_reset_tokens").set({ user_id: owner }).where("id", "=", id).execute();
    const factorsLeft = new Set((await fx.app.db.db.selectFrom("mfa_totp").select("user_id").where("user_id", "in", [a.id, b.id]).execute()).map((r) => r.user_id));
    const early = [a, b].find((u) => !factorsLeft.has(u.id));
    const late = [a, b].find((u) => factorsLeft.has(u.id));
    assert.ok(early && late, "the previous release's batch removed one account's app, and left the other's to the next batch");
    // The upgrade. Today's code resumes the job and finishes it.
    fx.clock.advance(2 * MINUTE);
    assert.equal((await runJob(deps, jobId)).status, "done");
    const view = jobView(await fx.app.accounts.jobs.get(jobId));
    fx.clock.advance(MINUTE);
    const lateReset = (await complete(kept.get(late.id) as string)).statusCode;
    const earlyReset = (await complete(kept.get(early.id) as string)).statusCode;
    // What the thief gets from it: the account, signed in with the password it chose, no factor asked.
    const thief = fx.browser({ newDevice: true });
    const login = await thief.login(early.email, THIEFS_PASSWORD);
    const counts = view.counts["require-mfa-reenrolment"] ?? {};
    assert.deepEqual(
      { earlyReset, thiefSignedInWithoutFactor: login.statusCode === 200 && login.json().mfaRequired !== true, lateReset },
      { earlyReset: 400, thiefSignedInWithoutFactor: false, lateReset: 400 },
      `the job reports done over ${view.total} accounts with resetLinksSpent ${String(counts["resetLinksSpent"])} (two links were open) and no note about the links; ` +
        `the link of the account its first batch covered before the upgrade reset the password with no factor (${earlyReset}), the next login answered ${login.statusCode} ${login.body}`,
    );
    // And the job says so: both links counted, the one left open by the earlier batch named in a note.
    assert.deepEqual([counts["resetLinksSpent"], counts["linksLeftOpenSpent"]], [2, 1]);
    assert.ok(view.notes.some((n) => /links that earlier batches had left open/.test(n)), JSON.stringify(view.notes));
  });
});

describe("upgrade, second look: a sign-in held at the second-factor gate across migration 34", () => {
  let fx: AuthFixture;
  before(async () => {
    fx = await authFixture();
  });
  after(async () => {
    await fx.close();
  });
  const { withTOTP } = authFlows(() => fx);

  /** The new-device notices (the hour's and its follow-up) queued to `address`. */
  async function newDeviceNotices(address: string): Promise<string[]> {
    const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["kind"]).where("to_address", "=", address).orderBy("created_at").execute();
    return rows.map((r) => r.kind).filter((k) => k.startsWith("security.new-device"));
  }

  /** Whether the newest auth.login.succeeded of `userId` found the browser new. */
  async function lastLoginWasNew(userId: string): Promise<unknown> {
    const rows = await fx.app.db.db.selectFrom("audit_events").select(["data"]).where("subject", "=", userId).where("type", "=", "auth.login.succeeded").orderBy("seq", "desc").limit(1).execute();
    return (JSON.parse(rows[0]?.data ?? "{}") as Record<string, unknown>)["newDevice"];
  }

  it("attack: a sign-in the previous release held at the second-factor gate (device_told 0, as migration 34 leaves every row) is not remembered by today's factor step: its browser's next sign-in is new and told to the owner, and it is remembered once a login of today's code told of it (ASVS 6.3.5)", async () => {
    const owner = await withTOTP("gate-owner@example.org");
    const laptop = fx.browser({ newDevice: true });
    fx.clock.advance(50 * MINUTE);
    const held = await laptop.login(owner.email, owner.password);
    assert.equal(held.json().mfaRequired, true, held.body);
    // The previous release queued the hour's new-device notice for this browser (the same key, new-device:<user>:<hour>)
    // and wrote its session without the column, which migration 34 adds as 0: today's login marked it told, put back.
    await fx.app.db.db.updateTable("sessions").set({ device_told: 0 }).where("id", "=", held.json().sessionId as string).execute();
    const toldBefore = (await newDeviceNotices(owner.email)).length;
    // The upgrade. The code is typed on today's code: no session says the owner was told, so nothing is remembered, whoever
    // holds the browser (the owner, or a relay whose login on the previous release found the hour's notice spent).
    const passed = await laptop.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(passed.statusCode, 200, passed.body);
    const foundNew: unknown[] = [];
    const told: number[] = [];
    // Three later sign-ins of the same browser: 5, 25 and 45 minutes on (the first in the same clock hour).
    for (let i = 0; i < 3; i++) {
      fx.clock.advance((i === 0 ? 5 : 20) * MINUTE);
      assert.ok((await laptop.request("POST", "/auth/logout", { csrf: true })).statusCode < 400);
      const again = await laptop.login(owner.email, owner.password);
      foundNew.push(await lastLoginWasNew(owner.id));
      told.push((await newDeviceNotices(owner.email)).length - toldBefore);
      const verified = await laptop.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now() + STEP) } });
      assert.equal(verified.statusCode, 200, `${again.body} ${verified.body}`);
      fx.clock.advance(STEP);
    }
    assert.equal(foundNew[0], true, "the first sign-in after the step finds the browser new: the step remembered nothing");
    assert.ok((told[0] ?? 0) >= 1, "and the owner is told of it (the hour's follow-up, or the hour's notice)");
    assert.equal(foundNew.at(-1), false, `remembered once a login of today's code told of it (new at each sign-in: ${JSON.stringify(foundNew)})`);
    assert.equal(told.at(-1), told.at(-2), "no notice for a remembered browser");
  });
});

forEachDialect("upgrade, second look: mail an old-release sender holds while a new one runs", (dfx) => {
  it("attack: a new sender (15-minute lease) takes no message an old-release sender claimed with its 5-minute lease before that lease ends, an outcome the old sender records within it stands, and a dead old sender's mail is sent once, its late outcome refused: no double delivery across the two lease lengths", async () => {
    const database = await dfx.empty();
    const clock = new ManualClock(Date.UTC(2026, 11, 5, 16, 30));
    assert.equal((await migrate(database, clock, THROUGH_33)).error, undefined);
    const outbox = new Outbox({ database, clock, random: systemRandom });
    for (const name of ["delivered-by-old", "old-node-died"]) {
      await outbox.enqueue({ idempotencyKey: name, to: `${name}@example.org`, subject: name, text: name, html: `<p>${name}</p>`, kind: "security.password-changed" });
    }
    // The previous release's sender (git show d935f11:src/notify/sender.ts): claim with DEFAULT_LEASE 5 minutes, count the
    // attempt as each delivery starts, deliver within its deadline a quarter of the lease before the lease ends.
    const old = "old-node/clm_previousrelease00000000000";
    const held = await outbox.claim({ claimer: old, limit: 10, leaseMs: 5 * MINUTE });
    assert.equal(held.length, 2);
    for (const m of held) assert.equal(await outbox.startAttempt({ id: m.id, claimer: old }), 1);
    // The upgrade: migration 34 and every later one, and a node of today's code starts its sender (lease 15 minutes, deadline 11).
    assert.deepEqual((await migrate(database, clock)).results.filter((r) => r.status === "applied").map((r) => r.version), MIGRATIONS.filter((m) => m.version > 33).map((m) => m.version));
    const transport = recordingTransport();
    const sender = new OutboxSender({ outbox, transport, clock, random: systemRandom }, { name: "new-node" });
    clock.advance(MINUTE);
    assert.equal((await sender.runOnce()).claimed, 0, "within the old claim's lease");
    // The old sender's first delivery ends inside its deadline and is recorded; the other node dies mid-way.
    const byName = new Map(held.map((m) => [m.idempotencyKey, m.id]));
    assert.equal(await outbox.markSent({ id: byName.get("delivered-by-old") as string, claimer: old, providerMessageId: "old-relay-1" }), true);
    clock.advance(4 * MINUTE - 1);
    assert.equal((await sender.runOnce()).claimed, 0, "a millisecond before the 5-minute lease ends: still the old sender's");
    clock.advance(2);
    const report = await sender.runOnce();
    assert.deepEqual([report.claimed, report.sent, transport.sent.map((m) => m.to)], [1, 1, ["old-node-died@example.org"]]);
    // The old node's late outcome for the mail the new node took over changes nothing.
    assert.equal(await outbox.markSent({ id: byName.get("old-node-died") as string, claimer: old, providerMessageId: "late" }), false);
    clock.advance(20 * MINUTE);
    assert.equal((await sender.runOnce()).claimed, 0, "nothing left to send again");
    const rows = await database.db.selectFrom("outbox_messages").select(["idempotency_key", "status", "attempts", "provider_message_id"]).orderBy("idempotency_key").execute();
    assert.deepEqual(rows.map((r) => [r.idempotency_key, r.status, Number(r.attempts), r.provider_message_id]), [
      ["delivered-by-old", "sent", 1, "old-relay-1"],
      ["old-node-died", "sent", 2, null],
    ]);
  });
});

forEachDialect("upgrade, second look: a users import left half written by the previous release", (dfx) => {
  it("attack: resumed on today's code, an import the previous release left half written keeps its job (its recorded settings are today's), its written rows are neither judged again nor reported, and a row after the cursor dated 5 minutes ahead is stored at the import's time and counted once, by the dry run as by the run", async () => {
    const database = await dfx.empty();
    const clock = new ManualClock(Date.UTC(2026, 11, 5, 16, 40));
    assert.equal((await migrate(database, clock, THROUGH_33)).error, undefined);
    const deps: ImportDeps = {
      database, clock, passwords: importPasswords, users: createUserStore({ database, clock, random: systemRandom }),
      audit: new AuditLog({ database, clock, random: systemRandom }), jobs: new JobStore({ database, clock, random: systemRandom }), notices: null,
    };
    const t0 = clock.now();
    const seconds = (ms: number): number => Math.floor(ms / 1000);
    // The legacy host's clock runs five minutes fast: lines 2 and 4 were last signed in "in five minutes".
    const csv = `email,display_name,last_login_at\n` +
      `ahead-written@example.org,A,${seconds(t0 + 5 * MINUTE)}\n` +
      `plain-written@example.org,B,${seconds(t0 - 86_400_000)}\n` +
      `ahead-resumed@example.org,C,${seconds(t0 + 5 * MINUTE)}\n` +
      `plain-resumed@example.org,D,${seconds(t0 - 86_400_000)}\n`;
    const map = resolveMap({ preset: null, map: parseFieldMap(undefined), saltColumn: undefined });
    const options = (extra: Partial<ImportOptions> = {}): ImportOptions => ({
      format: "csv", onConflict: "fail", batchSize: 1, dryRun: false, skipBad: false, actor: "cli:ops", file: "export.csv",
      rules: { map, preset: null, source: "export.csv", salted: null },
      open: async function* () {
        yield csv;
      },
      ...extra,
    });
    // The previous release's run (git show d935f11:src/accounts/import/mapping.ts, parseTime): no time was judged against
    // a clock, every one up to year 9999 stored as given. Today's importer reads its clock once, only for that judgement:
    // a first reading at that bound makes its validation the previous release's, the rest of the run being the same code
    // (apply-batch.ts changed only for updates). The process dies in the write pass after lines 2 and 3.
    let readings = 0;
    const oldJudge: ImportDeps = { ...deps, clock: { now: () => (readings++ === 0 ? Date.UTC(9999, 11, 31) : clock.now()) } };
    await assert.rejects(importUsers(oldJudge, options({ onProgress: (n, phase) => {
      if (phase === "write" && n === 3) throw new Error("the process died");
    } })), /the process died/);
    assert.equal(await deps.users.count(), 2);
    // The upgrade, a minute later; the operator runs the same command on today's code, a dry run first.
    clock.advance(MINUTE);
    assert.equal((await migrate(database, clock)).error, undefined);
    const summary = (r: ImportReport): unknown => ({ resumedAfterLine: r.resumedAfterLine, alreadyImported: r.alreadyImported, bad: r.bad, created: r.created, timesClamped: r.timesClamped });
    const expected = { resumedAfterLine: 3, alreadyImported: 2, bad: [], created: 2, timesClamped: 1 };
    const dry = await importUsers(deps, options({ dryRun: true }));
    assert.deepEqual(summary(dry), expected, "the dry run predicts the resumed run");
    const resumed = await importUsers(deps, options());
    assert.deepEqual(summary(resumed), expected);
    assert.equal(resumed.jobId, dry.jobId);
    assert.equal((await deps.jobs.get(resumed.jobId as string)).status, "done");
    const logins = Object.fromEntries((await database.db.selectFrom("users").select(["email", "last_login_at"]).execute()).map((r) => [r.email, Number(r.last_login_at)]));
    assert.deepEqual(logins, {
      // As the previous release stored it: four minutes ahead now, less than the day today's rule would clamp.
      "ahead-written@example.org": t0 + 5 * MINUTE,
      "plain-written@example.org": t0 - 86_400_000,
      // Today's rule: stored as this import's time.
      "ahead-resumed@example.org": t0 + MINUTE,
      "plain-resumed@example.org": t0 - 86_400_000,
    });
  });
});
