// parseMailConfig refuses at start-up, naming the variable, everything the outbox sender would refuse later: a
// server must never start listening and then find its mail configuration unusable (it stayed up half-dead).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkMailConfig } from "../notify/index.ts";
import { parseMailConfig, parseTrustProxy } from "./http-config.ts";

const URL_OK = "smtp://localhost:2525";

function configError(variable: string, more?: RegExp): (error: Error & { code?: string; kind?: string }) => boolean {
  return (error) => {
    assert.equal(error.code, "BULWARK_ERR_CONFIG");
    assert.equal(error.kind, "input");
    assert.match(error.message, new RegExp(`^${variable}\\b`));
    if (more) assert.match(error.message, more);
    return true;
  };
}

describe("parseMailConfig", () => {
  it("accepts a plain From address, and the result passes the sender's own check", () => {
    const config = parseMailConfig({ BULWARK_SMTP_URL: URL_OK, BULWARK_MAIL_FROM: "security@example.org" });
    assert.ok(config);
    assert.equal(config.from, "security@example.org");
    checkMailConfig(config);
  });

  for (const from of ["not an email", "security@", "Security <security@example.org>", "a@b@example.org", "security@exa mple.org"]) {
    it(`refuses BULWARK_MAIL_FROM=${JSON.stringify(from)}, naming the variable (exit 2)`, () => {
      assert.throws(() => parseMailConfig({ BULWARK_SMTP_URL: URL_OK, BULWARK_MAIL_FROM: from }), configError("BULWARK_MAIL_FROM", /security@example\.org/));
    });
  }

  it("shows a refused From address inertly: a line break in it is escaped, not printed", () => {
    assert.throws(() => parseMailConfig({ BULWARK_SMTP_URL: URL_OK, BULWARK_MAIL_FROM: "a@example.org\r\nBcc: eve@evil.test" }), (error: Error) => {
      assert.doesNotMatch(error.message, /[\r\n]/);
      return configError("BULWARK_MAIL_FROM")(error);
    });
  });

  it("refuses an SMTP port the sender would refuse (0), naming BULWARK_SMTP_URL", () => {
    assert.throws(() => parseMailConfig({ BULWARK_SMTP_URL: "smtp://localhost:0", BULWARK_MAIL_FROM: "security@example.org" }), configError("BULWARK_SMTP_URL", /port/));
  });
});

describe("parseTrustProxy (BULWARK_TRUST_PROXY)", () => {
  it("trusts no proxy by default, and the listed addresses and CIDR ranges when given", () => {
    assert.equal(parseTrustProxy(undefined), false);
    assert.equal(parseTrustProxy("  "), false);
    assert.deepEqual(parseTrustProxy("127.0.0.1, 10.0.0.0/8,::1,fd00::/8"), ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]);
  });

  for (const bad of ["true", "*", "all", "proxy.example.org", "10.0.0.0/33", "::1/129", "10.0.0.1/8/1", "fe80::1%eth0", "1"]) {
    it(`attack: refuses ${JSON.stringify(bad)} (trusting every hop lets a client choose its own address)`, () => {
      assert.throws(() => parseTrustProxy(bad), configError("BULWARK_TRUST_PROXY"));
    });
  }
});
