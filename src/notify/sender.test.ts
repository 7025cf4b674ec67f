// The sender's promises, on SQLite and PostgreSQL: a day-long outage loses no mail and a dead message is
// logged without any part of a mailbox; options that cannot work are refused by name; a delivery never
// outlives its lease (no duplicate against a tarpitting server); security mail overtakes a campaign batch
// that is already being delivered.
import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { systemClock } from "../lib/clock.ts";
import { systemRandom } from "../lib/random.ts";
import { migrate } from "../store/migrator.ts";
import { MIGRATIONS } from "../store/migrations/index.ts";
import { DEFAULT_RETRY } from "./backoff.ts";
import { Outbox, PRIORITY, type NewMessage } from "./outbox.ts";
import { OutboxSender, type SenderOptions } from "./sender.ts";
import { startTarpitSMTPServer } from "./tarpit-smtp-server.ts";
import { notifyFixture } from "./test-setup.ts";
import { createSMTPTransport, type DeliveryOutcome, type MailTransport } from "./transport.ts";

const HOUR = 3_600_000;

function message(n: number, extra: Partial<NewMessage> = {}): NewMessage {
  return { idempotencyKey: `sender:${n}`, to: `user${n}@example.org`, subject: `Message ${n}`, text: `Body ${n}\n`, kind: "test.message", ...extra };
}

const okTransport: MailTransport = { send: async (): Promise<DeliveryOutcome> => ({ ok: true, providerMessageId: null }), close: async () => {} };

function recordingLogger(): { warn(obj: object, msg: string): void; lines: Array<{ obj: Record<string, unknown>; msg: string }> } {
  const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  return { lines, warn: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg }) };
}

forEachDialect("outbox sender", (fx) => {
  it("keeps retrying a security notice through a day-long 4xx outage, then marks it dead and logs it without the mailbox", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const deferred: MailTransport = {
      send: async (): Promise<DeliveryOutcome> => ({ ok: false, permanent: false, error: "421 4.3.2 <ana@example.org> service not available" }),
      close: async () => {},
    };
    const logger = recordingLogger();
    const sender = new OutboxSender({ outbox: f.outbox, transport: deferred, clock: f.clock, random: systemRandom, logger }, { name: "node-a" });
    const enqueuedAt = f.clock.now();
    const { id } = await f.outbox.enqueue({ idempotencyKey: "reset:1", to: "ana@example.org", subject: "Reset your password", text: "…", kind: "account.password-reset", priority: PRIORITY.security });
    let deadAt: number | null = null;
    for (let run = 0; run < 100 && deadAt === null; run++) {
      await sender.runOnce();
      const row = await f.outbox.get(id);
      if (row.status === "dead") deadAt = f.clock.now();
      else f.clock.set(row.nextAttemptAt);
    }
    assert.notEqual(deadAt, null, "given up at some point");
    assert.ok(deadAt! - enqueuedAt >= 24 * HOUR, `dead after ${((deadAt! - enqueuedAt) / HOUR).toFixed(1)} h of 4xx replies; an outage of a day must lose nothing`);
    assert.equal((await f.outbox.get(id)).attempts, DEFAULT_RETRY.maxAttempts);
    assert.equal(logger.lines.length, 1, "one warning, for the message that went dead");
    const [line] = logger.lines;
    assert.deepEqual({ messageId: line!.obj["messageId"], kind: line!.obj["kind"], recipientDomain: line!.obj["recipientDomain"] }, { messageId: id, kind: "account.password-reset", recipientDomain: "example.org" });
    assert.match(String(line!.obj["lastError"]), /421 4\.3\.2/);
    assert.doesNotMatch(JSON.stringify(line), /ana@/, "the log names the domain, never the mailbox");
  });

  it("logs a message that goes dead at once on a 5xx reply", async (t) => {
    const f = await notifyFixture(await fx.fresh(), () => ({ code: 550, message: "No such user here" }));
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1, { kind: "security.password-changed" }));
    const logger = recordingLogger();
    const report = await new OutboxSender({ outbox: f.outbox, transport: await f.transport(), clock: f.clock, random: systemRandom, logger }, { name: "node-a" }).runOnce();
    assert.equal(report.dead, 1);
    assert.equal(logger.lines.length, 1);
    assert.equal(logger.lines[0]!.obj["messageId"], id);
    assert.equal(logger.lines[0]!.obj["recipientDomain"], "example.org");
    assert.match(String(logger.lines[0]!.obj["lastError"]), /550/);
    assert.doesNotMatch(JSON.stringify(logger.lines), /user1@/);
  });

  it("attack: a dead-message log line shows no part of a mailbox, whatever characters its local part holds (ASVS 16.2.5)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    // Every character the outbox's address check allows in a local part, and the reply quoting the address in
    // another case, beside another mailbox and bare (Postfix quotes the recipient of a 550).
    const recipients = ["mary.o'hara@example.org", "a!#$%&'*+/=?^_`{|}~-z@example.org", "Kim.Lee@Example.org"];
    for (const [i, to] of recipients.entries()) {
      await f.outbox.enqueue({ idempotencyKey: `dead:${i}`, to, subject: "Your password was changed", text: "…", kind: "security.password-changed", priority: PRIORITY.security });
    }
    const transport: MailTransport = {
      send: async (m): Promise<DeliveryOutcome> => ({
        ok: false, permanent: true,
        error: `EENVELOPE RCPT TO 550 550 5.1.1 <${m.to.toUpperCase()}>: Recipient address rejected: User unknown (${m.to}; also o'neil+x@relay.example.net)`,
      }),
      close: async () => {},
    };
    const logger = recordingLogger();
    const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger }, { name: "node-a" }).runOnce();
    assert.equal(report.dead, recipients.length);
    assert.equal(logger.lines.length, recipients.length);
    // The message ids are random base32 and may spell "kim" or "neil" by chance: judge every field but the id.
    const logged = JSON.stringify(logger.lines.map((l) => ({ ...l, obj: { ...l.obj, messageId: undefined } })));
    for (const leak of [/mary/i, /hara/i, /a!#/, /\{\|\}/, /kim/i, /lee@/i, /o'neil/i, /neil/i]) assert.doesNotMatch(logged, leak, "the log names a mailbox");
    assert.match(logged, /550 5\.1\.1 <…@example\.org>/i, "the reply stays readable, with its domain");
    assert.match(logged, /…@relay\.example\.net/);
  });

  it("attack: a relay's refusal that quotes the link keeps its words but not the link's token, in last_error and in the log (ASVS 16.2.5)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const token = `prt_${"a".repeat(26)}.${"Zz0_-".repeat(8)}abc`;
    const { id } = await f.outbox.enqueue(message(1, { kind: "test.link" }));
    await f.outbox.enqueue(message(2, { kind: "test.link" }));
    await f.outbox.enqueue(message(3, { kind: "test.link" }));
    // A content filter quoting the URL; one quoting it percent-encoded; one quoting the bare token, cut short inside
    // its secret by the transport's 500-character bound.
    const replies = [
      `554 5.7.1 Message content rejected: URL https://bulwark.test/auth/reset#token=${token} is listed in a URI blocklist`,
      `554 5.7.1 rejected https%3A%2F%2Fbulwark.test%2Freset%23token%3D${token}&x=1`,
      `554 5.7.1 rejected ${"x".repeat(420)} ${token}`.slice(0, 500),
    ];
    const transport: MailTransport = {
      send: async (m): Promise<DeliveryOutcome> => ({ ok: false, permanent: true, error: replies[Number(/\d+/.exec(m.to)![0]) - 1]! }),
      close: async () => {},
    };
    const logger = recordingLogger();
    const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger }, { name: "node-a", concurrency: 1 }).runOnce();
    assert.equal(report.dead, 3);
    const stored = (await f.outbox.listDead()).map((m) => m.lastError ?? "");
    const logged = JSON.stringify(logger.lines);
    for (const text of [...stored, logged]) {
      assert.doesNotMatch(text, /prt_a{26}/, "the token's id");
      assert.doesNotMatch(text, /Zz0_/, "the token's secret");
    }
    assert.equal((await f.outbox.get(id)).lastError, "554 5.7.1 Message content rejected: URL https://bulwark.test/auth/reset#token=… is listed in a URI blocklist");
    assert.match(logged, /is listed in a URI blocklist/, "the reply stays readable");
  });

  it("a message more urgent mail has kept passing for AGED_AFTER_MS lets no more past it, while a campaign batch claimed long ago still lets fresh notices in (ADR 0004)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    await f.outbox.enqueueMany(Array.from({ length: 10 }, (_, i) => message(i, { kind: "campaign.notice", campaignId: "cmp_1", priority: PRIORITY.campaign })));
    const campaign = new Set(await Promise.all(Array.from({ length: 10 }, async (_, i) => (await f.outbox.getByKey(`sender:${i}`))!.id)));
    const link = (await f.outbox.enqueue(message(100, { kind: "test.link", priority: PRIORITY.link }))).id;
    f.clock.advance(1);
    let flooded = 0;
    const notice = async (): Promise<string> =>
      (await f.outbox.enqueue(message(1_000 + flooded++, { kind: "security.recovery-codes-regenerated", priority: PRIORITY.security }))).id;
    const order: string[] = [];
    let lateNotice = "";
    const transport: MailTransport = {
      async send(m): Promise<DeliveryOutcome> {
        order.push(m.id);
        f.clock.advance(10_000);
        // Once the link is out, a notice every delivery for a while (a flood that keeps pace), then one more, well
        // over a minute after the batch was claimed.
        if (order.includes(link) && flooded < 12) await notice();
        else if (order.length === 20) lateNotice = await notice();
        return { ok: true, providerMessageId: null };
      },
      close: async () => {},
    };
    await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom }, { name: "serve", batchSize: 100, concurrency: 1 }).runOnce();
    const isNotice = (id: string): boolean => id !== link && !campaign.has(id);
    assert.equal(order[0], link, "the link, the most urgent of the claim, went first");
    assert.equal(order.length, 24, "the whole batch, the link, twelve flooded notices and the late one");
    // Each campaign message let the flood past it for a minute at most (six deliveries of ten seconds), not for as long
    // as the flood went on (twelve).
    const firstCampaign = order.findIndex((id) => campaign.has(id));
    const passedFirst = order.slice(1, firstCampaign).filter(isNotice).length;
    assert.ok(passedFirst >= 1 && passedFirst <= 7, `${passedFirst} notices went before the first campaign message`);
    // The late notice, queued when the batch was over three minutes old, went straight after the delivery in flight.
    assert.equal(order.indexOf(lateNotice), 20, `the late notice was delivery #${order.indexOf(lateNotice)}`);
  });

  it("warns at once when the connection to the relay fails before it answers: TLS failures, handshakes cut off and an unreachable relay each say so; a slow relay and a reply do not warn (ASVS 16.3.4)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    // The errors transport.ts classifyFailure writes for what nodemailer reports (`<code> <command> [<reply code>] <text>`).
    const cases: Array<[string, RegExp | null]> = [
      ["ESOCKET CONN Client network socket disconnected before secure TLS connection was established", /^TLS to the mail relay failed/],
      ["ETIMEDOUT CONN TLS handshake timed out", /^TLS to the mail relay failed/],
      ["ETLS STARTTLS Error initiating TLS - unable to verify the first certificate", /^TLS to the mail relay failed/],
      // A reset answering the ClientHello reads like any reset: warned about, naming TLS as a possible cause.
      ["ESOCKET CONN read ECONNRESET", /^the connection to the mail relay was cut .*TLS/],
      ["ECONNECTION CONN Connection closed unexpectedly", /^the connection to the mail relay was cut/],
      // A relay that is down is not an interception: told apart, still warned about.
      ["ESOCKET CONN connect ECONNREFUSED 127.0.0.1:587", /^the mail relay could not be reached/],
      ["ETIMEDOUT CONN Connection timeout", /^the mail relay could not be reached/],
      ["EDNS CONN getaddrinfo ENOTFOUND smtp.example.org", /^the mail relay could not be reached/],
      // A relay silent for socketTimeout once the session was up, a relay's own reply: retried, not warned about.
      ["ETIMEDOUT CONN Timeout", null],
      ["ECONNECTION CONN 421 421 4.3.2 Service shutting down", null],
      ["EENVELOPE RCPT TO 451 451 4.3.0 try again later", null],
    ];
    for (const [i, [error, warning]] of cases.entries()) {
      await f.outbox.enqueue(message(i));
      const transport: MailTransport = { send: async (): Promise<DeliveryOutcome> => ({ ok: false, permanent: false, error }), close: async () => {} };
      const logger = recordingLogger();
      const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger }, { name: "node-a" }).runOnce();
      assert.equal(report.retried, 1, error);
      if (warning === null) assert.deepEqual(logger.lines, [], error);
      else assert.ok(logger.lines.length === 1 && warning.test(logger.lines[0]!.msg), `${error}: ${JSON.stringify(logger.lines)}`);
    }
  });

  it("refuses a batchSize, concurrency, lease, deadline or retry policy that cannot work, naming the option and the value", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const make = (options: Partial<SenderOptions>): OutboxSender => new OutboxSender({ outbox: f.outbox, transport: okTransport, clock: f.clock, random: systemRandom }, { name: "n", ...options });
    const bad: Array<[Partial<SenderOptions>, RegExp]> = [
      [{ batchSize: 0 }, /batchSize must be an integer from 1 to 1000, got 0/],
      [{ batchSize: -1 }, /batchSize .* got -1/],
      [{ batchSize: 1.5 }, /batchSize .* got 1\.5/],
      [{ batchSize: 1001 }, /batchSize .* got 1001/],
      [{ concurrency: Number.NaN }, /concurrency must be an integer from 1 to 100, got NaN/],
      [{ concurrency: 0 }, /concurrency .* got 0/],
      [{ concurrency: "5" as unknown as number }, /concurrency .* got "5"/],
      [{ leaseMs: Number.POSITIVE_INFINITY }, /leaseMs .* got Infinity/],
      [{ leaseMs: 0 }, /leaseMs .* got 0/],
      [{ deliveryTimeoutMs: -5 }, /deliveryTimeoutMs .* got -5/],
      [{ retry: { ...DEFAULT_RETRY, maxAttempts: Number.NaN } }, /retry\.maxAttempts must be an integer from 1 to 1000, got NaN/],
      [{ retry: { ...DEFAULT_RETRY, maxAttempts: 0 } }, /retry\.maxAttempts .* got 0/],
      [{ retry: { ...DEFAULT_RETRY, baseDelayMs: -1 } }, /retry\.baseDelayMs .* got -1/],
      [{ retry: { ...DEFAULT_RETRY, maxDelayMs: Number.NaN } }, /retry\.maxDelayMs .* got NaN/],
      [{ retry: { maxAttempts: 3, baseDelayMs: 2_000, maxDelayMs: 1_000 } }, /retry\.maxDelayMs must be an integer from 2000 to \d+, got 1000/],
    ];
    for (const [options, message] of bad) {
      assert.throws(() => make(options), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_MAIL_CONFIG" && message.test(e.message), `${JSON.stringify(options)}: ${message}`);
    }
    // The bounds themselves work: one message per batch, and the largest values.
    await f.outbox.enqueueMany([message(1), message(2)]);
    assert.deepEqual([(await make({ batchSize: 1, concurrency: 1 }).runOnce()).sent, (await make({ batchSize: 1000, concurrency: 100 }).runOnce()).sent], [1, 1]);
    make({ retry: { maxAttempts: 1000, baseDelayMs: 0, maxDelayMs: 0 }, leaseMs: 1, deliveryTimeoutMs: 1 });
  });

  it("aborts a delivery that outlasts its deadline and retries it later instead of recording it sent", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1));
    let aborted = false;
    // Answers only when told to stop; a sender without a deadline gets a late "accepted".
    const stalling: MailTransport = {
      send: (_m, options) => new Promise<DeliveryOutcome>((resolve) => {
        const late = setTimeout(() => resolve({ ok: true, providerMessageId: "late" }), 3_000);
        options?.signal?.addEventListener("abort", () => {
          aborted = true;
          clearTimeout(late);
          resolve({ ok: false, permanent: false, error: "aborted at the deadline" });
        });
      }),
      close: async () => {},
    };
    const report = await new OutboxSender({ outbox: f.outbox, transport: stalling, clock: f.clock, random: systemRandom }, { name: "node-a", deliveryTimeoutMs: 20 }).runOnce();
    assert.equal(aborted, true, "the transport was told to give up");
    assert.deepEqual({ sent: report.sent, retried: report.retried }, { sent: 0, retried: 1 });
    assert.equal((await f.outbox.get(id)).status, "failed");
  });

  it("never completes a delivery after its lease ran out, so a tarpitting server gets one copy, not two", async (t) => {
    // Real time here: the server's delays are real. Every reply comes 400 ms late, well inside the socket
    // timeout, so a whole delivery takes ~2.4 s while sender A's lease is 1 s.
    const database = await fx.fresh();
    assert.equal((await migrate(database, systemClock, MIGRATIONS)).error, undefined);
    const outbox = new Outbox({ database, clock: systemClock, random: systemRandom });
    const server = await startTarpitSMTPServer({ delayMs: 400 });
    t.after(() => server.close());
    const transports: MailTransport[] = [];
    t.after(async () => {
      for (const tr of transports) await tr.close();
    });
    const senderWith = async (name: string, leaseMs: number): Promise<OutboxSender> => {
      const transport = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: server.port, secure: false, requireTLS: false, pool: true, socketTimeoutMs: 5_000 }, from: "security@bulwark.test" });
      transports.push(transport);
      return new OutboxSender({ outbox, transport, clock: systemClock, random: systemRandom, logger: { warn: () => {} } }, { name, leaseMs, concurrency: 1, retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 1 } });
    };
    const { id } = await outbox.enqueue(message(1, { kind: "account.password-reset", priority: PRIORITY.security }));
    const a = await senderWith("node-a", 1_000);
    const b = await senderWith("node-b", 30_000);
    const runA = a.runOnce();
    // A's claim first (runOnce reaches it after a few awaits of its own) ...
    while ((await outbox.get(id)).status === "queued") await sleep(5);
    // ... then B looks as soon as the message is claimable again: A gave up on it (a retry is due), or A's lease ran
    // out (for a claimed row, next_attempt_at is the lease's end).
    for (;;) {
      const row = await outbox.get(id);
      if (row.status === "sent" || row.nextAttemptAt <= Date.now()) break;
      await sleep(20);
    }
    const [ra, rb] = await Promise.all([runA, b.drain()]);
    const copies = server.accepted.filter((m) => m === `<${id}@bulwark.test>`).length;
    assert.equal(copies, 1, `the server accepted ${copies} copies (A: ${JSON.stringify(ra)}, B: ${JSON.stringify(rb)})`);
    assert.equal(ra.sent + ra.lostClaims, 0, "A's delivery was aborted at its deadline, before the lease ended");
    assert.equal((await outbox.get(id)).status, "sent");
  });

  it("delivers a reset mail queued during a campaign batch before the rest of that batch", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    await f.outbox.enqueueMany(Array.from({ length: 100 }, (_, i) => message(i, { kind: "campaign.notice", campaignId: "cmp_1", priority: PRIORITY.campaign })));
    f.clock.advance(1);
    // The sender's choices: the ids in the order it started their deliveries (an attempt is counted first thing).
    // Measured there and not at the transport, because on a loaded PostgreSQL one query can wait for the pool
    // to open a new connection while the other workers go on; that delay says nothing about the sender's order.
    const started: string[] = [];
    const startAttempt = f.outbox.startAttempt.bind(f.outbox);
    f.outbox.startAttempt = (input) => {
      started.push(input.id);
      return startAttempt(input);
    };
    const delivered: string[] = [];
    let resetId = "";
    let startedBeforeCommit = -1;
    const transport: MailTransport = {
      async send(m): Promise<DeliveryOutcome> {
        delivered.push(m.id);
        // The batch is claimed and on its way when a user asks for a password reset.
        if (startedBeforeCommit < 0) {
          startedBeforeCommit = 0;
          resetId = (await f.outbox.enqueue(message(-1, { kind: "account.password-reset", priority: PRIORITY.security }))).id;
          // Committed by now (perhaps a little earlier): every later check for urgent mail sees it.
          startedBeforeCommit = started.length;
        }
        await new Promise((resolve) => setImmediate(resolve));
        return { ok: true, providerMessageId: null };
      },
      close: async () => {},
    };
    // The defaults of `bulwark serve`: batches of 100, five deliveries at once.
    const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom }, { name: "serve", batchSize: 100, concurrency: 5 }).runOnce();
    assert.equal(report.sent, 101, "the reset mail went out within the batch in progress");
    assert.ok(delivered.includes(resetId), "the reset mail was delivered");
    assert.ok(startedBeforeCommit > 0 && startedBeforeCommit < 100, `the reset mail was queued mid-batch (after ${startedBeforeCommit} deliveries had started)`);
    // Workers look for urgent mail one at a time between deliveries. Once the reset mail is committed, at most the
    // look already under way misses it (its worker takes a campaign message); the next one claims it and puts it
    // first, and the worker that claimed it starts it straight away.
    // (It may even start before the enqueue call returns: the commit is visible before its reply is read.)
    const after = started.indexOf(resetId) - startedBeforeCommit;
    assert.ok(started.includes(resetId) && after <= 1, `${after} campaign deliveries were started after the reset mail was queued and before it`);
  });

  it("never claims a message it is delivering itself, though its clock (one with no elapsed time to judge a step by) was stepped past the lease meanwhile (test/clock-jumps-b-red-team.test.ts)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1));
    const sent: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const startedOnce = new Promise<void>((resolve) => (started = resolve));
    const slow: MailTransport = {
      async send(m): Promise<DeliveryOutcome> {
        sent.push(m.id);
        started();
        await held;
        return { ok: true, providerMessageId: null };
      },
      close: async () => {},
    };
    const wallOnly = { now: () => f.clock.now() };
    const sender = new OutboxSender({ outbox: f.outbox, transport: slow, clock: wallOnly, random: systemRandom }, { name: "node-a" });
    const first = sender.runOnce();
    await startedOnce;
    f.clock.jump(20 * 60_000);
    assert.equal((await sender.runOnce()).claimed, 0, "its own delivery in flight is left out of its claim");
    release();
    assert.deepEqual(await first, { claimed: 1, sent: 1, retried: 0, dead: 0, released: 0, lostClaims: 0 });
    assert.deepEqual(sent, [id]);
  });

  it("after its clock is stepped forward, takes over no lease until one lease of elapsed time has passed, claiming queued mail meanwhile; a crashed sender's mail is taken over then (test/outbox-twentysix-red-team.test.ts)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const crashed = await f.outbox.enqueue(message(1));
    // A sender that died holding it: its lease (15 minutes) runs from now.
    assert.equal((await f.outbox.claim({ claimer: "host/1/clm_dead", limit: 1, leaseMs: 15 * 60_000 })).length, 1);
    const sent: string[] = [];
    const recording: MailTransport = { send: async (m): Promise<DeliveryOutcome> => (sent.push(m.id), { ok: true, providerMessageId: null }), close: async () => {} };
    const logger = recordingLogger();
    const sender = new OutboxSender({ outbox: f.outbox, transport: recording, clock: f.clock, random: systemRandom, logger }, { name: "host/2" });
    f.clock.jump(20 * 60_000);
    const fresh = await f.outbox.enqueue(message(2));
    assert.deepEqual({ claimed: (await sender.runOnce()).claimed, sent }, { claimed: 1, sent: [fresh.id] }, "queued mail is claimed; the lease that looks over is not taken");
    assert.ok(logger.lines.some((l) => l.obj.clockStepMs === 20 * 60_000 && /takes over no other sender's lease/.test(l.msg)), JSON.stringify(logger.lines));
    f.clock.advance(15 * 60_000 - 1);
    assert.equal((await sender.runOnce()).claimed, 0, "not before a whole lease has elapsed since the step");
    f.clock.advance(1);
    assert.deepEqual({ claimed: (await sender.runOnce()).claimed, sent }, { claimed: 1, sent: [fresh.id, crashed.id] }, "the crashed sender's mail is taken over once its lease is over in elapsed time");
  });
});
