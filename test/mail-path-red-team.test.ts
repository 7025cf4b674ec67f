// Red team, the mail path: the attacker sits between Bulwark's outbox sender and its SMTP relay (reads, drops, delays,
// alters and answers in the relay's place: STARTTLS response injection, TLS handshakes cut off, a final reply held back),
// or is the relay itself (answers whatever it likes, as slowly as it likes). What was attacked: the wait for the relay's
// final reply to the message data (a reply that comes late makes the message be sent again and again, then recorded dead
// though delivered), the operator's warning when TLS to the relay cannot be set up (an interception), and the STARTTLS
// upgrade itself (clear-text replies smuggled in before the handshake). Relays are in process on loopback: smtp-server
// with certificates made by openssl for a throw-away CA, or a scripted raw server where smtp-server cannot misbehave as
// needed. Already pinned elsewhere and not repeated here: stripped STARTTLS and certificates that do not verify
// (src/notify/smtp-tls.security.test.ts, test/outbox-attacks.test.ts), 5xx greetings and EHLO
// (src/notify/delivery-faults.security.test.ts), endless replies (test/mail-third-look-red-team.test.ts), relay
// answers quoting links (test/log-secrets-red-team.test.ts). "attack: … (was: …)": two findings, fixed since (the wait for
// the final reply follows the RFC; a TLS or connection failure to the relay is warned about at once).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { SMTPServer } from "smtp-server";
import { parseMailConfig } from "../src/app/http-config.ts";
import { systemRandom } from "../src/lib/random.ts";
import type { MailConfig } from "../src/notify/config.ts";
import { PRIORITY, type NewMessage } from "../src/notify/outbox.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { FROM, notifyFixture, type NotifyFixture } from "../src/notify/test-setup.ts";
import { createSMTPTransport, transportOptions, type DeliveryOutcome, type MailTransport } from "../src/notify/transport.ts";
import { openSQLite } from "../src/store/database.ts";

const MINUTE = 60_000;
/** RFC 5321 §4.5.3.2.6, "DATA Termination: 10 minutes": how long a client waits for the reply to the end of the data. */
const DATA_TERMINATION_WAIT = 10 * MINUTE;

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function fixture(t: TestContext): Promise<NotifyFixture> {
  const database = openSQLite(join(tempDir(t, "bulwark-mail-path-"), "db.sqlite"), { create: true });
  const f = await notifyFixture(database);
  t.after(async () => {
    await f.close();
    await database.close();
  });
  return f;
}

function recorder(): { warn(obj: object, msg: string): void; lines: Array<{ obj: object; msg: string }> } {
  const lines: Array<{ obj: object; msg: string }> = [];
  return { lines, warn: (obj, msg) => lines.push({ obj, msg }) };
}

function notice(extra: Partial<NewMessage> = {}): NewMessage {
  return { idempotencyKey: "mail-path:1", to: "ana@example.org", subject: "Bulwark: your password was changed", text: "Your password was changed.\n", kind: "security.password-changed", priority: PRIORITY.security, ...extra };
}

/** The mail configuration `bulwark serve` reads from its environment. */
function configFrom(url: string): MailConfig {
  const config = parseMailConfig({ BULWARK_SMTP_URL: url, BULWARK_MAIL_FROM: FROM });
  assert.ok(config, url);
  return config;
}

/** A throw-away CA and a leaf certificate it signed for 127.0.0.1 (what the client connects to). */
function certificates(t: TestContext): { ca: string; key: string; cert: string } {
  const dir = tempDir(t, "bulwark-mail-path-tls-");
  const ssl = (...args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Mail path red team CA");
  ssl("req", ...ec, "-keyout", "relay.key", "-out", "relay.csr", "-subj", "/CN=relay");
  writeFileSync(join(dir, "relay.ext"), "subjectAltName=IP:127.0.0.1\n");
  ssl("x509", "-req", "-in", "relay.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "relay.ext", "-out", "relay.pem");
  return { ca: readFileSync(join(dir, "ca.pem"), "utf8"), key: readFileSync(join(dir, "relay.key"), "utf8"), cert: readFileSync(join(dir, "relay.pem"), "utf8") };
}

interface TLSRelay {
  port: number;
  /** `auth <user>:<pass> tls=<bool>` and `data <Message-ID> tls=<bool>`, in order. */
  seen: string[];
}

/** A genuine relay: STARTTLS with a certificate for 127.0.0.1 from the test CA, AUTH, and 250 for every message. */
async function tlsRelay(t: TestContext, certs: { key: string; cert: string }): Promise<TLSRelay> {
  const state: TLSRelay = { port: 0, seen: [] };
  const server = new SMTPServer({
    secure: false, key: certs.key, cert: certs.cert, logger: false, authOptional: true,
    onAuth(auth, session, callback) {
      state.seen.push(`auth ${auth.username}:${auth.password} tls=${Boolean(session.secure)}`);
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      let head = "";
      stream.on("data", (c: Buffer) => void (head.length < 4096 && (head += c.toString("latin1"))));
      stream.on("end", () => {
        state.seen.push(`data ${/^Message-ID:\s*(\S+)/im.exec(head)?.[1] ?? "?"} tls=${Boolean(session.secure)}`);
        callback(null, "Ok: queued as R1");
      });
    },
  });
  server.on("error", () => {});
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", () => done()));
  t.after(() => new Promise<void>((done) => server.close(() => done())));
  state.port = (server.server.address() as AddressInfo).port;
  return state;
}

/** A TCP server on loopback whose every connection `script` plays; all sockets are destroyed at the end of the test. */
async function scripted(t: TestContext, script: (socket: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    script(socket);
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", () => done()));
  t.after(() => new Promise<void>((done) => {
    for (const s of sockets) s.destroy();
    server.close(() => done());
  }));
  return (server.address() as AddressInfo).port;
}

/** Calls `onLine` with each CRLF-terminated line the client sends (latin1), until `stop()` says the rest is not lines. */
function readLines(socket: Socket, onLine: (line: string) => void, stop: () => boolean = () => false): void {
  let buffer = "";
  socket.on("data", (chunk: Buffer) => {
    if (stop()) return;
    buffer += chunk.toString("latin1");
    for (let eol = buffer.indexOf("\r\n"); eol >= 0 && !stop(); eol = buffer.indexOf("\r\n")) {
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      onLine(line);
    }
  });
}

describe("the wait for the relay's final reply", () => {
  // RFC 5321 §4.5.3.2.6: once the client has sent the end of the data, the server "typically performs processing to
  // deliver the message" (a before-queue content scan, a synchronous hand-off) and the client should wait 10 minutes for
  // its reply: "a spurious timeout at this point ... would typically result in delivery of multiple copies of the
  // message, since it has been successfully sent and the server has accepted responsibility for delivery". Bulwark's
  // transport gives up after 60 s of silence (socketTimeout) and its sender after 2 minutes (the delivery deadline). Seen
  // with those very settings (a probe built like the server, a relay that queues the message and answers 250 61 s after
  // the end of the data, retry budget 2): the relay held two copies, and the row was `dead` with "ETIMEDOUT CONN
  // Timeout", logged as "outbox message is dead … requeue-dead sends it again". With DEFAULT_RETRY that is 31 copies of
  // the notice or reset link over 24 to 48 hours, then a record saying it never went out and an operator told to send it
  // once more. (An attacker on the path can always cut the connection after the 250 and get one copy per attempt: the
  // documented at-least-once. The defect here is that an honest relay, slow within what the RFC gives it, gets them.)
  // Measured here on the objects the server builds, since a real 10-minute wait has no place in the suite.
  it("attack: a relay whose reply to the end of the data comes after 60 s (RFC 5321 allows it 10 minutes: a before-queue content scan under load) is waited for — the idle timeout is 10 minutes and each delivery's deadline longer — so it is not sent the message again nor recorded dead though delivered (RFC 5321 §4.5.3.2.6, ASVS 16.5.2) (was: 60 s and 2 minutes; a copy per attempt, up to 31, then dead)", async (t) => {
    // 1. The transport: the inactivity bound nodemailer applies while it waits for the final reply.
    const config = configFrom("smtp://mailer:S3cret@smtp.example.org:587");
    const idle = Number(transportOptions(config).socketTimeout);

    // 2. The sender as startMailRunner builds it (src/http/mail-runner.ts: a name and the pool's connection count, the
    //    rest by default): how long a delivery runs before it is aborted.
    const f = await fixture(t);
    await f.outbox.enqueue(notice());
    let signal: AbortSignal | undefined;
    let started!: () => void;
    const inFlight = new Promise<void>((resolve) => (started = resolve));
    // A relay that has the data and has not answered yet: the delivery ends only when the sender aborts it.
    const waiting: MailTransport = {
      send: (_message, options) => new Promise<DeliveryOutcome>((resolve) => {
        signal = options?.signal;
        started();
        options?.signal?.addEventListener("abort", () => resolve({ ok: false, permanent: false, error: "aborted while waiting for the final reply" }));
      }),
      close: async () => {},
    };
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const run = new OutboxSender({ outbox: f.outbox, transport: waiting, clock: f.clock, random: systemRandom, logger: recorder() }, { name: "mail-path/1", concurrency: config.smtp.maxConnections ?? 5 }).runOnce();
    await inFlight;
    let waited = 0;
    while (signal !== undefined && !signal.aborted && waited <= DATA_TERMINATION_WAIT) {
      t.mock.timers.tick(1_000);
      waited += 1_000;
    }
    if (signal !== undefined && !signal.aborted) {
      // Past the 10 minutes: let the sender end its delivery so the test ends.
      t.mock.timers.tick(24 * 60 * MINUTE);
    }
    t.mock.timers.reset();
    await run;
    t.diagnostic(`transport socketTimeout ${idle} ms; sender aborted the delivery after ${waited} ms`);
    assert.ok(idle >= DATA_TERMINATION_WAIT && waited >= DATA_TERMINATION_WAIT,
      `Bulwark stops waiting for the relay's final reply after ${Math.min(idle, waited) / 1000} s (socketTimeout ${idle} ms, delivery deadline ${waited} ms), not the 10 minutes RFC 5321 §4.5.3.2.6 gives the relay: a later 250 means one more copy per attempt`);
  });
});

describe("TLS to the relay cut off by an attacker on the path", () => {
  // sender.ts logs a TLS failure at once ("an interception on the path to the relay looks exactly like this") rather
  // than only retrying until the mail goes dead a day or two later (test/outbox-attacks.test.ts pins it for a certificate
  // that does not verify). Its TLS_FAILURE pattern knows certificate and protocol errors; it does not know the handshake
  // that never completes: "ESOCKET CONN read ECONNRESET" (the ClientHello answered with a TCP reset), "ESOCKET CONN Client
  // network socket disconnected before secure TLS connection was established" (answered with a FIN), or "ETIMEDOUT CONN
  // TLS handshake timed out" (silence after the relay's 220, cut by greetingTimeout after 30 s; not run here for its
  // length). A middlebox or attacker that kills every handshake to the relay (STARTTLS or smtps) holds every notice and
  // link back until each is dead (24 to 48 hours), with no warning but the mail runner's info-level batch counts.
  it("attack: an attacker who cuts off every TLS handshake to the relay (a reset or a close after its '220 ready to start TLS', or at an smtps ClientHello) is warned about at once, while the mail waits for a retry (ASVS 16.3.4) (was: nothing logged but batch counts until the mail went dead a day or two later)", async (t) => {
    const results: string[] = [];
    type Case = { what: string; url: (port: number) => string; script: (socket: Socket) => void; clear: string[] };
    /** A relay that offers STARTTLS, answers it "220", then cuts the ClientHello with `cut`; what it read in clear goes to `clear`. */
    const starttlsCut = (what: string, cut: (socket: Socket) => void): Case => ({
      what,
      url: (port) => `smtp://mailer:S3cret@127.0.0.1:${port}?requireTLS=true`,
      clear: [],
      script(socket) {
        let upgrading = false;
        socket.write("220 relay.example.org ESMTP\r\n");
        readLines(socket, (line) => {
          this.clear.push(line);
          const command = line.slice(0, 8).toUpperCase();
          if (command.startsWith("EHLO")) socket.write("250-relay.example.org\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n");
          else if (command === "STARTTLS") {
            upgrading = true;
            socket.write("220 2.0.0 Ready to start TLS\r\n");
            socket.once("data", () => cut(socket));
          } else socket.write("250 ok\r\n");
        }, () => upgrading);
      },
    });
    const cases: Case[] = [
      // The ClientHello answered with a TCP reset, as an interceptor that refuses TLS does; or the connection closed.
      starttlsCut("STARTTLS, handshake reset", (socket) => socket.resetAndDestroy()),
      starttlsCut("STARTTLS, handshake closed", (socket) => socket.destroy()),
      {
        what: "smtps, handshake reset",
        url: (port) => `smtps://mailer:S3cret@127.0.0.1:${port}`,
        clear: [],
        script(socket) {
          socket.once("data", () => socket.resetAndDestroy());
        },
      },
    ];
    for (const c of cases) {
      const f = await fixture(t);
      const port = await scripted(t, (socket) => c.script(socket));
      const transport = await createSMTPTransport(configFrom(c.url(port)));
      t.after(() => transport.close());
      const { id } = await f.outbox.enqueue(notice());
      const logger = recorder();
      const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger }, { name: "mail-path/tls" }).runOnce();
      const row = await f.outbox.get(id);
      // The defences that hold: nothing in clear, the notice waits for a retry rather than going dead.
      assert.deepEqual(c.clear.filter((l) => !/^(EHLO|STARTTLS)\b/i.test(l)), [], `${c.what}: the attacker read ${c.clear.join(" | ")}`);
      assert.deepEqual([report.sent, report.retried, report.dead, row.status], [0, 1, 0, "failed"], `${c.what}: ${JSON.stringify(report)}`);
      t.diagnostic(`${c.what}: last_error ${JSON.stringify(row.lastError)}; warnings ${JSON.stringify(logger.lines.map((l) => l.msg))}`);
      if (!logger.lines.some((l) => /TLS/.test(l.msg))) results.push(`${c.what} ("${row.lastError}")`);
    }
    assert.deepEqual(results, [], `TLS to the relay failed and nothing was logged for: ${results.join("; ")}`);
  });
});

/**
 * An attacker on the path: a TCP relay between the client and `target` that, in the chunk carrying the relay's
 * "220" answer to STARTTLS, appends `inject` in clear, then passes everything through untouched (the TLS bytes included).
 */
async function injectingProxy(t: TestContext, target: number, inject: string): Promise<{ port: number; injected: () => number }> {
  let injected = 0;
  const port = await scripted(t, (client) => {
    const upstream = connect(target, "127.0.0.1");
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    let asked = false;
    let done = false;
    client.on("data", (chunk: Buffer) => {
      if (!done && /^STARTTLS\r\n/im.test(chunk.toString("latin1"))) asked = true;
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!done && asked && /^220[ -]/m.test(chunk.toString("latin1"))) {
        done = true;
        injected++;
        client.write(Buffer.concat([chunk, Buffer.from(inject, "latin1")]));
        return;
      }
      client.write(chunk);
    });
  });
  return { port, injected: () => injected };
}

describe("STARTTLS response injection", () => {
  // RFC 3207 §6: a client must discard what it learnt before TLS. Replies an attacker appends in clear right after the
  // relay's "220 ready to start TLS" sit in the client's buffer when the handshake starts; kept, they are read as the
  // relay's answers inside TLS (a forged EHLO without AUTH, a forged 550 to RCPT TO) or break every session. nodemailer
  // drops its buffer at the upgrade (SMTPConnection._upgradeConnection); this pins that the whole path (transport,
  // sender, outbox) lives by it. With that discard undone (tried while writing this test), every delivery failed on the
  // forged lines ("EPROTOCOL CONN 250 250-forged.example 250 8BITMIME") and this test fails.
  it("attack: clear-text replies appended after the relay's '220 ready to start TLS' (a forged EHLO, a forged 550 to RCPT TO, a CRLF-less fragment) are discarded: the notice goes out once over TLS, authenticated, and is recorded sent", async (t) => {
    const certs = certificates(t);
    const forgeries = {
      "whole forged replies": "250-forged.example\r\n250 8BITMIME\r\n250 2.1.0 Ok\r\n550 5.1.1 <ana@example.org>: Recipient address rejected: forged\r\n550 5.7.1 forged\r\n",
      "a CRLF-less fragment": "550 5.1.1 forged ",
    };
    for (const [what, inject] of Object.entries(forgeries)) {
      const f = await fixture(t);
      const relay = await tlsRelay(t, certs);
      const proxy = await injectingProxy(t, relay.port, inject);
      const config = configFrom(`smtp://mailer:S3cret@127.0.0.1:${proxy.port}?requireTLS=true`);
      // The relay's CA, as an operator whose relay has a private CA would give it (NODE_EXTRA_CA_CERTS does the same).
      const transport = await createSMTPTransport({ ...config, smtp: { ...config.smtp, tls: { rejectUnauthorized: true, ca: certs.ca } } });
      t.after(() => transport.close());
      const { id } = await f.outbox.enqueue(notice());
      const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger: recorder() }, { name: "mail-path/inject" }).runOnce();
      // Closed now, not after the test: the relay's close would wait for the pooled connection to go.
      await transport.close();
      assert.equal(proxy.injected(), 1, `${what}: the forged replies were not injected (the test did not attack)`);
      const row = await f.outbox.get(id);
      assert.deepEqual([report.sent, report.dead, row.status, row.lastError], [1, 0, "sent", null], `${what}: ${JSON.stringify(report)} ${row.lastError}`);
      assert.deepEqual(relay.seen, ["auth mailer:S3cret tls=true", `data <${id}@bulwark.test> tls=true`], `${what}: the relay saw ${relay.seen.join(", ")}`);
    }
  });

  // The classic downgrade: the attacker answers STARTTLS with "220" and then carries on in clear as if TLS were up.
  it("attack: an attacker who answers STARTTLS with '220' and then plays the relay in clear gets no password and no mail: the client's next bytes are a TLS ClientHello, and the failure is logged as TLS", async (t) => {
    const f = await fixture(t);
    const received: Buffer[] = [];
    const port = await scripted(t, (socket) => {
      let upgrading = false;
      socket.write("220 relay.example.org ESMTP\r\n");
      readLines(socket, (line) => {
        const command = line.slice(0, 8).toUpperCase();
        if (command.startsWith("EHLO")) socket.write("250-relay.example.org\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n");
        else if (command === "STARTTLS") {
          upgrading = true;
          socket.write("220 2.0.0 Ready to start TLS\r\n");
          // Whatever comes now is kept and answered with the replies a clear-text session would get.
          socket.on("data", (chunk: Buffer) => {
            received.push(chunk);
            socket.write("250-relay.example.org\r\n250 AUTH PLAIN LOGIN\r\n235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n");
          });
        } else socket.write("250 ok\r\n");
      }, () => upgrading);
    });
    const transport = await createSMTPTransport(configFrom(`smtp://mailer:S3cret@127.0.0.1:${port}?requireTLS=true`));
    t.after(() => transport.close());
    const { id } = await f.outbox.enqueue(notice({ kind: "account.password-reset-link", text: "https://bulwark.test/reset-password#token=prt_secretsecret\n", priority: PRIORITY.link }));
    const logger = recorder();
    const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger }, { name: "mail-path/downgrade" }).runOnce();
    const wire = Buffer.concat(received).toString("latin1");
    assert.ok(received.length > 0 && wire.charCodeAt(0) === 0x16, "the client's first bytes after the 220 are a TLS handshake record");
    for (const secret of ["S3cret", Buffer.from("S3cret").toString("base64"), Buffer.from("\0mailer\0S3cret").toString("base64"), "MAIL FROM", "prt_secret"]) {
      assert.equal(wire.includes(secret), false, `the attacker read ${JSON.stringify(secret)} in clear`);
    }
    const row = await f.outbox.get(id);
    assert.deepEqual([report.sent, report.retried, report.dead, row.status], [0, 1, 0, "failed"]);
    assert.ok(logger.lines.some((l) => /TLS/.test(l.msg)), `no TLS warning: ${JSON.stringify(logger.lines)} (${row.lastError})`);
  });
});
