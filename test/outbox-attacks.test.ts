// Attacks on the email outbox and its SMTP sender (src/notify), written as attacks that must fail: recipients and
// bodies that try to smuggle a second mailbox or message, relays that drop the connection or present a certificate
// that does not verify, two sender processes draining one queue while one of them is killed, a 2,000-message
// campaign, an exhausted retry budget, and single-use links left in the SQLite files after delivery.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { domainToUnicode } from "node:url";
import { SMTPServer } from "smtp-server";
import { AuditLog } from "../src/audit/audit-log.ts";
import { createContainJob, dryRunContain, jobView, runJob, type ContainDeps } from "../src/contain/index.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import type { MailConfig } from "../src/notify/config.ts";
import { SEALED_BODY_MARKER } from "../src/notify/link-kinds.ts";
import { PRIORITY, type NewMessage, type OutboxMessage } from "../src/notify/outbox.ts";
import { OutboxSender, type SenderOptions } from "../src/notify/sender.ts";
import { decodeQuotedPrintable } from "../src/notify/smtp-test-server.ts";
import { startTarpitSMTPServer } from "../src/notify/tarpit-smtp-server.ts";
import { FROM, notifyFixture, type NotifyFixture } from "../src/notify/test-setup.ts";
import { createSMTPTransport, type DeliveryOutcome, type MailTransport } from "../src/notify/transport.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { queueResetLink } from "./helpers/reset-link.ts";

const ROOT = resolve(import.meta.dirname, "..");
const MINUTE = 60_000;
const TOKEN = /prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}/;

function recorder(): { warn(obj: object, msg: string): void; lines: Array<{ obj: object; msg: string }> } {
  const lines: Array<{ obj: object; msg: string }> = [];
  return { lines, warn: (obj, msg) => lines.push({ obj, msg }) };
}

function sender(f: NotifyFixture, transport: MailTransport, options: Partial<SenderOptions> = {}, logger = recorder()): OutboxSender {
  return new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger }, { name: "redteam", ...options });
}

function notice(n: number, extra: Partial<NewMessage> = {}): NewMessage {
  return { idempotencyKey: `rt:${n}`, to: `user${n}@example.org`, subject: "Bulwark: your password was changed", text: `Notice ${n}\n`, kind: "security.password-changed", priority: PRIORITY.security, ...extra };
}

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function sqliteFixture(t: TestContext): Promise<{ database: Database; path: string; f: NotifyFixture }> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-redteam-"));
  const path = join(dir, "db.sqlite");
  const database = openSQLite(path, { create: true });
  const f = await notifyFixture(database);
  t.after(async () => {
    await f.close();
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { database, path, f };
}

describe("what reaches the wire", () => {
  it("attack: odd but legal recipients, encoded-words and SMTP smuggling sequences reach one mailbox in one message (ASVS 1.3.11)", async (t) => {
    const { f } = await sqliteFixture(t);
    // Every address here passes the outbox's check; each tries to make a parser see another mailbox
    // ("Splitting the email atom": an encoded-word naming eve@evil.test, percent and bang routing, list-ish signs).
    const recipients = ["=?utf-8?q?eve=40evil.test=3e=00?=@example.org", "ana%evil.test!eve@example.org", "a/b|c{d}e@example.org", "o'neil+x@xn--bcher-kva.example", "#&*`~^$@example.org"];
    // SMTP smuggling: end-of-data look-alikes in a body, then a whole second transaction; and a line far over 998.
    const smuggled = "MAIL FROM:<eve@evil.test>\r\nRCPT TO:<eve@evil.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\n";
    const text = ["Hello", `\r\n.\r\n${smuggled}`, `\n.\n${smuggled}`, `\r.\r${smuggled}`, `\n.\r\n${smuggled}`, `\r\n.\n${smuggled}`, ""].join("\n");
    const subject = "=?utf-8?B?DQpCY2M6IGV2ZUBldmlsLnRlc3Q=?= rés\u00fcm\u00e9 " + "w".repeat(200);
    // Even messages go as plain 7bit text (the body's lines travel as they are); odd ones with a 5,000-character line
    // and an HTML part.
    for (const [i, to] of recipients.entries()) {
      await f.outbox.enqueue(notice(i, { to, subject, ...(i % 2 ? { text: `${text}${"x".repeat(5_000)}\n`, html: `<p>${text}</p>` } : { text }) }));
    }
    assert.equal((await sender(f, await f.transport()).drain()).sent, recipients.length);
    assert.equal(f.server.accepted.length, recipients.length, "a smuggled second message reached the server");
    assert.equal(f.server.refused.length, 0);
    assert.ok(f.server.accepted.some((m) => /^content-transfer-encoding: 7bit/im.test(m.raw)), "no message went as raw 7bit text");
    for (const to of recipients) {
      // smtp-server shows an IDN domain in Unicode (RCPT TO carried the xn-- form).
      const rcpt = `${to.slice(0, to.lastIndexOf("@"))}@${domainToUnicode(to.slice(to.lastIndexOf("@") + 1))}`;
      const sentTo = f.server.accepted.filter((m) => m.envelopeTo.includes(rcpt));
      assert.equal(sentTo.length, 1, `${to}: reached the server ${sentTo.length} times`);
      const one = sentTo[0]!;
      assert.deepEqual(one.envelopeTo, [rcpt], `${to}: the envelope names another mailbox`);
      assert.equal(one.envelopeFrom, FROM);
      assert.equal(one.headers.get("to"), to);
      for (const header of ["bcc", "cc", "reply-to", "sender"]) assert.equal(one.headers.has(header), false, `${to}: a ${header} header appeared`);
      const head = one.raw.slice(0, one.raw.indexOf("\r\n\r\n"));
      assert.equal(head.match(/^subject:/gim)?.length, 1);
      for (const line of one.raw.split("\r\n")) assert.ok(line.length <= 998, `a line of ${line.length} characters`);
      assert.match(decodeQuotedPrintable(one.body), /MAIL FROM:<eve@evil\.test>/, "the smuggled text stays body text");
    }
  });
});

describe("the final reply", () => {
  it("attack: a relay that takes the data and hangs up before its final reply gets the message again, same Message-ID, never recorded as sent early", async (t) => {
    const { f } = await sqliteFixture(t);
    const relay = await startTarpitSMTPServer({ delayMs: 0, dropFirst: 1 });
    t.after(() => relay.close());
    const { id } = await f.outbox.enqueue(notice(1, { kind: "account.password-reset-link", text: "https://bulwark.test/reset-password#token=prt_x\n" }));
    const transport = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: relay.port, secure: false, requireTLS: false, pool: true }, from: FROM });
    t.after(() => transport.close());
    const s = sender(f, transport, { retry: { maxAttempts: 5, baseDelayMs: MINUTE, maxDelayMs: MINUTE } });
    const first = await s.runOnce();
    assert.deepEqual({ sent: first.sent, retried: first.retried, dead: first.dead }, { sent: 0, retried: 1, dead: 0 });
    const waiting = await f.outbox.get(id);
    assert.equal(waiting.status, "failed");
    assert.match(waiting.text, /#token=prt_x/, "a message not accepted keeps its link for the retry");
    f.clock.advance(MINUTE);
    assert.equal((await s.runOnce()).sent, 1, "the pool recovered from the dropped connection");
    assert.deepEqual([relay.dropped, relay.accepted], [[`<${id}@bulwark.test>`], [`<${id}@bulwark.test>`]]);
    const done = await f.outbox.get(id);
    assert.deepEqual([done.status, done.attempts, done.text.includes("prt_x")], ["sent", 2, false], "sent on the second attempt, then redacted");
  });

  it("attack: a sender that fails after the relay accepted (the documented duplicate) sends the copy under the same Message-ID, and records one delivery", async (t) => {
    const { f } = await sqliteFixture(t);
    const { id } = await f.outbox.enqueue(notice(1));
    const real = await f.transport();
    let crashes = 1;
    const crashing: MailTransport = {
      async send(m, options): Promise<DeliveryOutcome> {
        const outcome = await real.send(m, options);
        if (crashes-- > 0) throw new Error("ECONNRESET while reading the 250 (simulated)");
        return outcome;
      },
      close: () => real.close(),
    };
    const s = sender(f, crashing, { retry: { maxAttempts: 5, baseDelayMs: MINUTE, maxDelayMs: MINUTE } });
    assert.equal((await s.runOnce()).retried, 1);
    f.clock.advance(MINUTE);
    assert.equal((await s.runOnce()).sent, 1);
    assert.equal((await s.runOnce()).claimed, 0, "nothing left to send");
    const ids = f.server.accepted.map((m) => m.headers.get("message-id"));
    assert.deepEqual(ids, [`<${id}@bulwark.test>`, `<${id}@bulwark.test>`], "the copy must be recognisable as the same message");
    const row = await f.outbox.get(id);
    assert.deepEqual([row.status, row.attempts], ["sent", 2]);
  });
});

/** A CA and two leaf certificates it signed: one for mail.example.org only, one for 127.0.0.1. */
function certificates(t: TestContext): { ca: string; wrongName: { key: string; cert: string }; right: { key: string; cert: string } } {
  const dir = tempDir(t, "bulwark-redteam-tls-");
  const ssl = (...args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Red team CA");
  const leaf = (name: string, san: string): { key: string; cert: string } => {
    ssl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.pem`);
    return { key: readFileSync(join(dir, `${name}.key`), "utf8"), cert: readFileSync(join(dir, `${name}.pem`), "utf8") };
  };
  return { ca: readFileSync(join(dir, "ca.pem"), "utf8"), wrongName: leaf("wrong", "DNS:mail.example.org"), right: leaf("right", "IP:127.0.0.1") };
}

interface Relay {
  port: number;
  /** What the relay was told: `auth user:pass tls=…` and `data tls=…`, in order. */
  seen: string[];
  /** Every message accepted: its envelope sender and Message-ID. */
  mails: Array<{ from: string; messageId: string }>;
}

/**
 * An SMTP server with AUTH that records what it was told and whether TLS was up: TLS from the first byte (`secure`),
 * STARTTLS with the given certificate (smtp-server's self-signed one without), or `plain` (no STARTTLS). `onMail` runs
 * as a message's data has arrived, before the reply. Unlike the shared test server, it survives clients that vanish.
 */
async function relay(t: TestContext, options: { secure?: boolean; plain?: boolean; key?: string; cert?: string; onMail?: (from: string) => void } = {}): Promise<Relay> {
  const state: Relay = { port: 0, seen: [], mails: [] };
  const server = new SMTPServer({
    secure: options.secure ?? false, ...(options.key ? { key: options.key, cert: options.cert } : {}), logger: false, authOptional: true,
    ...(options.plain ? { disabledCommands: ["STARTTLS"], allowInsecureAuth: true } : {}),
    onAuth(auth, session, callback) {
      state.seen.push(`auth ${auth.username}:${auth.password} tls=${Boolean(session.secure)}`);
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      let head = "";
      stream.on("data", (c: Buffer) => void (head.length < 4096 && (head += c.toString("latin1"))));
      stream.on("end", () => {
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
        options.onMail?.(from);
        state.seen.push(`data tls=${Boolean(session.secure)}`);
        state.mails.push({ from, messageId: /^Message-ID:\s*(\S+)/im.exec(head)?.[1] ?? "?" });
        callback(null, "Ok: queued as T1");
      });
    },
  });
  // A client that refuses our certificate, or a sender killed mid-delivery, is what these tests expect.
  server.on("error", () => {});
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", () => done()));
  t.after(() => new Promise<void>((done) => server.close(() => done())));
  state.port = (server.server.address() as AddressInfo).port;
  return state;
}

describe("TLS to the relay", () => {
  it("attack: a relay certificate that does not verify (wrong name, untrusted issuer; STARTTLS or smtps) gets neither the password nor the link", async (t) => {
    const certs = certificates(t);
    const link = { id: "msg_tls", to: "ana@example.org", subject: "Reset your password", text: "https://bulwark.test/reset-password#token=prt_secret\n", html: null, kind: "account.password-reset-link" };
    const message = { ...link, idempotencyKey: "k", priority: 0, status: "sending", attempts: 1, nextAttemptAt: 0, lastError: null, createdAt: 0, sentAt: null, claimedBy: "t", claimedUntil: 0, providerMessageId: null, campaignId: null } as OutboxMessage;
    const attempt = async (relayOptions: { secure: boolean; key?: string; cert?: string }, tls: MailConfig["smtp"]["tls"]): Promise<{ outcome: DeliveryOutcome; seen: string[] }> => {
      const server = await relay(t, relayOptions);
      const transport = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: server.port, secure: relayOptions.secure, requireTLS: true, auth: { user: "mailer", pass: "S3cret" }, ...(tls ? { tls } : {}) }, from: FROM });
      t.after(() => transport.close());
      return { outcome: await transport.send(message), seen: server.seen };
    };
    const trusted = { rejectUnauthorized: true, ca: certs.ca };
    const refused: Array<[string, Awaited<ReturnType<typeof attempt>>]> = [
      ["STARTTLS, a trusted certificate for another name", await attempt({ secure: false, ...certs.wrongName }, trusted)],
      ["smtps, a trusted certificate for another name", await attempt({ secure: true, ...certs.wrongName }, trusted)],
      ["STARTTLS, a certificate from an issuer not trusted (default settings)", await attempt({ secure: false, ...certs.right }, undefined)],
      ["smtps, smtp-server's self-signed certificate (default settings)", await attempt({ secure: true }, undefined)],
    ];
    for (const [what, { outcome, seen }] of refused) {
      assert.deepEqual(seen, [], `${what}: the relay was given ${seen.join(", ")}`);
      assert.equal(outcome.ok, false, what);
      assert.equal(!outcome.ok && outcome.permanent, false, `${what}: a failed handshake is not a verdict on the message`);
    }
    // The control: the same CA and a certificate for the address connected to are accepted, so the refusals above
    // are certificate verification at work.
    const good = await attempt({ secure: false, ...certs.right }, trusted);
    assert.equal(good.outcome.ok, true, JSON.stringify(good.outcome));
    assert.deepEqual(good.seen, ["auth mailer:S3cret tls=true", "data tls=true"]);
  });

  // A relay certificate that fails verification (an interception on the path to the relay) is logged at once, not
  // only retried until the message goes dead a day or two later.
  it("attack: a relay certificate that does not verify is logged as a TLS failure, not only retried in silence (ASVS 16.3.4)", async (t) => {
    const certs = certificates(t);
    const { f } = await sqliteFixture(t);
    const server = await relay(t, { secure: false, ...certs.wrongName });
    const { id } = await f.outbox.enqueue(notice(1, { to: "ana@example.org" }));
    const transport = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: server.port, secure: false, requireTLS: true, tls: { rejectUnauthorized: true, ca: certs.ca } }, from: FROM });
    t.after(() => transport.close());
    const logger = recorder();
    const report = await sender(f, transport, {}, logger).runOnce();
    assert.deepEqual([report.retried, report.dead], [1, 0], "the notice waits for a retry");
    const row = await f.outbox.get(id);
    assert.equal(row.status, "failed");
    assert.match(row.lastError ?? "", /cert|altname|TLS/i, "the row says why");
    t.diagnostic(`lastError: ${row.lastError}`);
    const logged = JSON.stringify(logger.lines);
    assert.doesNotMatch(logged, /ana@/, "no mailbox in the log");
    assert.match(logged, /cert|altname|TLS/i, `the TLS failure of the relay connection was not logged: ${logged}`);
  });
});

describe("single-use links at rest", () => {
  // Redacting the row after delivery is not enough on SQLite (the WAL keeps old page images, the page its free space):
  // link bodies are sealed at rest, so no file a backup copies holds the link in clear.
  it("attack: a copy of the SQLite files made after a reset mail was delivered holds no working link (ASVS 14.2.7)", async (t) => {
    const { database, path, f } = await sqliteFixture(t);
    const { resets } = await queueResetLink(database, f);
    assert.equal((await sender(f, await f.transport()).drain()).sent, 1);
    const link = TOKEN.exec(decodeQuotedPrintable(f.server.accepted[0]!.body))?.[0];
    assert.ok(link, "the mail carried the link");
    assert.equal((await database.db.selectFrom("outbox_messages").select("body_text").executeTakeFirstOrThrow()).body_text.includes(link), false, "redacted in the row");
    // What the server's checkpointer does (PASSIVE), then the backup account copies the files.
    database.sqlite!.exec("PRAGMA wal_checkpoint(PASSIVE)");
    const secret = link.slice(link.indexOf(".") + 1);
    const holding = [path, `${path}-wal`].filter((file) => existsSync(file) && readFileSync(file).includes(secret));
    f.clock.advance(10 * MINUTE);
    assert.equal((await resets.check(link)).valid, true, "the link still works for the rest of its 30 minutes");
    assert.deepEqual(holding, [], "the delivered link's secret can be read from these files");
  });
});

forEachDialect("single-use links under key rotation", (fx) => {
  // A containment that rotates keys (the old data key is suspected) must not leave a working link sealed under the
  // retired key: rotate-keys re-seals waiting link bodies with everything else, and they still deliver (ASVS 11.1.x).
  it("attack: a reset link waiting in the outbox stays under the retired key after rotate-keys (was: not re-sealed)", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const { resets } = await queueResetLink(database, f);
    // A notice whose text happens to begin like a sealed body is not a ciphertext: rotation leaves it alone.
    await f.outbox.enqueue(notice(7, { text: `${SEALED_BODY_MARKER}not a ciphertext\n` }));
    const retired = f.keyring.currentDataKeyId;
    const deps: ContainDeps = {
      database, clock: f.clock, random: systemRandom, keyring: f.keyring, notifier: null,
      audit: new AuditLog({ database, clock: f.clock, random: systemRandom }),
      jobs: new JobStore({ database, clock: f.clock, random: systemRandom }),
    };
    assert.deepEqual((await dryRunContain(deps, { levers: ["rotate-keys"], scope: { all: true }, actor: "t" })).levers["rotate-keys"]?.counts, { keys: 1, encryptedValues: 1 });
    const job = await createContainJob(deps, { levers: ["rotate-keys"], scope: { all: true }, actor: "t" });
    const view = jobView(await runJob(deps, job.id));
    assert.equal(view.status, "done");
    assert.deepEqual(view.counts["rotate-keys"], { reencrypted: 1 });
    const rows = await database.db.selectFrom("outbox_messages").select(["kind", "body_text"]).orderBy("kind").execute();
    const link = rows.find((r) => r.kind === "account.password-reset-link")!;
    assert.ok(link.body_text.startsWith(SEALED_BODY_MARKER), "the body is still sealed");
    assert.notEqual(f.keyring.currentDataKeyId, retired);
    assert.equal(Keyring.keyIdOf(link.body_text.slice(SEALED_BODY_MARKER.length)), f.keyring.currentDataKeyId, "the link is still sealed under the retired key");
    assert.equal(rows.find((r) => r.kind !== "account.password-reset-link")!.body_text, `${SEALED_BODY_MARKER}not a ciphertext\n`);
    // It still delivers, and the link it carries works.
    assert.equal((await sender(f, await f.transport()).drain()).sent, 2);
    const token = f.server.accepted.map((m) => TOKEN.exec(decodeQuotedPrintable(m.body))?.[0]).find(Boolean);
    assert.ok(token, "the re-sealed mail carried its link");
    assert.equal((await resets.check(token)).valid, true);
  });
});

forEachDialect("outbox volume and budgets (red team)", (fx) => {
  const CAMPAIGN = 2_000;
  const BATCH = 100;
  // What the drain must show is many bounded batches, not many messages: 2,000 in batches of 100 (`bulwark serve`'s
  // sender) take the same 21 claims that 10,000 in batches of 500 did, each a twentieth of the queue, for a fifth of
  // the deliveries (the queue's size at 100,000 and what a claim reads there: test/outbox-scale-red-team.test.ts).
  it("attack: a 2,000-message campaign drains in bounded batches, each message exactly once, and a reset link still goes first", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    await f.outbox.enqueueMany(Array.from({ length: CAMPAIGN }, (_, i) => notice(i, { kind: "campaign.notice", campaignId: "cmp_rt", priority: PRIORITY.campaign, idempotencyKey: `cmp:${i}` })));
    f.clock.advance(1);
    const reset = await f.outbox.enqueue(notice(-1, { kind: "account.password-reset-link" }));
    const claims: number[] = [];
    const claim = f.outbox.claim.bind(f.outbox);
    f.outbox.claim = async (input) => {
      const rows = await claim(input);
      claims.push(rows.length);
      assert.ok(input.limit <= BATCH, `a claim asked for ${input.limit} rows`);
      return rows;
    };
    // The order deliveries start in (the sender's own order), and how many claims were made when the link went out.
    const started: string[] = [];
    const startAttempt = f.outbox.startAttempt.bind(f.outbox);
    f.outbox.startAttempt = (input) => {
      started.push(input.id);
      return startAttempt(input);
    };
    let claimsBeforeLink = -1;
    const delivered = new Map<string, number>();
    const counting: MailTransport = {
      send: async (m): Promise<DeliveryOutcome> => {
        delivered.set(m.id, (delivered.get(m.id) ?? 0) + 1);
        if (m.id === reset.id) claimsBeforeLink = claims.length;
        return { ok: true, providerMessageId: null };
      },
      close: async () => {},
    };
    const report = await sender(f, counting, { batchSize: BATCH, concurrency: 10 }).drain();
    assert.equal(report.sent, CAMPAIGN + 1);
    assert.equal(delivered.size, CAMPAIGN + 1);
    assert.ok([...delivered.values()].every((n) => n === 1), "a message was delivered twice");
    assert.ok(Math.max(...claims) <= BATCH, `a batch held ${Math.max(...claims)} rows in memory`);
    assert.ok(claims.length >= Math.ceil((CAMPAIGN + 1) / BATCH), `${claims.length} claims for ${CAMPAIGN + 1} messages`);
    // The first delivery the sender starts, and sent within the first batch, before any other claim. Not "among the
    // first ten sent": ten deliveries run at once, and which reaches the relay first is the database's to say (on
    // PostgreSQL the link's first write may wait for a new pool connection while the other nine each deliver twice).
    assert.equal(started[0], reset.id, `the reset link waited behind the campaign (started ${started.indexOf(reset.id) + 1}th)`);
    assert.equal(claimsBeforeLink, 1, "the reset link was sent after another claim");
    assert.deepEqual(await f.outbox.counts({ campaignId: "cmp_rt" }), { queued: 0, sending: 0, sent: CAMPAIGN, failed: 0, dead: 0 });
  });

  it("attack: the largest retry budget (1000 attempts, a week apart) schedules within a week and ends dead, never in overflow", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(notice(1));
    // As if it had been deferred 998 times already.
    await db.db.updateTable("outbox_messages").set({ attempts: 998 }).where("id", "=", id).execute();
    const deferring: MailTransport = { send: async (): Promise<DeliveryOutcome> => ({ ok: false, permanent: false, error: "451 4.3.0 later" }), close: async () => {} };
    const WEEK = 7 * 24 * 60 * MINUTE;
    const s = sender(f, deferring, { retry: { maxAttempts: 1000, baseDelayMs: 1, maxDelayMs: WEEK } });
    assert.equal((await s.runOnce()).retried, 1);
    const waiting = await f.outbox.get(id);
    const wait = waiting.nextAttemptAt - f.clock.now();
    assert.ok(Number.isSafeInteger(waiting.nextAttemptAt) && wait >= WEEK / 2 && wait <= WEEK, `next attempt in ${wait} ms`);
    f.clock.set(waiting.nextAttemptAt);
    assert.equal((await s.runOnce()).dead, 1);
    const dead = await f.outbox.get(id);
    assert.deepEqual([dead.status, dead.attempts], ["dead", 1000]);
  });
});

// A sender process: drains the queue at `RT_TARGET` through the SMTP server on `RT_PORT`, as `RT_FROM`, at the frozen
// time `RT_NOW` (no lease of another sender expires while it runs), and prints its report.
const CHILD = `
const root = ${JSON.stringify(ROOT)};
const { ManualClock } = await import(root + "/src/lib/clock.ts");
const { systemRandom } = await import(root + "/src/lib/random.ts");
const { openPostgres, openSQLite } = await import(root + "/src/store/database.ts");
const { Outbox } = await import(root + "/src/notify/outbox.ts");
const { OutboxSender } = await import(root + "/src/notify/sender.ts");
const { createSMTPTransport } = await import(root + "/src/notify/transport.ts");
const { RT_TARGET: target, RT_PORT: port, RT_FROM: from, RT_NOW: now } = process.env;
const database = target.startsWith("postgres") ? await openPostgres(target) : openSQLite(target, { create: false });
const clock = new ManualClock(Number(now));
const outbox = new Outbox({ database, clock, random: systemRandom });
const transport = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: Number(port), secure: false, requireTLS: false, pool: true, maxConnections: 3 }, from });
const report = await new OutboxSender({ outbox, transport, clock, random: systemRandom, logger: { warn() {} } }, { name: from, batchSize: 20, concurrency: 3 }).drain();
await transport.close();
await database.close();
process.stdout.write(JSON.stringify(report));
`;

function senderProcess(t: TestContext, target: string, port: number, from: string, now: number): { pid: number; done: Promise<{ code: number | null; signal: string | null; out: string }> } {
  const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", CHILD], {
    env: { ...process.env, RT_TARGET: target, RT_PORT: String(port), RT_FROM: from, RT_NOW: String(now) }, stdio: ["ignore", "pipe", "pipe"],
  });
  t.after(() => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")));
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; out: string }>((ok) => child.on("exit", (code, signal) => ok({ code, signal, out: out || err })));
  return { pid: child.pid!, done };
}

forEachDialect("two sender processes (red team)", (fx) => {
  it("attack: two sender processes drain one queue while one is killed mid-batch: nothing lost, a copy only of what was in flight, same Message-ID", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    // Sender A is killed (SIGKILL: no chance to record anything) as its 5th message reaches the relay.
    const killed = { pid: 0, deliveries: 0 };
    const server = await relay(t, { plain: true, onMail: (from) => void (from === "sender-a@bulwark.test" && ++killed.deliveries === 5 && process.kill(killed.pid, "SIGKILL")) });
    const total = 200;
    await f.outbox.enqueueMany(Array.from({ length: total }, (_, i) => notice(i)));
    const target = fx.lastTarget().sqlitePath ?? fx.lastTarget().databaseURL!;
    const a = senderProcess(t, target, server.port, "sender-a@bulwark.test", f.clock.now());
    killed.pid = a.pid;
    const b = senderProcess(t, target, server.port, "sender-b@bulwark.test", f.clock.now());
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.signal, "SIGKILL", `sender A was not killed mid-batch: ${ra.out}`);
    assert.equal(rb.code, 0, rb.out);
    const bSent = (JSON.parse(rb.out) as { sent: number }).sent;
    assert.ok(bSent > 0, "sender B delivered alongside A");
    // A's claims are abandoned; once their lease (15 minutes, sender.ts DEFAULT_LEASE) has passed, any sender takes them over.
    const held = await database.db.selectFrom("outbox_messages").select("id").where("status", "=", "sending").execute();
    assert.ok(held.length > 0, "A died holding claimed messages");
    f.clock.advance(15 * MINUTE + 1);
    const transport = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: server.port, secure: false, requireTLS: false }, from: FROM });
    t.after(() => transport.close());
    await sender(f, transport).drain();
    assert.deepEqual(await f.outbox.counts(), { queued: 0, sending: 0, sent: total, failed: 0, dead: 0 });
    const rows = await database.db.selectFrom("outbox_messages").select(["id", "attempts"]).execute();
    const copies = new Map<string, number>();
    for (const { messageId } of server.mails) copies.set(messageId, (copies.get(messageId) ?? 0) + 1);
    const expected = new Set(rows.map((r) => `<${r.id}@bulwark.test>`));
    assert.deepEqual([...copies.keys()].filter((k) => !expected.has(k)), [], "a Message-ID that names no message");
    assert.equal(copies.size, total, "a message was lost");
    const twice = rows.filter((r) => (copies.get(`<${r.id}@bulwark.test>`) ?? 0) > 1);
    t.diagnostic(`B sent ${bSent}, A held ${held.length}, ${twice.length} delivered twice`);
    // At most the deliveries A had in flight (its concurrency, 3) are sent again; each counted its two attempts.
    assert.ok(twice.length <= 3, `${twice.length} messages were delivered twice`);
    for (const r of twice) assert.equal(Number(r.attempts), 2);
    assert.ok([...copies.values()].every((n) => n <= 2));
  });
});
