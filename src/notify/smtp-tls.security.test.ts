// STARTTLS stripping, written as attacks that must fail: an attacker on the path to the SMTP server removes
// STARTTLS from its greeting (or answers STARTTLS with a 5xx). Neither the mail (reset links) nor the SMTP
// password may then cross the network in clear, and the queue must not be turned dead by it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SMTPServer } from "smtp-server";
import { parseMailConfig } from "../app/http-config.ts";
import { ManualClock } from "../lib/clock.ts";
import { systemRandom } from "../lib/random.ts";
import { openSQLite } from "../store/database.ts";
import { migrate } from "../store/migrator.ts";
import { MIGRATIONS } from "../store/migrations/index.ts";
import { isLoopbackHost, tlsRequired, type MailConfig } from "./config.ts";
import { Outbox, PRIORITY, type OutboxMessage } from "./outbox.ts";
import { OutboxSender } from "./sender.ts";
import { createSMTPTransport } from "./transport.ts";

interface Seen {
  auth: string[];
  data: Array<{ secure: boolean }>;
}

/** A server that offers AUTH over plain text, and STARTTLS only when `starttls` is set (its built-in self-signed certificate). */
async function startServer(starttls: boolean): Promise<{ port: number; seen: Seen; close(): Promise<void> }> {
  const seen: Seen = { auth: [], data: [] };
  const server = new SMTPServer({
    secure: false,
    allowInsecureAuth: true,
    disabledCommands: starttls ? [] : ["STARTTLS"],
    logger: false,
    onAuth(auth, session, callback) {
      seen.auth.push(`${auth.username}:${auth.password}${session.secure ? " (tls)" : " (clear)"}`);
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      stream.on("data", () => {});
      stream.on("end", () => {
        seen.data.push({ secure: Boolean(session.secure) });
        callback(null, "Ok: queued as T1");
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return { port: (server.server.address() as AddressInfo).port, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const message: OutboxMessage = {
  id: "msg_tls1", idempotencyKey: "k", to: "ana@example.org", subject: "Reset your password", text: "https://bulwark.test/reset-password#secret-token\n",
  html: null, kind: "account.password-reset", priority: 0, status: "sending", attempts: 1, nextAttemptAt: 0, lastError: null, createdAt: 0,
  sentAt: null, claimedBy: "t", claimedUntil: 0, providerMessageId: null, campaignId: null,
};

const env = (url: string): NodeJS.ProcessEnv => ({ BULWARK_SMTP_URL: url, BULWARK_MAIL_FROM: "security@bulwark.test" });

describe("SMTP without STARTTLS (stripped by an attacker)", () => {
  let plain: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    plain = await startServer(false);
  });
  after(() => plain.close());

  it("sends neither the mail nor the password when requireTLS is written as 1, yes or in another case", async () => {
    for (const query of ["?requireTLS=true", "?requireTLS=1", "?requiretls=true", "?REQUIRETLS=Yes"]) {
      plain.seen.auth.length = 0;
      plain.seen.data.length = 0;
      const config = parseMailConfig(env(`smtp://alice:S3cret@127.0.0.1:${plain.port}${query}`))!;
      assert.equal(config.smtp.requireTLS, true, query);
      const transport = await createSMTPTransport(config);
      const outcome = await transport.send(message);
      await transport.close();
      assert.equal(outcome.ok, false, `${query}: delivered in clear`);
      assert.deepEqual(plain.seen, { auth: [], data: [] }, `${query}: the server saw the password or the mail`);
      assert.equal(!outcome.ok && outcome.permanent, false, `${query}: a stripped STARTTLS is not a verdict on the message`);
    }
  });

  it("keeps the queued notices waiting for a retry instead of marking them all dead", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-notify-tls-"));
    const database = openSQLite(join(dir, "db.sqlite"), { create: true });
    t.after(async () => {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const clock = new ManualClock(Date.UTC(2026, 10, 1));
    assert.equal((await migrate(database, clock, MIGRATIONS)).error, undefined);
    const outbox = new Outbox({ database, clock, random: systemRandom });
    for (let i = 0; i < 3; i++) await outbox.enqueue({ idempotencyKey: `n${i}`, to: `user${i}@example.org`, subject: "Your password was changed", text: "…", kind: "security.password-changed", priority: PRIORITY.security });
    const transport = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: plain.port, secure: false, requireTLS: true, auth: { user: "alice", pass: "S3cret" } }, from: "security@bulwark.test" });
    t.after(() => transport.close());
    const report = await new OutboxSender({ outbox, transport, clock, random: systemRandom, logger: { warn: () => {} } }, { name: "t", concurrency: 1 }).runOnce();
    assert.equal(report.dead, 0, "an attacker who strips STARTTLS must not be able to kill the queue");
    assert.equal(report.retried, 3);
    assert.deepEqual(await outbox.counts(), { queued: 0, sending: 0, sent: 0, failed: 3, dead: 0 });
    assert.deepEqual(plain.seen, { auth: [], data: [] });
  });
});

describe("SMTP URL and the TLS requirement", () => {
  it("requires STARTTLS by default for every host that is not this machine's loopback", () => {
    for (const host of ["smtp.example.org", "10.0.0.5", "[2001:db8::25]", "127.example.org", "localhost.evil.test", "0.0.0.0"]) {
      const config = parseMailConfig(env(`smtp://alice:S3cret@${host}:587`))!;
      assert.equal(config.smtp.requireTLS, true, host);
      assert.equal(tlsRequired(config.smtp), true, host);
    }
    // The same default when a library caller leaves requireTLS out of the MailConfig.
    assert.equal(tlsRequired({ host: "smtp.example.org", secure: false }), true);
  });

  it("attack: a loopback address spelt in a form that is not an IP literal (127.0.0.01) gets TLS required: it would be looked up in DNS", () => {
    // Node (and so nodemailer) treats only a canonical literal as an address; any other text is a name for the
    // resolver to answer, so it must not inherit loopback's clear-text default.
    for (const host of ["127.0.0.01", "127.000.000.001", "0127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "127.0.0.1.", "[127.0.0.1]", "::ffff:127.0.0.01", "[::1", "localhost."]) {
      assert.equal(isLoopbackHost(host), false, host);
      assert.equal(tlsRequired({ host, secure: false }), true, host);
    }
    for (const host of ["127.0.0.01", "127.000.000.001", "0127.0.0.1", "127.1"]) {
      assert.equal(parseMailConfig(env(`smtp://alice:S3cret@${host}:25`))!.smtp.requireTLS, true, host);
    }
    // The canonical literals, and the name connectHost pins to 127.0.0.1, stay loopback.
    for (const host of ["127.0.0.1", "127.255.255.254", "::1", "[::1]", "0:0:0:0:0:0:0:1", "[0:0:0:0:0:0:0:1]", "::ffff:127.0.0.1", "localhost", "LocalHost"]) {
      assert.equal(isLoopbackHost(host), true, host);
    }
  });

  it("lets a loopback relay default to clear text, and lets the operator opt in or out explicitly", () => {
    for (const host of ["127.0.0.1", "127.0.0.53", "localhost", "[::1]"]) {
      assert.equal(parseMailConfig(env(`smtp://${host}:25`))!.smtp.requireTLS, false, host);
      assert.equal(parseMailConfig(env(`smtp://${host}:25?requireTLS=true`))!.smtp.requireTLS, true, host);
    }
    assert.equal(parseMailConfig(env("smtp://alice:S3cret@relay.internal:25?requireTLS=false"))!.smtp.requireTLS, false);
    assert.equal(parseMailConfig(env("smtp://relay.internal:25?requireTLS=0"))!.smtp.requireTLS, false);
    const smtps = parseMailConfig(env("smtps://alice:S3cret@smtp.example.org"))!.smtp;
    assert.deepEqual([smtps.secure, smtps.port], [true, 465], "smtps is TLS from the first byte, as before");
  });

  it("refuses a requireTLS value it cannot read, or an unknown parameter, naming it and not the password", () => {
    for (const [query, why] of [
      ["?requireTLS=maybe", /requireTLS must be true or false, got "maybe"/],
      ["?requireTLS=", /requireTLS must be true or false/],
      ["?requireTLS=true&requireTLS=false", /requireTLS more than once/],
      ["?requireTSL=true", /unknown parameter "requireTSL"/],
    ] as const) {
      assert.throws(() => parseMailConfig(env(`smtp://alice:S3cret@smtp.example.org${query}`)), (e: Error & { code?: string }) => {
        assert.equal(e.code, "BULWARK_ERR_CONFIG", query);
        assert.match(e.message, /BULWARK_SMTP_URL/);
        assert.match(e.message, why);
        assert.doesNotMatch(e.message, /S3cret/);
        return true;
      });
    }
    assert.throws(() => parseMailConfig(env("smtp://alice:50%zz@smtp.example.org")), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_CONFIG" && !e.message.includes("50%zz"));
  });
});

describe("SMTP with STARTTLS", () => {
  it("sends the password and the mail only after upgrading the connection", async (t) => {
    const server = await startServer(true);
    t.after(() => server.close());
    // The server's built-in certificate is self-signed: verification is off for this test only.
    const config: MailConfig = { smtp: { host: "127.0.0.1", port: server.port, secure: false, requireTLS: true, auth: { user: "alice", pass: "S3cret" }, tls: { rejectUnauthorized: false } }, from: "security@bulwark.test" };
    const transport = await createSMTPTransport(config);
    t.after(() => transport.close());
    const outcome = await transport.send(message);
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    assert.deepEqual(server.seen, { auth: ["alice:S3cret (tls)"], data: [{ secure: true }] });
  });
});
