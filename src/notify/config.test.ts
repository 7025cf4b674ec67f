// The mail configuration is checked once, and each problem is named.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkMailConfig, type MailConfig } from "./config.ts";
import { createSMTPTransport, classifyFailure } from "./transport.ts";

const good: MailConfig = { smtp: { host: "smtp.example.org", port: 587, secure: false, requireTLS: true, pool: true }, from: "security@example.org" };

describe("mail configuration", () => {
  it("accepts a complete configuration", () => {
    assert.equal(checkMailConfig(good), good);
  });

  it("names the field that is wrong", () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, smtp: { ...good.smtp, port: 70000 } }, /smtp\.port/],
      [{ ...good, smtp: { ...good.smtp, host: "smtp.example.org\r\nRCPT TO:<x@y.z>" } }, /smtp\.host/],
      [{ ...good, smtp: { ...good.smtp, secure: "yes" } }, /smtp\.secure/],
      [{ ...good, smtp: { ...good.smtp, requireTLS: "yes" } }, /smtp\.requireTLS/],
      [{ ...good, from: "security@example.org\r\nBcc: eve@evil.test" }, /from:.*line break/],
      [{ ...good, dkim: { domainName: "example.org", keySelector: "a b", privateKey: "-----BEGIN PRIVATE KEY-----" } }, /dkim\.keySelector/],
      [{ ...good, dkim: { domainName: "example.org", keySelector: "s1", privateKey: "secret" } }, /dkim\.privateKey/],
      [{ from: "a@example.org" }, /smtp is missing/],
    ];
    for (const [config, message] of cases) assert.throws(() => checkMailConfig(config as MailConfig), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_MAIL_CONFIG" && message.test(e.message));
  });

  it("does not put the DKIM key or SMTP password in its messages", () => {
    const secret = "-----BEGIN PRIVATE KEY-----\nsupersecretkeymaterial";
    assert.throws(() => checkMailConfig({ ...good, dkim: { domainName: "bad domain", keySelector: "s1", privateKey: secret } }), (e: Error) => !e.message.includes("supersecret"));
  });

  it("refuses to build a transport from a bad configuration", async () => {
    await assert.rejects(createSMTPTransport({ ...good, smtp: { ...good.smtp, port: 0 } }), { code: "BULWARK_ERR_MAIL_CONFIG" });
  });
});

describe("delivery failure classification", () => {
  it("treats a 5xx reply to the message as permanent, except 503, and 4xx and network errors as transient", () => {
    assert.equal(classifyFailure({ code: "EENVELOPE", command: "RCPT TO", responseCode: 550, response: "550 no such user" }).permanent, true);
    assert.equal(classifyFailure({ code: "EENVELOPE", command: "MAIL FROM", responseCode: 503, response: "503 bad sequence" }).permanent, false);
    assert.equal(classifyFailure({ responseCode: 451, response: "451 later" }).permanent, false);
    assert.equal(classifyFailure({ code: "ECONNECTION", message: "connect ECONNREFUSED" }).permanent, false);
    assert.equal(classifyFailure({ responseCode: 421, permanent: false }).permanent, false);
  });

  it("treats a refused or failed STARTTLS, and a refused login, as transient: stripping STARTTLS cannot kill the queue", () => {
    // What nodemailer reports when requireTLS is set and the server answers STARTTLS with 500.
    assert.equal(classifyFailure({ code: "ETLS", responseCode: 500, response: "500 Error: command not recognized" }).permanent, false);
    assert.equal(classifyFailure({ code: "ETLS", message: "Error initiating TLS - self-signed certificate" }).permanent, false);
    assert.equal(classifyFailure({ code: "EAUTH", responseCode: 535, response: "535 5.7.8 Authentication failed" }).permanent, false);
    assert.equal(classifyFailure({ code: "EENVELOPE", responseCode: 550, response: "550 5.1.1 no such user" }).permanent, true, "a refused recipient stays permanent");
  });

  it("keeps the error on one bounded line", () => {
    const { error } = classifyFailure({ responseCode: 450, response: `450 ${"x".repeat(2000)}\r\nInjected: header` });
    assert.ok(error.length <= 500 && !/[\r\n]/.test(error));
  });
});
