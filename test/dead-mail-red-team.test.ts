// Red team round "dead mail": mail that died days ago comes back to life. The outbox (src/notify/outbox.ts, sender.ts,
// link-kinds.ts) keeps a message that failed past its budget as `dead`; the operator fixes the relay and runs
// `bulwark outbox requeue-dead` (src/cli/commands/outbox.ts), which puts every dead message back with a fresh budget.
// Attackers and what they hold: whoever holds a mailbox an account has left (an old employer's address handed to the
// next hire, a lapsed domain bought back), who receives what was addressed there; an outsider who floods the sign-up
// form until the relay refuses it all, then lets the operator's requeue do the rest; a relay (or whatever answers as
// one) that writes terminal controls into its refusal; and the operator's own failures (two shells at once, a disk that
// fills half-way, a shell without the server's SMTP settings). Each test lets a message die, changes the world the way
// the brief lists (address moved, password reset another way, link spent, expired or superseded, days passed), runs the
// operator's real `requeue-dead` (bulwarkInProcess on the server's data dir, the server's clock then moved to now) and
// reads what the server's sender delivers.
// Not repeated (pinned elsewhere): dry run = real run on a quiet outbox, confirmation and audit, an audit failure on a
// single page (cli-outbox); paging 100,000 dead ids (outbox-scale-red-team); a sealed body that never opens, an altered
// row, a body sealed before the recipient binding, a link on an origin no longer configured, each dead again when
// requeued (link-redaction.security, link-origin.security, database-writer-red-team); a stored address or kind with
// controls (cli-outbox); link tokens in a relay's refusal (log-secrets-red-team, delivery-errors); a delivery cut by a
// stopping server (fourth-look-red-team). Read and not tested: requeue-dead racing the server's sender (requeueDead
// touches only rows still `dead`, which no sender holds, and every sender write is fenced by its claim); a notice
// delivered and yet recorded dead (only a sender that died on the last attempt, ADR 0004's documented at-least-once).
// Found (fixed since: the claim records a link mail dead once its link has stopped working (`not_after`, migration
// 36); mail about an account goes only while the account still has that address (`account_id`, checked at the claim);
// requeued mail goes behind mail queued the usual way (REQUEUED_BEHIND); both commands say the last delivery the store
// records (`lastSentAt`), never judging from the shell's own SMTP settings; a failed requeue says on stderr how many
// of the dead it had requeued and to run it again):
//  1. A requeued reset link the store no longer honours (expired, spent) is delivered days late, still "Open this link
//     within 30 minutes … it works once" and undated: the outbox never asks whether a link mail's link still works.
//  2. After the account moved to another address, requeue-dead delivers its old notices (time and IP of a password
//     change, of a new browser) and reset link to the address it left, which the email-changed notice told "will no
//     longer receive messages about the account"; the reset form refuses exactly this (docs/http-auth.md), requeue not.
//  3. A requeued flood of sign-up links, every link lapsed, goes out before a reset link asked for a second later:
//     requeueDead puts the whole backlog at the head of its priority (next_attempt_at = now).
//  4. `outbox status` and `requeue-dead`, run from a shell without the server's SMTP settings, say "nothing is being
//     sent" and "they are queued until it is" while the server delivers them at once.
//  5. A requeue that fails half-way says only "internal error", not that 500 of 1,100 were requeued and are going out.
// Held (kept as attacks): a relay's refusal with OSC 52, C1 CSI, a right-to-left override and a zero-width space is
// shown inert by status and the dry run, human and JSON (C0 and C1 never even reach the row); two requeue-dead runs at
// once requeue each message once and their reports and audit events add up; a new-browser notice that died twice reaches
// the owner once, dated by the sign-in it tells of.
// Temp dirs and loopback only (the fixture's SMTP server); SQLite.
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { sql } from "kysely";
import { authFixture, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { composeResetMail } from "../src/accounts/password-reset/reset-mail.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { bulwark, bulwarkInProcess } from "./helpers/cli.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";

const DAY = 86_400_000;
const RESET_TOKEN = /#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
const EMAIL_TOKEN = /#token=(ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
const REFUSED = { code: 550, message: "5.1.1 mailbox unavailable" };

/** A fresh server whose clock reads `daysAgo` days before now (the CLI's requeue runs on the real clock). */
async function fixture(t: TestContext, daysAgo: number, env: Record<string, string> = {}): Promise<AuthFixture> {
  const fx = await authFixture(env);
  t.after(() => fx.close());
  fx.clock.set(Date.now() - daysAgo * DAY);
  return fx;
}

/** The operator's shell on the server: same data dir and public URL, no SMTP settings of its own. */
function operatorEnv(fx: AuthFixture): NodeJS.ProcessEnv {
  return { BULWARK_DATA_DIR: fx.app.config.dataDir, BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_PUBLIC_URL: ORIGIN };
}

/** `bulwark outbox requeue-dead --yes --json` from the operator's shell; then the server's clock catches up with now. */
async function requeueDead(fx: AuthFixture): Promise<number> {
  const r = await bulwarkInProcess(["outbox", "requeue-dead", "--yes", "--json"], operatorEnv(fx));
  assert.equal(r.code, 0, r.stderr);
  fx.clock.set(Date.now() + 1000);
  return (JSON.parse(r.stdout) as { requeued: number }).requeued;
}

function kindOf(m: { mail: { headers: Map<string, string> } }): string {
  return m.mail.headers.get("x-bulwark-kind") ?? "?";
}

describe("requeued link mail", () => {
  it("attack: requeue-dead of a week-old reset link the store no longer honours — the claim records it dead (its link stopped working), never delivering a dead link presented as live (ASVS 6.4.1) (was: delivered 8 days late, still saying 'Open this link within 30 minutes')", async (t) => {
    const fx = await fixture(t, 8);
    const ana = await fx.user("ana@example.org");
    fx.smtp.respond = () => REFUSED;
    const asked = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    assert.equal(asked.statusCode, 202);
    const report = await fx.deliver();
    assert.equal(report.dead, 1, "control: the relay refused the reset mail for good");
    // The relay is fixed; ana asks again an hour later, gets that link and resets her password with it.
    fx.smtp.respond = () => null;
    fx.clock.advance(3_600_000);
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    await fx.deliver();
    const second = fx.mailTo(ana.email).at(-1)!;
    const token = RESET_TOKEN.exec(second.body)![1]!;
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "a brand new kettle at dusk 7" } });
    assert.equal(done.statusCode, 200, done.body);
    const seen = fx.mailTo(ana.email).length;
    // Eight days on, the operator sends every dead message again.
    assert.equal(await requeueDead(fx), 1);
    await fx.deliver();
    const late = fx.mailTo(ana.email).slice(seen);
    for (const m of late.filter((x) => RESET_TOKEN.test(x.body))) {
      const check = await fx.app.accounts.passwordReset.check(RESET_TOKEN.exec(m.body)![1]);
      assert.ok(check.valid || !/within 30 minutes|it works once/.test(m.body),
        `requeue-dead delivered to ${ana.email}, 8 days late, a reset mail whose link the store refuses (${"reason" in check ? check.reason : "?"}), ` +
        `still reading: ${JSON.stringify(m.body.split(/\r?\n/).filter((l) => /asked|within|works once/.test(l)).join(" "))} — no date, and the link lived 30 minutes`);
    }
  });
});

describe("requeued mail to an address the account left", () => {
  it("attack: after the account moved to a new address, requeue-dead of its old notices and links — the claim records them dead, none reaches the address it left, only the notices meant for it (ASVS 14.2.3, 6.3.8) (was: its password-change notice and reset link delivered to the mailbox the email-changed notice told 'will no longer receive messages about the account')", async (t) => {
    const fx = await fixture(t, 8);
    const OLD = "ana@old-employer.example";
    const NEW = "ana@home.example";
    // Ana's old employer closed her mailbox: its relay refuses everything to it for good (550 5.1.1).
    fx.smtp.respond = (mail) => (mail.envelopeTo.includes(OLD) ? REFUSED : null);
    const ana = await fx.user(OLD);
    const b = fx.browser();
    assert.equal((await b.login(OLD, ana.password)).statusCode, 200);
    const changed = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: ana.password, newPassword: "a brand new kettle at dusk 7" } });
    assert.equal(changed.statusCode, 200, changed.body);
    // A minute on (an email-change link stamped the very millisecond of the password change is void) a reset is asked too.
    fx.clock.advance(60_000);
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: OLD } });
    // She moves the account to her own address: the link goes there, she confirms it.
    const asked = await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: NEW } });
    assert.equal(asked.statusCode, 202, asked.body);
    await fx.deliver();
    const link = fx.mailTo(NEW).find((m) => EMAIL_TOKEN.test(m.body));
    assert.ok(link, "control: the confirmation link reached the new address");
    const confirmed = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: EMAIL_TOKEN.exec(link.body)![1] } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    await fx.deliver();
    const dead = (await fx.app.accounts.outbox.listDead()).filter((m) => m.to === OLD).map((m) => m.kind).sort();
    assert.ok(dead.includes("security.password-changed") && dead.includes("account.password-reset-link"), `control: dead to the old address: ${dead.join(", ")}`);
    // Days later the old employer hands the mailbox to someone else (or its domain lapses and is bought); the operator,
    // after an unrelated relay outage, sends every dead message again.
    fx.smtp.respond = () => null;
    await requeueDead(fx);
    await fx.deliver();
    const meant = new Set(["security.email-change-requested", "security.email-changed"]);
    const strays = fx.mailTo(OLD).filter((m) => !meant.has(kindOf(m)));
    assert.deepEqual(strays.map((m) => `${kindOf(m)}: ${m.body.split("\n").filter((l) => /^When:|asked to reset/.test(l)).join(" ").trim()}`), [],
      `requeue-dead delivered to ${OLD}, which the account left 8 days ago (its email-changed notice said the address "will no longer receive messages about the account"), ` +
      "mail about the account: whoever holds that mailbox now learns the account exists, when and from which IP address its password was changed");
  });
});

describe("a requeued flood", () => {
  it("attack: requeue-dead of a refused flood of sign-up links (every link lapsed days ago) — requeued mail goes behind mail queued the usual way and lapsed links die at their claim, so a reset link asked for a second after the requeue goes out first (ASVS 2.4.1, 16.5.2) (was: all 1,200 went out before it, 120 s later)", async (t) => {
    const FLOOD = 1200;
    const fx = await fixture(t, 2);
    const ana = await fx.user("ana@example.org");
    // Two days ago an outsider signed up 1,200 addresses; the relay refused the flood (550 5.7.1 rate limited), all dead.
    const outbox = fx.app.accounts.outbox;
    const flood = Array.from({ length: FLOOD }, (_, i) => ({
      idempotencyKey: `account.register:flood-${i}`,
      ...composeResetMail(`prt_${"a".repeat(26)}.${"b".repeat(43)}`, { email: `signup${i}@example.net`, publicURL: ORIGIN, serviceName: "Bulwark" }, "register", 30 * 60_000),
    }));
    assert.equal((await outbox.enqueueMany(flood)).inserted, FLOOD);
    await fx.app.db.db.updateTable("outbox_messages").set({ status: "dead", attempts: 1, last_error: "550 5.7.1 message rate limit exceeded" })
      .where("kind", "=", "account.registration-link").execute();
    // The relay's limit is raised; the operator sends the dead mail again, as the docs suggest after such a flood.
    assert.equal(await requeueDead(fx), FLOOD);
    // A second later ana forgot her password.
    const asked = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    assert.equal(asked.statusCode, 202);
    const askedAt = fx.clock.now();
    // The server's sender: batches of 100, five deliveries at once, a relay taking half a second each (10 a second).
    let deliveredAt = 0;
    const transport = recordingTransport(async (m) => {
      fx.clock.advance(100);
      if (m.kind === "account.password-reset-link" && m.to === ana.email) deliveredAt = fx.clock.now();
    });
    const sender = new OutboxSender({ outbox, transport, clock: fx.clock, random: fx.app.random }, { name: "server", batchSize: 100, concurrency: 5 });
    await sender.drain();
    const position = transport.sent.findIndex((m) => m.kind === "account.password-reset-link" && m.to === ana.email);
    assert.ok(position >= 0, "control: ana's reset link was delivered");
    assert.ok(position < 100,
      `ana's reset link went out as message ${position + 1}, after ${position} requeued sign-up links whose links had lapsed two days before, ` +
      `${Math.round((deliveredAt - askedAt) / 1000)} s after she asked (at 10 messages a second; the 100,000 of a flood ADR 0004 names would take 2¾ hours, her link lives 30 minutes)`);
  });
});

// What must never reach the operator's terminal raw: C0 (but for \n), DEL, C1, bidirectional controls, zero-width characters.
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069]/;

describe("the operator's view of dead mail", () => {
  it("attack: a relay whose refusal carries terminal controls (OSC 52 clipboard, C1 CSI, a right-to-left override, a zero-width space) has it stored as the dead message's last error, and `outbox status` and `requeue-dead --dry-run`, human and --json, show it inert (ASVS 16.4.1)", async (t) => {
    const fx = await fixture(t, 1);
    const HOSTILE = "5.7.1 \u001b]52;c;Y3VybCBldmlsLmV4YW1wbGV8c2g=\u0007 rejected \u009b2J\u009b1;1H ok\u202egnp.exe\u200b done";
    fx.smtp.respond = () => ({ code: 550, message: HOSTILE });
    const ana = await fx.user("ana@example.org");
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    assert.equal((await fx.deliver()).dead, 1);
    const [dead] = await fx.app.accounts.outbox.listDead();
    assert.match(dead!.lastError ?? "", /\u202egnp\.exe\u200b/, "control: the relay's right-to-left override and zero-width space reach the row (its C0 and C1 controls arrive as spaces)");
    for (const args of [["outbox", "status"], ["outbox", "status", "--json"], ["outbox", "requeue-dead", "--dry-run"], ["outbox", "requeue-dead", "--dry-run", "--json"]]) {
      const r = await bulwarkInProcess(args, operatorEnv(fx));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /ok\\u202egnp\.exe\\u200b done/, `\`bulwark ${args.join(" ")}\` shows the relay's reply, escaped`);
      assert.doesNotMatch(r.stdout, TERMINAL_CONTROL, `\`bulwark ${args.join(" ")}\` wrote a raw control character of the relay's reply`);
    }
  });
});

describe("a requeue and what the operator is told", () => {
  it("attack: `outbox status` and `requeue-dead` run from the operator's shell (without the server's SMTP settings) tell the last delivery the store records, never that nothing is being sent or that requeued mail stays queued (ASVS 16.3.4) (was: judged from the shell's own environment, they said so while the server delivered at once)", async (t) => {
    const fx = await fixture(t, 0);
    const ana = await fx.user("ana@example.org");
    fx.smtp.respond = () => REFUSED;
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    assert.equal((await fx.deliver()).dead, 1, "control: the relay refused it");
    fx.smtp.respond = () => null;
    // The operator's shell has the data dir and the public URL; the SMTP password lives in the server's environment only.
    const requeued = await bulwarkInProcess(["outbox", "requeue-dead", "--yes"], operatorEnv(fx));
    assert.equal(requeued.code, 0, requeued.stderr);
    fx.clock.set(Date.now() + 1000);
    const sent = await fx.deliver();
    assert.equal(sent.sent, 1, "control: the server sent the requeued message at once");
    const status = await bulwarkInProcess(["outbox", "status"], operatorEnv(fx));
    const told = [...requeued.stdout.split("\n"), ...status.stdout.split("\n")].filter((l) => /queued until it is|nothing is being sent/.test(l));
    assert.deepEqual(told, [],
      "the operator was told the requeued mail waits for SMTP to be configured and that nothing is being sent, judged from the shell's own environment, " +
      `while the server (configured with BULWARK_SMTP_URL) delivered it at once and \`status\` itself counts ${JSON.stringify(status.stdout.split("\n")[0])}`);
  });

  it("attack: a requeue that fails half-way (the audit write refused on its second page) says, beside the error and with a non-zero exit, that 500 of the 1,100 dead messages were requeued and to run it again for the rest (ASVS 16.3.4) (was: only 'internal error')", async (t) => {
    const fx = await fixture(t, 1);
    const outbox = fx.app.accounts.outbox;
    const N = 1100;
    await outbox.enqueueMany(Array.from({ length: N }, (_, i) => ({ idempotencyKey: `cmp_1:${i}`, to: `user${i}@example.net`, subject: "Notice", text: "…", kind: "campaign.notice", campaignId: "cmp_1", priority: 10 })));
    await fx.app.db.db.updateTable("outbox_messages").set({ status: "dead", attempts: 1, last_error: "550 5.7.1 refused" }).execute();
    // The second page's audit write fails (a full disk): the first page committed with its event.
    await sql`CREATE TRIGGER disk_full BEFORE INSERT ON audit_events WHEN NEW.type = 'outbox.dead-requeued' AND (SELECT count(*) FROM audit_events WHERE type = 'outbox.dead-requeued') >= 1 BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`.execute(fx.app.db.db);
    const failed = await bulwarkInProcess(["outbox", "requeue-dead", "--yes"], operatorEnv(fx));
    await sql`DROP TRIGGER disk_full`.execute(fx.app.db.db);
    assert.notEqual(failed.code, 0, "control: the run failed");
    const counts = await outbox.counts();
    const events = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "outbox.dead-requeued").execute();
    // What held: the committed page is requeued and recorded, the rest still dead, and a second run requeues exactly the rest.
    assert.deepEqual([counts.queued, counts.dead], [500, 600]);
    assert.deepEqual(events.map((e) => (JSON.parse(e.data) as { requeued: number }).requeued), [500]);
    const again = await bulwarkInProcess(["outbox", "requeue-dead", "--yes", "--json"], operatorEnv(fx));
    assert.equal((JSON.parse(again.stdout) as { requeued: number }).requeued, 600);
    assert.deepEqual(await outbox.counts(), { queued: N, sending: 0, sent: 0, failed: 0, dead: 0 });
    // What the operator read when it failed.
    assert.match(failed.stdout + failed.stderr, /\b500\b/,
      `the failed run printed only ${JSON.stringify((failed.stdout + failed.stderr).trim())}: nothing says that 500 messages were requeued (and are being sent) ` +
      "before the failure, so an operator who decides, seeing it fail, not to send the dead mail after all cannot know half of it is going out");
  });

  it("attack: two operators running `requeue-dead --yes` at once over 1,100 dead messages requeue each exactly once: their reports add up to the count dead, as do the audit events (ASVS 16.3.1)", async (t) => {
    const fx = await fixture(t, 1);
    const outbox = fx.app.accounts.outbox;
    const N = 1100;
    await outbox.enqueueMany(Array.from({ length: N }, (_, i) => ({ idempotencyKey: `cmp_2:${i}`, to: `user${i}@example.net`, subject: "Notice", text: "…", kind: "campaign.notice", campaignId: "cmp_2", priority: 10 })));
    await fx.app.db.db.updateTable("outbox_messages").set({ status: "dead", attempts: 1, last_error: "550 5.7.1 refused" }).execute();
    const runs = await Promise.all([0, 1].map(() => bulwark(["outbox", "requeue-dead", "--yes", "--json"], { env: operatorEnv(fx), limitMs: 60_000 })));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const reported = runs.map((r) => (JSON.parse(r.stdout) as { requeued: number }).requeued);
    assert.equal(reported[0]! + reported[1]!, N, `the two runs reported ${reported.join(" + ")}`);
    assert.deepEqual(await outbox.counts(), { queued: N, sending: 0, sent: 0, failed: 0, dead: 0 });
    const events = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "outbox.dead-requeued").execute();
    assert.equal(events.reduce((sum, e) => sum + (JSON.parse(e.data) as { requeued: number }).requeued, 0), N, "the audit events' counts add up to the messages requeued");
  });

  it("attack: a week-old new-browser notice, requeued while the relay still refuses and again once it is fixed, reaches the owner once, dated by the sign-in it tells of, not by its delivery (ASVS 6.3.5)", async (t) => {
    const fx = await fixture(t, 8);
    const ana = await fx.user("ana@example.org");
    fx.smtp.respond = () => REFUSED;
    const signedInAt = fx.clock.now();
    assert.equal((await fx.browser({ newDevice: true }).login(ana.email, ana.password)).statusCode, 200);
    assert.equal((await fx.deliver()).dead, 1, "control: the new-browser notice died at the relay");
    // Requeued too early (the relay still refuses): it dies again.
    assert.equal(await requeueDead(fx), 1);
    assert.equal((await fx.deliver()).dead, 1);
    fx.smtp.respond = () => null;
    assert.equal(await requeueDead(fx), 1);
    await fx.deliver();
    assert.equal(await requeueDead(fx), 0, "nothing is dead any more");
    await fx.deliver();
    const notices = fx.mailTo(ana.email).filter((m) => kindOf(m) === "security.new-device-sign-in");
    assert.equal(notices.length, 1, "delivered once");
    const when = new Date(signedInAt).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, " UTC");
    assert.ok(notices[0]!.body.includes(`When: ${when}`), `the notice names the sign-in's time (${when}), 8 days before it arrived: ${notices[0]!.body}`);
  });
});
