// Delivery faults, written as attacks and accidents that must not cost mail:
// - a 5xx about the session (greeting, EHLO/HELO — both before STARTTLS, so an attacker on the path can send
//   them) or about our account at the relay (530 "authentication required") never makes queued mail dead;
// - an address as long as RFC 5321 allows still gets its security notice, also over HTTP;
// - a relay configured as `localhost` is reached on 127.0.0.1, never through a DNS answer, since it is allowed
//   clear text.
import assert from "node:assert/strict";
import dgram from "node:dgram";
import dns from "node:dns";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { SMTPServer } from "smtp-server";
import { parseMailConfig } from "../app/http-config.ts";
import { authFixture, type AuthFixture } from "../http/auth/test-client.ts";
import { systemRandom } from "../lib/random.ts";
import { openSQLite, type Database } from "../store/database.ts";
import { connectHost } from "./config.ts";
import { PRIORITY, type OutboxMessage } from "./outbox.ts";
import { noticeKey, notifySecurityEvent } from "./security-notices.ts";
import { OutboxSender } from "./sender.ts";
import { startTestSMTPServer } from "./smtp-test-server.ts";
import { notifyFixture, type NotifyFixture } from "./test-setup.ts";
import { classifyFailure, createSMTPTransport, transportOptions } from "./transport.ts";
import { addressProblem } from "./validate.ts";

const MINUTE = 60_000;

/** 64 + 1 + 189 = 254 characters: the longest address RFC 5321 lets through, and one the outbox accepts. */
const LONGEST = `${"a".repeat(64)}@${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(57)}.org`;

interface Script {
  greeting: string;
  ehlo?: string;
  helo?: string;
  mail?: string;
  rcpt?: string;
}

/** A raw SMTP server that answers each command as scripted (250 otherwise), without STARTTLS. */
async function scriptedServer(script: Script): Promise<{ port: number; commands: string[]; close(): Promise<void> }> {
  const commands: string[] = [];
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.write(`${script.greeting}\r\n`);
    let buffer = "";
    let inData = false;
    socket.on("data", (chunk) => {
      buffer += chunk.toString("latin1");
      let eol: number;
      while ((eol = buffer.indexOf("\r\n")) >= 0) {
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            socket.write("250 ok: queued as S1\r\n");
          }
          continue;
        }
        const command = line.slice(0, 4).toUpperCase();
        commands.push(command);
        if (command === "EHLO") socket.write(`${script.ehlo ?? "250 relay"}\r\n`);
        else if (command === "HELO") socket.write(`${script.helo ?? "250 relay"}\r\n`);
        else if (command === "MAIL") socket.write(`${script.mail ?? "250 ok"}\r\n`);
        else if (command === "RCPT") socket.write(`${script.rcpt ?? "250 ok"}\r\n`);
        else if (command === "DATA") {
          inData = true;
          socket.write("354 go ahead\r\n");
        } else if (command === "QUIT") {
          socket.write("221 bye\r\n");
          socket.end();
        } else socket.write("250 ok\r\n");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return { port: (server.address() as AddressInfo).port, commands, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function sqliteFixture(t: { after(fn: () => Promise<void> | void): void }): Promise<{ db: Database; f: NotifyFixture }> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-faults-"));
  const db = openSQLite(join(dir, "db.sqlite"), { create: true });
  const f = await notifyFixture(db);
  t.after(async () => {
    await f.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { db, f };
}

/** Queues `n` security notices, runs one sender pass against `script`, and returns the report and the rows. */
async function deliverAgainst(t: { after(fn: () => Promise<void> | void): void }, script: Script, options: { n?: number; requireTLS?: boolean } = {}) {
  const { f } = await sqliteFixture(t);
  const server = await scriptedServer(script);
  t.after(() => server.close());
  const ids: string[] = [];
  for (let i = 0; i < (options.n ?? 3); i++) {
    const queued = await f.outbox.enqueue({ idempotencyKey: `fault:${i}`, to: `user${i}@example.org`, subject: "Example: your password was changed", text: "…", kind: "security.password-changed", priority: PRIORITY.security });
    ids.push(queued.id);
  }
  const transport = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: server.port, secure: false, requireTLS: options.requireTLS ?? false }, from: "security@bulwark.test" });
  t.after(() => transport.close());
  const now = f.clock.now();
  const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger: { warn: () => {} } }, { name: "faults" }).runOnce();
  const rows: OutboxMessage[] = [];
  for (const id of ids) rows.push(await f.outbox.get(id));
  return { report, rows, now, commands: server.commands };
}

function assertRetried(result: Awaited<ReturnType<typeof deliverAgainst>>, reply: RegExp): void {
  const { report, rows, now } = result;
  assert.equal(report.dead, 0, `${report.dead} messages went dead on their first attempt: ${rows.map((r) => r.lastError).join(" | ")}`);
  assert.equal(report.retried, rows.length);
  for (const row of rows) {
    assert.equal(row.status, "failed", `${row.id}: ${row.lastError}`);
    assert.equal(row.attempts, 1, "the attempt is counted");
    // The first step of the backoff: between half a minute and a minute from now.
    assert.ok(row.nextAttemptAt >= now + MINUTE / 2 && row.nextAttemptAt <= now + MINUTE, `backoff set: ${row.nextAttemptAt - now} ms`);
    assert.match(row.lastError ?? "", reply);
  }
}

describe("a 5xx about the session or our account is transient: the queue survives it", () => {
  it("attack: a 554 greeting (before STARTTLS, so anyone on the path can send it) leaves every notice queued for a retry", async (t) => {
    assertRetried(await deliverAgainst(t, { greeting: "554 5.7.1 Service unavailable; client host [192.0.2.5] blocked" }), /554/);
  });

  it("the same 554 greeting with STARTTLS required (the default for smtp://) leaves every notice queued", async (t) => {
    assertRetried(await deliverAgainst(t, { greeting: "554 5.7.1 go away" }, { requireTLS: true }), /554/);
  });

  it("a relay that refuses EHLO and HELO with 5xx leaves every notice queued for a retry", async (t) => {
    const result = await deliverAgainst(t, { greeting: "220 relay ESMTP", ehlo: "502 5.5.2 EHLO not allowed now", helo: "550 5.7.1 HELO rejected: need fully-qualified hostname" });
    assert.ok(result.commands.includes("HELO"), "HELO was tried after EHLO");
    assertRetried(result, /550/);
  });

  it("a 550 to EHLO with STARTTLS required leaves every notice queued for a retry", async (t) => {
    assertRetried(await deliverAgainst(t, { greeting: "220 relay ESMTP", ehlo: "550 5.7.1 EHLO rejected" }, { requireTLS: true }), /550/);
  });

  it("530 5.7.0 'authentication required' at MAIL FROM (credentials missing: our configuration) leaves every notice queued", async (t) => {
    assertRetried(await deliverAgainst(t, { greeting: "220 relay ESMTP", mail: "530 5.7.0 Authentication required" }), /530/);
  });

  it("a 550 to RCPT TO still makes that message dead at once, after one attempt", async (t) => {
    const { report, rows } = await deliverAgainst(t, { greeting: "220 relay ESMTP", rcpt: "550 5.1.1 no such user" }, { n: 1 });
    assert.equal(report.dead, 1);
    assert.equal(rows[0]!.status, "dead");
    assert.equal(rows[0]!.attempts, 1);
    assert.match(rows[0]!.lastError ?? "", /550 5\.1\.1/);
  });

  it("classifies nodemailer's errors by the command they answer, not by nodemailer's permanent flag", () => {
    const permanent = (e: object): boolean => classifyFailure(e).permanent;
    // Session and account: transient whatever the code.
    assert.equal(permanent({ code: "EPROTOCOL", command: "CONN", responseCode: 554, permanent: true, response: "554 no service" }), false);
    assert.equal(permanent({ code: "EPROTOCOL", command: "HELO", responseCode: 550, permanent: true, response: "550 HELO rejected" }), false);
    assert.equal(permanent({ code: "ECONNECTION", command: "EHLO", responseCode: 550, permanent: true, response: "550 EHLO rejected" }), false);
    assert.equal(permanent({ code: "ETLS", command: "STARTTLS", responseCode: 554, permanent: true, response: "554 no TLS" }), false);
    assert.equal(permanent({ code: "EAUTH", command: "AUTH PLAIN", responseCode: 535, permanent: true, response: "535 5.7.8 bad credentials" }), false);
    assert.equal(permanent({ code: "EENVELOPE", command: "MAIL FROM", responseCode: 530, permanent: true, response: "530 5.7.0 Authentication required" }), false);
    assert.equal(permanent({ code: "EENVELOPE", command: "MAIL FROM", responseCode: 550, permanent: true, response: "550 5.7.0 Must issue a STARTTLS command first" }), false);
    assert.equal(permanent({ code: "EENVELOPE", command: "RCPT TO", responseCode: 530, permanent: true, response: "530 5.7.0 Authentication required" }), false);
    assert.equal(permanent({ code: "EMESSAGE", command: "MAIL FROM", message: "Message size larger than allowed 1000" }), false, "a local refusal without a reply");
    assert.equal(permanent({ responseCode: 550, permanent: true, response: "550 unknown" }), false, "a reply nobody says was to the message");
    // Replies to the message: permanent, except 503.
    assert.equal(permanent({ code: "EENVELOPE", command: "MAIL FROM", responseCode: 553, response: "553 5.1.8 sender refused" }), true);
    assert.equal(permanent({ code: "EENVELOPE", command: "RCPT TO", responseCode: 550, response: "550 5.1.1 no such user" }), true);
    assert.equal(permanent({ code: "EENVELOPE", command: "DATA", responseCode: 554, response: "554 no valid recipients" }), true);
    assert.equal(permanent({ code: "EMESSAGE", command: "DATA", responseCode: 552, response: "552 5.3.4 message too big" }), true);
    assert.equal(permanent({ code: "EMESSAGE", command: "DATA", responseCode: 554, response: "554 5.7.0 spam" }), true, "5.7.0 at the end of DATA is about the message");
    assert.equal(permanent({ code: "EENVELOPE", command: "RCPT TO", responseCode: 503, response: "503 bad sequence" }), false);
    assert.equal(permanent({ code: "EENVELOPE", command: "RCPT TO", responseCode: 450, response: "450 mailbox busy" }), false);
    assert.match(classifyFailure({ code: "EPROTOCOL", command: "CONN", responseCode: 554, response: "554 no service" }).error, /^EPROTOCOL CONN 554 554 no service$/);
  });
});

describe("a security notice to the longest legal address", () => {
  it("is queued, once per event and address (case aside), with a key that fits the outbox", async (t) => {
    assert.equal(LONGEST.length, 254);
    assert.equal(addressProblem(LONGEST), null);
    const { db, f } = await sqliteFixture(t);
    const options = { appName: "Example" };
    const eventId = "evt_aaaaaaaaaaaaaaaaaaaaaaaaaa";
    const [first] = await notifySecurityEvent(f.outbox, { eventId, to: LONGEST, at: f.clock.now(), event: { type: "password-changed" } }, options);
    const [again] = await notifySecurityEvent(f.outbox, { eventId, to: LONGEST.toUpperCase(), at: f.clock.now(), event: { type: "password-changed" } }, options);
    assert.ok(first && again);
    assert.equal(again.id, first.id, "the same event to the same address queues one message");
    const [other] = await notifySecurityEvent(f.outbox, { eventId: "evt_bbbbbbbbbbbbbbbbbbbbbbbbbb", to: LONGEST, at: f.clock.now(), event: { type: "password-changed" } }, options);
    assert.notEqual(other!.id, first.id, "another event is another message");
    const rows = await db.db.selectFrom("outbox_messages").select(["to_address", "kind", "idempotency_key"]).execute();
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.equal(row.to_address, LONGEST);
      assert.equal(row.kind, "security.password-changed");
      assert.ok(!row.idempotency_key.includes("@"), "the key names the address by a digest only");
    }
  });

  it("an email change between two of the longest addresses tells both, under distinct keys", async (t) => {
    const { f } = await sqliteFixture(t);
    const older = `z${LONGEST.slice(1)}`;
    const queued = await notifySecurityEvent(f.outbox, { eventId: "evt_c", to: LONGEST, at: f.clock.now(), event: { type: "email-changed", oldEmail: older, newEmail: LONGEST } }, { appName: "Example" });
    assert.equal(queued.length, 2);
    assert.notEqual(queued[0]!.id, queued[1]!.id);
  });

  it("keys always fit: the longest kind, the longest event id and any address stay within 200 characters", () => {
    const key = noticeKey("security.recovery-codes-regenerated", "e".repeat(128), LONGEST);
    assert.ok(key.length <= 200, `${key.length}`);
    assert.equal(noticeKey("security.password-changed", "evt_1", "Ana@Example.org"), noticeKey("security.password-changed", "evt_1", "ana@example.org"));
    assert.match(noticeKey("security.password-changed", "evt_1", "ana@example.org"), /^security\.password-changed:evt_1:[0-9a-f]{32}$/);
  });
});

describe("over HTTP: a committed change never answers an error because of its notice", () => {
  let fx: AuthFixture;
  before(async () => {
    fx = await authFixture();
  });
  after(async () => {
    await fx.close();
  });

  it("a password change by the owner of a 254-character address answers 200 and queues the notice", async () => {
    const user = await fx.user(LONGEST);
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const res = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: user.password, newPassword: "lantern harbour seventeen owls" } });
    assert.equal(res.statusCode, 200, res.body);
    const queued = await fx.app.db.db.selectFrom("outbox_messages").select("kind").where("to_address", "=", LONGEST).execute();
    // The first sign-in of all, from a browser nothing vouches for, is told too; then the change.
    assert.deepEqual(queued.map((q) => q.kind).sort(), ["security.new-device-sign-in", "security.password-changed"]);
    const refused = await fx.app.db.db.selectFrom("audit_events").select("type").where("type", "=", "auth.notice.refused").where("subject", "=", user.id).execute();
    assert.equal(refused.length, 0);
  });

  it("a notice the outbox refuses for another input reason is audited as auth.notice.refused; the change still answers 200", async () => {
    const user = await fx.user("refused-subject@example.org");
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const name = fx.app.config.serviceName;
    // A subject over the outbox's 250 characters: the notice cannot be queued.
    fx.app.config.serviceName = "S".repeat(240);
    let res;
    try {
      res = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: user.password, newPassword: "another sturdy passphrase" } });
    } finally {
      fx.app.config.serviceName = name;
    }
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((await fx.browser().login(user.email, "another sturdy passphrase")).statusCode, 200, "the change was committed");
    const refused = (await fx.app.audit.tail(20)).filter((e) => e.type === "auth.notice.refused" && e.subject === user.id);
    assert.equal(refused.length, 1);
    assert.equal(refused[0]?.data["notice"], "password-changed");
    assert.match(String(refused[0]?.data["reason"]), /subject/);
    assert.ok(!String(refused[0]?.data["reason"]).includes(user.email));
  });
});

/** A DNS server on 127.0.0.1 that answers every A query with `answer` and records the queries. */
function fakeDNS(answer: string): Promise<{ port: number; queries: string[]; close(): void }> {
  const socket = dgram.createSocket("udp4");
  const queries: string[] = [];
  socket.on("message", (msg, rinfo) => {
    let o = 12;
    const labels: string[] = [];
    while (msg[o]) {
      labels.push(msg.subarray(o + 1, o + 1 + msg[o]!).toString());
      o += msg[o]! + 1;
    }
    const qtype = msg.readUInt16BE(o + 1);
    queries.push(`${labels.join(".")} ${qtype}`);
    const header = Buffer.from(msg.subarray(0, 12));
    const isA = qtype === 1;
    header.writeUInt16BE(0x8180, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(isA ? 1 : 0, 6);
    header.writeUInt16BE(0, 8);
    header.writeUInt16BE(0, 10);
    const parts = [header, msg.subarray(12, o + 5)];
    if (isA) parts.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...answer.split(".").map(Number)]));
    socket.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  return new Promise((resolve) => socket.bind(0, "127.0.0.1", () => resolve({ port: socket.address().port, queries, close: () => socket.close() })));
}

/**
 * Points every resolver nodemailer creates at a fake DNS server answering `answer` (as /etc/resolv.conf pointing at
 * it would) until the test ends. Returns the server, whose `queries` tell what was looked up.
 */
async function resolveAllTo(t: TestContext, answer: string): Promise<{ queries: string[] }> {
  const dnsServer = await fakeDNS(answer);
  const Original = dns.Resolver;
  (dns as { Resolver: unknown }).Resolver = class extends Original {
    constructor(options?: dns.ResolverOptions) {
      super(options);
      this.setServers([`127.0.0.1:${dnsServer.port}`]);
    }
  };
  t.after(() => {
    (dns as { Resolver: unknown }).Resolver = Original;
    dnsServer.close();
  });
  return dnsServer;
}

const resetMail: OutboxMessage = {
  id: "msg_localhost1", idempotencyKey: "k", to: "ana@example.org", subject: "Reset your password", text: "https://bulwark.test/reset-password#token=prt_secret\n",
  html: null, kind: "account.password-reset", priority: 0, status: "sending", attempts: 1, nextAttemptAt: 0, lastError: null, createdAt: 0,
  sentAt: null, claimedBy: "t", claimedUntil: 0, providerMessageId: null, campaignId: null,
};

describe("a relay configured as localhost", () => {
  it("is connected to as 127.0.0.1, with TLS names kept as localhost; other hosts are left as given", () => {
    const config = parseMailConfig({ BULWARK_SMTP_URL: "smtp://mailer:S3cret@localhost:25", BULWARK_MAIL_FROM: "security@example.org" })!;
    const options = transportOptions(config);
    assert.equal(options.host, "127.0.0.1");
    assert.equal(options.requireTLS, false, "loopback: clear text by default, now truly loopback");
    assert.equal(options.tls["servername"], "localhost");
    assert.equal(transportOptions({ smtp: { host: "LocalHost", port: 465, secure: true }, from: "security@example.org" }).host, "127.0.0.1");
    const remote = transportOptions({ smtp: { host: "smtp.example.org", port: 587, secure: false }, from: "security@example.org" });
    assert.equal(remote.host, "smtp.example.org");
    assert.equal(remote.requireTLS, true);
    assert.equal(remote.tls["servername"], undefined);
    assert.equal(connectHost("[::1]"), "::1");
    assert.equal(connectHost("127.0.0.1"), "127.0.0.1");
    assert.equal(connectHost("localhost.example.org"), "localhost.example.org");
  });

  it("attack: a resolver answering 'localhost' with another address gets nothing; the mail goes to 127.0.0.1 without a DNS query", async (t) => {
    const dnsServer = await resolveAllTo(t, "127.0.0.2");
    const smtp = await startTestSMTPServer();
    t.after(() => smtp.close());
    const transport = await createSMTPTransport(parseMailConfig({ BULWARK_SMTP_URL: `smtp://localhost:${smtp.port}`, BULWARK_MAIL_FROM: "security@example.org" })!);
    const outcome = await transport.send(resetMail);
    await transport.close();
    assert.deepEqual(dnsServer.queries, [], "localhost was looked up in DNS");
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    assert.equal(smtp.accepted.length, 1);
    assert.deepEqual(smtp.accepted[0]!.envelopeTo, ["ana@example.org"]);
  });

  it("attack: a loopback address with leading zeros (127.0.0.01) is not clear text to whatever DNS names; the password and the link stay home", async (t) => {
    // 127.0.0.01 is no IP literal to Node: nodemailer asks the resolver, whose answer (here the attacker's relay on
    // 127.0.0.2, standing for any host) would get AUTH and the reset link in clear if it were judged loopback.
    const stolen: { passwords: string[]; bodies: number } = { passwords: [], bodies: 0 };
    const evil = new SMTPServer({
      secure: false, disabledCommands: ["STARTTLS"], allowInsecureAuth: true, logger: false,
      onAuth(auth, _session, callback) {
        stolen.passwords.push(String(auth.password));
        callback(null, { user: auth.username });
      },
      onData(stream, _session, callback) {
        stream.on("data", () => {});
        stream.on("end", () => {
          stolen.bodies++;
          callback(null, "ok");
        });
      },
    });
    await new Promise<void>((resolve) => evil.listen(0, "127.0.0.2", () => resolve()));
    const port = (evil.server.address() as AddressInfo).port;
    await resolveAllTo(t, "127.0.0.2");
    t.after(() => new Promise<void>((resolve) => evil.close(() => resolve())));
    const config = parseMailConfig({ BULWARK_SMTP_URL: `smtp://mailer:S3cret@127.0.0.01:${port}`, BULWARK_MAIL_FROM: "security@example.org" })!;
    const transport = await createSMTPTransport(config);
    const outcome = await transport.send(resetMail);
    await transport.close();
    assert.deepEqual(stolen.passwords, [], "the SMTP password went in clear to the address DNS named");
    assert.equal(stolen.bodies, 0, "the reset link went in clear to the address DNS named");
    assert.equal(outcome.ok, false, "a relay without STARTTLS is refused");
    assert.equal(transportOptions(config).requireTLS, true, "not a loopback literal: STARTTLS required");
  });

  it("with STARTTLS, presents 'localhost' as the TLS server name (SNI) while connecting to 127.0.0.1", async (t) => {
    const seen: Array<{ secure: boolean; servername: string | undefined }> = [];
    const server = new SMTPServer({
      secure: false,
      authOptional: true,
      logger: false,
      onData(stream, session, callback) {
        stream.on("data", () => {});
        stream.on("end", () => {
          seen.push({ secure: Boolean(session.secure), servername: (session as { servername?: string }).servername });
          callback(null, "Ok: queued as L1");
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.server.address() as AddressInfo).port;
    // smtp-server's built-in certificate (for localhost) is self-signed and expired: verification is off for this test.
    const transport = await createSMTPTransport({ smtp: { host: "localhost", port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false } }, from: "security@example.org" });
    t.after(() => transport.close());
    const outcome = await transport.send(resetMail);
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    assert.deepEqual(seen, [{ secure: true, servername: "localhost" }]);
  });
});
