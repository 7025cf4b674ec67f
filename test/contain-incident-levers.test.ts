// Containment levers against what the incident replays found (test/incident-replay-drupal-sourcelair.test.ts,
// test/incident-replay-miraheze-sentry.test.ts), through the real reset mailer and outbox, on SQLite and PostgreSQL:
// invalidate-passwords holds back the reset link of an account its intruder moved to their own address, mails no
// disabled account, and a password lever without revoke-tokens names the API tokens it leaves working; expire-passwords
// tells each owner. Each time the dry run predicts the run's counts, and a second run does nothing twice.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { createResetMailer } from "../src/accounts/password-reset/reset-mail.ts";
import { createPasswordResetService } from "../src/accounts/password-reset/reset-service.ts";
import { createContainJob, createUndoJob, dryRunContain, jobView, runJob, type ContainRequest, type ResetNotifier } from "../src/contain/index.ts";
import { notifySecurityEvent } from "../src/notify/index.ts";
import { Outbox } from "../src/notify/outbox.ts";
import type { Database } from "../src/store/database.ts";
import { bulwark, bulwarkHere } from "./helpers/cli.ts";
import { codeOf, openContainFixture, seedContainUsers, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 10);
const RESET_KIND = "account.containment-reset-link";

/** The containment dependencies with the app's notifier: reset links and security notices through the real outbox. */
async function setup(database: Database): Promise<ContainFixture> {
  const fx = await openContainFixture(database, { now: NOW });
  const deps = { database, clock: fx.clock, random: fx.random };
  const outbox = new Outbox(deps);
  const mailer = createResetMailer({ database, resets: createPasswordResetService(deps), outbox, random: fx.random });
  // As resetNotifierFor (src/contain/service.ts) builds it from an app.
  const notifier: ResetNotifier = {
    async enqueueReset(trx, user, jobId, seq) {
      await mailer.issueInTransaction(trx, user.id, { email: user.email, publicURL: "https://bulwark.test", serviceName: "Bulwark", reason: "containment", jobId, ...(seq === undefined ? {} : { seq }) });
    },
    async enqueueResets(trx, users, jobId) {
      await mailer.issueContainmentLinks(trx, users, { publicURL: "https://bulwark.test", serviceName: "Bulwark", jobId });
    },
    async enqueueNotice(trx, user, jobId, event) {
      await notifySecurityEvent(outbox, { eventId: `${jobId}.${user.id}`, to: user.email, at: fx.clock.now(), event }, { appName: "Bulwark", executor: trx });
    },
  };
  return { ...fx, notifier };
}

/** Appends an audit event about `userId` at `at` (the log's clock is moved there and back). */
async function eventAt(fx: ContainFixture, at: number, type: string, userId: string, actor = userId): Promise<string> {
  fx.clock.set(at);
  const event = await fx.audit.append({ type, actor, subject: userId, data: {} });
  fx.clock.set(NOW);
  return event.id;
}

async function mailed(fx: ContainFixture, kind: string): Promise<string[]> {
  const rows = await fx.database.db.selectFrom("outbox_messages").select("to_address").where("kind", "=", kind).orderBy("to_address").execute();
  return rows.map((r) => r.to_address);
}

async function run(fx: ContainFixture, request: ContainRequest) {
  const job = await createContainJob(fx, request);
  return { id: job.id, view: jobView(await runJob(fx, job.id)) };
}

forEachDialect("contain: the incident replays' levers", (dfx) => {
  // ASVS 6.4.3. The intruder signed in with a cracked password and moved the account to their mailbox through the
  // owner-side email change; the owner's old address got a notice, nothing more.
  it("attack: the reset link of an account moved by its own email change within the window is held back, counted, audited and named; an administrator's set-email since releases it", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedContainUsers(fx, NOW, 6);
    const [, hijacked, stale, restored, setByAdmin, late] = ids as [string, string, string, string, string, string];
    await eventAt(fx, NOW - 40 * DAY, "auth.email.changed", stale);
    await eventAt(fx, NOW - 3 * DAY, "auth.email.changed", restored);
    const change = await eventAt(fx, NOW - 2 * DAY, "auth.email.changed", hijacked);
    await eventAt(fx, NOW - DAY, "user.email-set", restored, "cli:root");
    await eventAt(fx, NOW - DAY, "user.email-set", setByAdmin, "cli:root");
    const request: ContainRequest = { levers: ["invalidate-passwords"], scope: { all: true }, actor: "t", batchSize: 2 };

    const dry = (await dryRunContain(fx, request)).levers["invalidate-passwords"];
    const expected = { users: 6, resetEmailsQueued: 5, resetEmailsRefused: 0, resetEmailsWithheld: 1, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 0 };
    assert.deepEqual(dry?.counts, expected);
    const dryNotes = (dry?.notes ?? []).join(" ");
    assert.match(dryNotes, new RegExp(`${hijacked} \\(address changed ${new Date(NOW - 2 * DAY).toISOString()}\\)`), "the dry run names the user and when the address moved");
    assert.match(dryNotes, /within the last 30 days.*bulwark users set-email/);

    // A change confirmed after the job was created (a session the job does not end asked for it) holds too.
    const { id, view } = await (async () => {
      const job = await createContainJob(fx, request);
      await eventAt(fx, NOW + 1, "auth.email.changed", late);
      return { id: job.id, view: jobView(await runJob(fx, job.id)) };
    })();
    assert.deepEqual(view.counts["invalidate-passwords"], { ...expected, resetEmailsQueued: 4, resetEmailsWithheld: 2 });
    assert.deepEqual(await mailed(fx, RESET_KIND), ["user0@example.org", "user2@example.org", "user3@example.org", "user4@example.org"]);
    const invalidated = await fx.database.db.selectFrom("users").select("id").where("password_invalidated_at", "is not", null).execute();
    assert.equal(invalidated.length, 6, "every password is invalidated, the held ones too");

    const events = (await fx.audit.tail(100)).filter((e) => e.type === "contain.reset-email.withheld");
    assert.deepEqual(events.map((e) => e.subject).sort(), [hijacked, late].sort(), "one event per held user");
    const held = events.find((e) => e.subject === hijacked)?.data as Record<string, unknown>;
    assert.deepEqual({ ...held }, { emailChangeEvent: change, emailChangedAt: NOW - 2 * DAY, withinDays: 30, jobId: id, lever: "invalidate-passwords" });
    assert.match(view.notes.join(" "), /2 reset emails were held back.*contain\.reset-email\.withheld.*`bulwark users set-email`, which mails a link to the address it sets/);

    // Run again: everyone is invalidated already, so nothing is mailed, held or audited twice.
    const again = await run(fx, request);
    assert.deepEqual(again.view.counts["invalidate-passwords"], { ...expected, users: 0, resetEmailsQueued: 0, resetEmailsWithheld: 0 });
    assert.equal((await fx.audit.tail(200)).filter((e) => e.type === "contain.reset-email.withheld").length, 2);
    assert.equal((await fx.audit.verify()).ok, true);
  });

  it("the hold's window is an option: 0 leaves out every change made before the job, a shorter window leaves an older change out; a window that is not a whole number of days from 0 to 36500 is refused", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedContainUsers(fx, NOW, 3);
    await eventAt(fx, NOW - 2 * DAY, "auth.email.changed", ids[1] as string);
    const base: ContainRequest = { levers: ["invalidate-passwords"], scope: { ids: [ids[1] as string] }, actor: "t" };
    const counts = async (days: number) => (await dryRunContain(fx, { ...base, options: { emailChangedWithinDays: days } })).levers["invalidate-passwords"]?.counts;
    assert.equal((await counts(3))?.["resetEmailsWithheld"], 1);
    assert.equal((await counts(1))?.["resetEmailsWithheld"], 0, "the change is older than the window");
    const { view } = await run(fx, { ...base, options: { emailChangedWithinDays: 0 } });
    assert.equal(view.counts["invalidate-passwords"]?.["resetEmailsQueued"], 1, "0: no hold, the link is mailed");
    assert.deepEqual(await mailed(fx, RESET_KIND), ["user1@example.org"]);
    for (const bad of [-1, 1.5, 36_501]) {
      assert.equal(await codeOf(dryRunContain(fx, { ...base, options: { emailChangedWithinDays: bad } })), "BULWARK_ERR_CONTAIN_SCOPE", String(bad));
      assert.equal(await codeOf(createContainJob(fx, { ...base, options: { emailChangedWithinDays: bad } })), "BULWARK_ERR_CONTAIN_SCOPE", String(bad));
    }
  });

  // ASVS 6.3.7: "choose a new one to sign in again" is untrue for a disabled account, whose link is refused.
  it("a disabled account's password is invalidated but it gets no reset email, counted apart; a locked account is mailed (its link works once unlocked)", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedContainUsers(fx, NOW, 4);
    await fx.database.db.updateTable("users").set({ status: "disabled" }).where("id", "=", ids[1] as string).execute();
    await fx.database.db.updateTable("users").set({ locked_at: NOW - DAY, locked_reason: "containment" }).where("id", "=", ids[2] as string).execute();
    const request: ContainRequest = { levers: ["invalidate-passwords"], scope: { all: true }, actor: "t" };
    const expected = { users: 4, resetEmailsQueued: 3, resetEmailsRefused: 0, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 1, sessions: 0, tokens: 0 };
    const dry = (await dryRunContain(fx, request)).levers["invalidate-passwords"];
    assert.deepEqual(dry?.counts, expected);
    const { view } = await run(fx, request);
    assert.deepEqual(view.counts["invalidate-passwords"], expected);
    assert.deepEqual(await mailed(fx, RESET_KIND), ["user0@example.org", "user2@example.org", "user3@example.org"]);
    const disabled = await fx.database.db.selectFrom("users").select("password_invalidated_at").where("id", "=", ids[1] as string).executeTakeFirstOrThrow();
    assert.notEqual(disabled.password_invalidated_at, null, "an account enabled later does not come back with the cracked password");
    assert.match(view.notes.join(" "), /1 disabled accounts got no reset email/);
  });

  // ASVS 7.4.5: a token is a credential of its own; one minted with a cracked password outlives the reset.
  it("a password lever without revoke-tokens names the live API tokens it leaves working, in the dry run and the job's view; with revoke-tokens it does not", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedContainUsers(fx, NOW, 3);
    const token = (id: string, user: string, extra: { revoked_at?: number; expires_at?: number }) => ({
      id, user_id: user, name: "t", secret_hash: `h_${id}`, scopes: "[]", created_at: NOW - DAY, expires_at: extra.expires_at ?? null,
      last_used_at: null, last_used_ip: null, revoked_at: extra.revoked_at ?? null, parent_id: null, issued_epoch: 0,
    });
    await fx.database.db.insertInto("api_tokens").values([
      token("tok_1", ids[0] as string, {}), token("tok_2", ids[1] as string, { expires_at: NOW + DAY }),
      token("tok_3", ids[1] as string, { revoked_at: NOW - 1 }), token("tok_4", ids[2] as string, { expires_at: NOW - 1 }),
    ]).execute();
    for (const levers of [["invalidate-passwords"], ["expire-passwords"], ["revoke-sessions", "invalidate-passwords", "expire-passwords"]]) {
      const report = await dryRunContain(fx, { levers, scope: { all: true }, actor: "t" });
      const owner = levers.includes("invalidate-passwords") ? "invalidate-passwords" : "expire-passwords";
      const notes = (report.levers[owner]?.notes ?? []).filter((n) => n.includes("without revoke-tokens"));
      assert.equal(notes.length, 1, `${levers.join(" + ")}: ${JSON.stringify(report.levers)}`);
      assert.match(notes[0] as string, new RegExp(`^${owner} without revoke-tokens: 2 live API tokens of accounts in scope stay valid.*bulwark contain revoke-tokens`));
    }
    const paired = await dryRunContain(fx, { levers: ["invalidate-passwords", "revoke-tokens"], scope: { all: true }, actor: "t" });
    assert.ok(Object.values(paired.levers).every((l) => !(l.notes ?? []).some((n) => n.includes("live API token"))), "revoke-tokens ends them: no note");

    const { view } = await run(fx, { levers: ["revoke-sessions", "invalidate-passwords"], scope: { all: true }, actor: "t" });
    assert.ok(view.notes.some((n) => /^invalidate-passwords without revoke-tokens: 2 live API tokens/.test(n)), view.notes.join(" | "));
    const ended = await run(fx, { levers: ["revoke-tokens", "expire-passwords"], scope: { all: true }, actor: "t" });
    assert.ok(!ended.view.notes.some((n) => n.includes("live API token")), ended.view.notes.join(" | "));
  });

  // ASVS 6.3.7. Sentry emailed every customer as it forced the change; whoever holds a cracked password may otherwise
  // choose the next one before the owner hears of it.
  it("expire-passwords tells each owner once, in the batch: the dry run forecasts the notices, a refused address is counted and audited, a second run queues none, and the undo mails nothing", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedContainUsers(fx, NOW, 4);
    await fx.database.db.updateTable("users").set({ email: "jörg@example.org", email_key: "jörg@example.org" }).where("id", "=", ids[3] as string).execute();
    const request: ContainRequest = { levers: ["expire-passwords"], scope: { all: true }, actor: "t", batchSize: 3 };
    const dry = (await dryRunContain(fx, request)).levers["expire-passwords"];
    assert.deepEqual(dry?.counts, { users: 4, noticesQueued: 3, noticesRefused: 1 });
    assert.match((dry?.notes ?? []).join(" "), new RegExp(`${ids[3]}`), "the dry run names the user it cannot tell");
    const { id, view } = await run(fx, request);
    assert.deepEqual(view.counts["expire-passwords"], dry?.counts);
    assert.deepEqual(await mailed(fx, "security.password-expired"), ["user0@example.org", "user1@example.org", "user2@example.org"]);
    const refused = (await fx.audit.tail(100)).filter((e) => e.type === "contain.notice.refused");
    assert.deepEqual(refused.map((e) => [e.subject, (e.data as { notices: string[] }).notices]), [[ids[3], ["password-expired"]]]);

    const again = await run(fx, request);
    assert.deepEqual(again.view.counts["expire-passwords"], { users: 0, noticesQueued: 0, noticesRefused: 0 });
    assert.equal((await mailed(fx, "security.password-expired")).length, 3, "nobody is told twice");

    // The undo withdraws the expiry without a mail (docs/containment.md: the notice already said what an unasked
    // sign-in means); the undo of the second job has nothing recorded, the first's restores all four.
    await runJob(fx, (await createUndoJob(fx, again.id, "t")).id);
    const undo = await createUndoJob(fx, id, "t");
    assert.deepEqual(jobView(await runJob(fx, undo.id)).counts["expire-passwords"], { restored: 4, skipped: 0 });
    const all = await fx.database.db.selectFrom("outbox_messages").select("kind").execute();
    assert.equal(all.length, 3, `only the three expiry notices: ${all.map((m) => m.kind).join(", ")}`);
  });
});

describe("contain --email-changed-within (CLI)", () => {
  it("holds by default, 0 leaves out every change made before the job, and a window that is not a number of days is refused with exit 2 before anything is read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-contain-window-"));
    try {
      const env = { BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent" };
      assert.equal((await bulwarkHere(["init"], { env })).code, 0);
      assert.equal((await bulwarkHere(["users", "create", "--email", "moved@example.org", "--generate-password"], { env })).code, 0);
      // The account moved itself: what POST /auth/email/confirm appends (src/http/auth/routes/email-routes.ts).
      const app = await openApp({ env, mode: "open" });
      try {
        const user = await app.accounts.users.findByIdentifier("moved@example.org");
        assert.ok(user);
        await app.audit.append({ type: "auth.email.changed", actor: user.id, subject: user.id, data: {} });
      } finally {
        await app.close();
      }
      const ids = join(dir, "ids.txt");
      writeFileSync(ids, "moved@example.org\n");
      // The default run as a real process; the other windows in this process (bulwarkHere).
      const counts = async (extra: string[], cli: typeof bulwark = bulwarkHere) => {
        const dry = await cli(["contain", "invalidate-passwords", "--ids", ids, "--dry-run", "--json", ...extra], { env });
        assert.equal(dry.code, 0, dry.stderr);
        return (JSON.parse(dry.stdout) as { levers: Record<string, { counts: Record<string, number> }> }).levers["invalidate-passwords"]?.counts;
      };
      assert.equal((await counts([], bulwark))?.["resetEmailsWithheld"], 1, "default: 30 days");
      assert.equal((await counts(["--email-changed-within", "30d"]))?.["resetEmailsWithheld"], 1);
      assert.deepEqual([(await counts(["--email-changed-within", "0"]))?.["resetEmailsWithheld"], (await counts(["--email-changed-within", "0"]))?.["resetEmailsQueued"]], [0, 1]);
      for (const bad of ["2w", "-1", "1.5d", "36501"]) {
        const r = await bulwarkHere(["contain", "invalidate-passwords", "--ids", ids, "--dry-run", "--email-changed-within", bad], { env });
        assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
        assert.match(r.stderr, /--email-changed-within must be/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
