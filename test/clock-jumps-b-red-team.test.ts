// Red team, round "clock jumps b" (second look): one server's own clock is stepped while the product runs (NTP stepping a
// VM resumed with a wrong time, an operator's `date -s`, an hour's leap from a wrong timezone) — stepped forward past a
// mail lease, or back by an hour — and later corrected. The attacker controls no clock; the victims are the users whose
// mail, links and ceremonies straddle the step. The first round (test/clock-jumps-red-team.test.ts) covered maintenance
// purges, TOTP, lockouts and the audit log's first checkpoint; this one goes after what it left: the outbox (leases and
// due times), the hourly limit on mail-sending requests, and WebAuthn challenges.
// Tried: a forward step while a delivery is in flight (does this very server's next claim take its own live lease and
// send the mail a second time?); a step back of an hour with a reset link and a security notice just queued (are they
// held for the hour, and does anything say so?); a client at its hourly mail-request limit waiting for a step back of an
// hour; a passkey challenge issued just before a step back of an hour, answered ten real minutes later (twice its life).
// Not repeated: sessions and links dated ahead after a step back (future-dated rule: revocation-clock-skew,
// session-twenty, closed-links, clock-skew-red-team), tokens' last use dated ahead (tokens-fourth-look), the check
// logins state file dated ahead (check-logins-since-last pins the refusal and its message), the maintenance pass across
// a jump (clock-jumps-red-team).
// Held: the hourly limit on mail-sending requests across a step back (events dated ahead still count); a passkey
// challenge issued before a step back cannot be answered past its real life (the flow's pending session is dated ahead
// and ended: future-dated).
// Found (fixed since: the sender leaves the mail it is delivering out of its own claims (Outbox.claim's notIn), and,
// seeing its clock stepped (wall against elapsed time), renews the leases it holds at the time the clock reads now;
// after a step back, and at its start, mail queued due at once but dated ahead of the clock is made due now
// (Outbox.dueAtOnceAhead), and the step, that mail and mail waiting beyond the longest wait the outbox schedules are
// logged): (1) a step forward past the 15-minute lease while a delivery is in flight let the same server's next claim
// (OutboxSender.run claims again as soon as a slot is free) take the live lease and deliver the reset link a second
// time; (2) after a step back of an hour, mail queued just before it (a reset link asked for a second earlier, a
// "your password was changed" notice) was not claimed for the whole hour: due times are wall-clock instants ahead of the
// clock now, and nothing in the sender or its log said mail was held. (The reset link of (2) now goes dead at its
// claim, said in the log: its link's store refuses the link as dated ahead of the clock, the future-dated rule.)
// Temp dirs and loopback only; SQLite (authFixture), a fake clock stepped with ManualClock.jump.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { authFixture, ORIGIN } from "../src/http/auth/test-client.ts";
import { OutboxSender, type DeliveryOutcome, type MailTransport, type OutboxMessage } from "../src/notify/index.ts";
import { authFlows } from "./helpers/auth-flows.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A logger that keeps every line, any level. */
function recordingLogger(): { warn(obj: object, msg: string): void; error(obj: object, msg: string): void; info(obj: object, msg: string): void; lines: string[] } {
  const lines: string[] = [];
  const keep = (obj: object, msg: string): void => void lines.push(`${msg} ${JSON.stringify(obj)}`);
  return { lines, warn: keep, error: keep, info: keep };
}

describe("red team: the server's own clock jumps, second look (SQLite)", () => {
  it("attack: the server's clock steps forward 20 minutes while its sender is delivering a reset link to a slow relay, and the run loop claims again as soon as a delivery slot is free — one server never sends a message twice because its own clock stepped: its claim leaves out the mail it is delivering, and it renews its leases at the stepped time (no ASVS id: mail integrity; ADR 0004's leases) (was: the next claim found the 15-minute lease over by the wall clock and delivered the link a second time)", async (t) => {
    const fx = await authFixture();
    t.after(() => fx.close());
    const owner = await fx.user("lease-step@example.org");
    const asked = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: owner.email } });
    assert.equal(asked.statusCode, 202, asked.body);

    // A relay that holds the first delivery until told (a slow relay's 10 minutes, RFC 5321 §4.5.3.2.6), then accepts.
    const deliveries: OutboxMessage[] = [];
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    let firstStarted!: () => void;
    const started = new Promise<void>((resolve) => (firstStarted = resolve));
    const transport: MailTransport = {
      async send(message): Promise<DeliveryOutcome> {
        deliveries.push(message);
        if (deliveries.length === 1) {
          firstStarted();
          await firstHeld;
        }
        return { ok: true, providerMessageId: `relay-${deliveries.length}` };
      },
      close: async () => {},
    };
    const logger = recordingLogger();
    // One server's sender, as startMailRunner builds it (concurrency 5: batches overlap while a delivery waits).
    const sender = new OutboxSender({ outbox: fx.app.accounts.outbox, transport, clock: fx.clock, random: fx.app.random, logger }, { name: "one-server/1" });
    const first = sender.runOnce();
    await started;
    assert.equal(deliveries[0]?.kind, "account.password-reset-link", `control: the reset link is the mail in flight (${deliveries[0]?.kind})`);

    // NTP steps the wall clock 20 minutes forward; no real time passes (the delivery's deadline timer is untouched).
    fx.clock.jump(20 * MINUTE);
    // The run loop's next poll: a slot is free, so it claims again.
    const second = await sender.runOnce();
    releaseFirst();
    const firstReport = await first;
    const copies = deliveries.filter((m) => m.id === deliveries[0]!.id).length;
    assert.equal(copies, 1,
      `the reset link was handed to the relay ${copies} times by one server: its own second claim took the lease its first batch still held ` +
      `(live in real time: 0 ms had passed), because the lease (claimed_until, next_attempt_at) is a wall-clock instant and the clock stepped 20 min ` +
      `past it (first batch: ${JSON.stringify(firstReport)}; second: ${JSON.stringify(second)}; log: ${JSON.stringify(logger.lines)})`);
  });

  it("attack: the server's clock steps back an hour a moment after a user asked for a reset link and another changed a password; ten real minutes later — mail due at once is not held for the size of a step back: the sender sees the step, makes the mail queued due at once due now and says so (ASVS 6.3.7 for the notice; no id for the link's availability) (was: neither the link nor the 'your password was changed' notice had gone out, due in 50 min, and nothing was logged)", async (t) => {
    const fx = await authFixture();
    t.after(() => fx.close());
    const flows = authFlows(() => fx);
    // The notice: a password change (the owner's, or a hijacker's the owner must hear of).
    const changed = await flows.signedIn("step-back-notice@example.org");
    const change = await changed.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: changed.password, newPassword: "amber lantern over quiet hills" } });
    assert.equal(change.statusCode, 200, change.body);
    // The link: another user asks for a reset.
    const owner = await fx.user("step-back-link@example.org");
    const asked = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: owner.email } });
    assert.equal(asked.statusCode, 202, asked.body);

    const delivered: OutboxMessage[] = [];
    const transport: MailTransport = { send: async (m): Promise<DeliveryOutcome> => (delivered.push(m), { ok: true, providerMessageId: null }), close: async () => {} };
    const logger = recordingLogger();
    const sender = new OutboxSender({ outbox: fx.app.accounts.outbox, transport, clock: fx.clock, random: fx.app.random, logger }, { name: "one-server/1" });

    // A second after the requests, the clock is stepped back an hour; then ten minutes pass.
    fx.clock.advance(1_000);
    fx.clock.jump(-HOUR);
    fx.clock.advance(10 * MINUTE);
    const report = await sender.drain();
    const kinds = delivered.map((m) => m.kind).sort();
    const pending = await fx.app.db.db.selectFrom("outbox_messages").select(["kind", "status", "next_attempt_at", "priority"]).where("status", "in", ["queued", "failed"]).execute();
    const held = pending.map((r) => `${r.kind} (priority ${r.priority}) due in ${Math.round((Number(r.next_attempt_at) - fx.clock.now()) / MINUTE)} min`);
    // The sender's log (a running server's maintenance pass logs the jump itself, not that mail is held).
    const said = logger.lines.filter((l) => /clock|held|ahead|wait/i.test(l));
    assert.ok((kinds.includes("account.password-reset-link") && kinds.includes("security.password-changed")) || said.length > 0,
      `ten real minutes after a step back of an hour, mail asked for a second before it is still held, and the sender says nothing of it: ${JSON.stringify(held)} ` +
      `(report ${JSON.stringify(report)}; delivered ${JSON.stringify(kinds)}). next_attempt_at is the wall-clock time of the request, an hour ahead ` +
      "of the clock now, so Outbox.claim (next_attempt_at <= now) passes over it until the clock has caught up: the owner's reset link comes an " +
      "hour late (a step back of a day holds it a day), and the password-changed notice reaches its owner only after a hijacker had that hour");
  });

  it("attack: a client at its hourly limit of mail-sending requests (resets, sign-ups) waits for the server's clock to step back an hour — the limit still holds, its requests dated ahead of the clock still count (ASVS 2.4.1)", async (t) => {
    const fx = await authFixture({ BULWARK_MAIL_REQUESTS_PER_HOUR: "3" });
    t.after(() => fx.close());
    const sprayer = fx.browser({ newDevice: true });
    const ask = async (i: number): Promise<number> =>
      (await sprayer.request("POST", "/auth/password/reset/request", { body: { email: `spray-${i}@example.org` } })).statusCode;
    const answers: number[] = [];
    for (let i = 0; i < 4; i++) answers.push(await ask(i));
    assert.deepEqual(answers, [202, 202, 202, 429], "control: the fourth request of the hour is refused");
    fx.clock.advance(MINUTE);
    fx.clock.jump(-HOUR);
    const after = await ask(10);
    assert.equal(after, 429, `a step back of an hour lifted the hourly limit on mail-sending requests (answer ${after})`);
    // The step back costs the client up to the step (the window is judged on the wall clock), never gives it more: the
    // limit lifts once the wall clock is an hour past the first requests.
    fx.clock.advance(HOUR);
    assert.equal(await ask(11), 429, "the limit lifted before the wall clock was an hour past the first requests");
    fx.clock.advance(HOUR);
    assert.equal(await ask(12), 202, "control: the limit lifts once the wall clock has passed the hour");
  });

  it("attack: a passkey challenge issued to a pending sign-in a moment before the server's clock steps back an hour is answered ten real minutes later (twice its 5-minute life, yet 'fresh' by the stepped clock) — refused: no WebAuthn challenge outlives its real life (ASVS 6.5.5, 6.3.3)", async (t) => {
    const fx = await authFixture();
    t.after(() => fx.close());
    const flows = authFlows(() => fx);
    const owner = await flows.withPasskey("challenge-step-back@example.org");
    const pending = await flows.pending(owner);
    const options = await pending.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal(options.statusCode, 200, options.body);

    // Control: answered within its life on an unstepped clock, the same kind of challenge works.
    const control = await flows.pending(owner);
    const controlOptions = await control.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    fx.clock.advance(MINUTE);
    const ok = await control.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: owner.key.authenticate(controlOptions.json(), ORIGIN) } });
    assert.equal(ok.statusCode, 200, `control: a challenge a minute old is answered: ${ok.body}`);

    // The relay's page holds the pending sign-in's CSRF token already (fetched before the step).
    const csrf = await pending.csrf();
    fx.clock.jump(-HOUR);
    fx.clock.advance(10 * MINUTE);
    const late = await pending.request("POST", "/auth/mfa/verify", { csrf, body: { webauthn: owner.key.authenticate(options.json(), ORIGIN) } });
    assert.equal(late.statusCode, 401, `a passkey challenge answered 11 real minutes after it was issued (life 5 min) stepped the sign-in up after a step back of an hour: ${late.body}`);
    fx.clock.jump(HOUR);
  });
});
