// parseMailConfig refuses at start-up, naming the variable, everything the outbox sender would refuse later: a
// server must never start listening and then find its mail configuration unusable (it stayed up half-dead).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import proxyAddr from "@fastify/proxy-addr";
import fc from "fast-check";
import { checkMailConfig } from "../notify/index.ts";
import { loadHTTPAuthConfig, parseMailConfig, parseTrustProxy } from "./http-config.ts";

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

describe("parseTrustProxy: ranges that hold every client", () => {
  // Each of these, like "*", believes X-Forwarded-For from (nearly) anyone on the Internet.
  const everyone = [
    "0.0.0.0/0", "::/0", "10.0.0.0/00",
    "0.0.0.0/1,128.0.0.0/1", "::/1,8000::/1", "0.0.0.0/1,128.0.0.0/1,::/1,8000::/1",
    "0.0.0.0/7", "8.0.0.0/4", // wider than any private block
    "2000::/3", "2000::/15", // IPv6 wider than /16, outside the non-routable blocks
    "::ffff:0.0.0.0/96", "::ffff:0:0/97", "::ffff:10.0.0.0/100", // IPv4-mapped: every IPv4 client on a dual-stack socket
    "fc00::/6", // contains the private block, and more
  ];
  for (const value of everyone) {
    it(`attack: refuses ${JSON.stringify(value)} as it refuses "*"`, () => {
      assert.throws(() => parseTrustProxy(value), configError("BULWARK_TRUST_PROXY", /from anyone/));
    });
  }

  it("attack: refuses narrow ranges that together cover the whole IPv4 space (all 256 /8 blocks)", () => {
    const all = Array.from({ length: 256 }, (_, i) => `${i}.0.0.0/8`).join(",");
    assert.throws(() => parseTrustProxy(all), configError("BULWARK_TRUST_PROXY", /from anyone/));
    // …in any order, and with the blocks split further.
    const split = [...Array.from({ length: 255 }, (_, i) => `${255 - i}.0.0.0/8`), "0.0.0.0/9", "0.128.0.0/9"].join(",");
    assert.throws(() => parseTrustProxy(split), configError("BULWARK_TRUST_PROXY", /from anyone/));
  });

  it("accepts the private and non-routable blocks and a CDN's published ranges", () => {
    const fine = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "fc00::/7", "fd00::/8", "fe80::/10", "2606:4700::/32", "2a06:98c0::/29", "::ffff:10.0.0.0/104", "::1", "203.0.113.7"];
    assert.deepEqual(parseTrustProxy(fine.join(",")), fine);
    // 255 of the 256 /8 blocks do not cover everything: refused only by the whole-space rule would be wrong here.
    const most = Array.from({ length: 255 }, (_, i) => `${i}.0.0.0/8`);
    assert.deepEqual(parseTrustProxy(most.join(",")), most);
  });

  it("never accepts a value the proxy library then refuses at start-up (it used to crash the server with a raw TypeError)", () => {
    const address = fc.constantFrom("0.0.0.0", "10.0.0.0", "10.1.2.3", "255.255.255.255", "::", "::1", "fd00::", "::ffff:10.0.0.0", "::ffff:0:0", "2001:db8::", "1:2:3:4:5:6:7:8");
    const bits = fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 140 }).map(String), fc.constantFrom("08", "000", "32", "128", "", "x", "-1"));
    const entry = fc.tuple(address, bits).map(([a, b]) => (b === undefined ? a : `${a}/${b}`));
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 4 }), (entries) => {
        let accepted: false | string[];
        try {
          accepted = parseTrustProxy(entries.join(","));
        } catch (error) {
          assert.equal((error as { code?: string }).code, "BULWARK_ERR_CONFIG");
          return;
        }
        assert.ok(accepted);
        proxyAddr.compile(accepted); // what Fastify does with it when the server is built
      }),
      { numRuns: 2000 },
    );
  });
});

describe("BULWARK_PUBLIC_URL and BULWARK_TRUSTED_ORIGINS: https, except on this machine", () => {
  const load = (env: NodeJS.ProcessEnv) => loadHTTPAuthConfig(env, 3000);

  for (const url of ["http://accounts.example.org", "http://10.0.0.5:8080", "http://[2001:db8::1]", "http://localhost.example.org", "http://127.0.0.1.nip.io", "http://0.0.0.0:3000", "http://[::ffff:127.0.0.1]"]) {
    it(`attack: refuses BULWARK_PUBLIC_URL=${url} (reset links over plain HTTP, no HSTS)`, () => {
      assert.throws(() => load({ BULWARK_PUBLIC_URL: url }), configError("BULWARK_PUBLIC_URL", /https:\/\//));
      assert.throws(() => load({ BULWARK_PUBLIC_URL: url }), (error: Error) => error.message.includes(url.replace(/\/$/, "")));
    });
  }

  it("attack: refuses an http:// trusted origin on another host, naming BULWARK_TRUSTED_ORIGINS", () => {
    assert.throws(() => load({ BULWARK_PUBLIC_URL: "https://accounts.example.org", BULWARK_TRUSTED_ORIGINS: "https://console.example.org,http://console.example.org" }), configError("BULWARK_TRUSTED_ORIGINS", /http:\/\/console\.example\.org/));
  });

  it("allows http:// on loopback (localhost, 127.0.0.0/8, [::1]) and https:// anywhere", () => {
    for (const url of ["http://localhost:3000", "http://LOCALHOST", "http://127.0.0.1:8080", "http://127.1.2.3", "http://[::1]:8080", "https://accounts.example.org", "https://10.0.0.5:8443"]) {
      assert.equal(load({ BULWARK_PUBLIC_URL: url }).publicURL, new URL(url).origin);
    }
    assert.equal(load({}).publicURL, "http://localhost:3000", "the default is loopback");
    assert.deepEqual(load({ BULWARK_TRUSTED_ORIGINS: "http://127.0.0.1:5173, https://console.example.org" }).trustedOrigins, ["http://127.0.0.1:5173", "https://console.example.org"]);
  });

  it("accepts a host in one script, written in it or in punycode, combining marks included; an IP address written another way is the same address", () => {
    for (const [url, origin] of [
      ["https://bücher.example/", "https://xn--bcher-kva.example"], ["https://xn--bcher-kva.example", "https://xn--bcher-kva.example"],
      ["https://пример.рф", "https://xn--e1afmkfd.xn--p1ai"], ["https://हिन्दी.example", "https://xn--j2bd4cyah0f.example"],
      ["http://127.1:3000", "http://127.0.0.1:3000"], ["http://[0:0::1]:3000", "http://[::1]:3000"],
    ]) {
      assert.equal(load({ BULWARK_PUBLIC_URL: url! }).publicURL, origin, url);
    }
  });

  it("attack: refuses a host the parser would read otherwise than written (a percent-encoded dot, an empty userinfo, a mixed-script label in punycode), and a trusted origin alike", () => {
    for (const url of ["https://bulwark%2eexample.org", "https://@bulwark.example.org", "https://xn--ccounts-1fg.example.org", "https://bulwark.example\uFF0Eorg"]) {
      assert.throws(() => load({ BULWARK_PUBLIC_URL: url }), configError("BULWARK_PUBLIC_URL"), url);
    }
    assert.throws(() => load({ BULWARK_TRUSTED_ORIGINS: "https://console.example.org\u200b" }), configError("BULWARK_TRUSTED_ORIGINS", /U\+200B/));
  });

  it("accepts a ZWNJ or ZWJ the parser keeps in a label (RFC 5892 CONTEXTJ: Persian, after a virama); refuses one it refuses or one outside the host, naming it", () => {
    assert.equal(load({ BULWARK_PUBLIC_URL: "https://\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645.example" }).publicURL, "https://xn--mgbn2ecje63gr19l.example");
    assert.equal(load({ BULWARK_PUBLIC_URL: "https://\u0915\u094D\u200D\u0937.example" }).publicURL, "https://xn--11b2ezcw70k.example");
    for (const [url, at] of [
      ["https://exa\u200Cmple.org", 12], ["https://\u200Cexample.org", 9], ["https://example.org\u200D", 20], ["https://\u0915\u200D\u0937.example", 10],
      ["https://\u0915\u094D\u200D\u0937.example:44\u200D3", 24], ["https://us\u200Der@\u0915.example", 11], ["https://\u0915.example/\u200D", 19],
    ] as const) {
      assert.throws(() => load({ BULWARK_PUBLIC_URL: url }), configError("BULWARK_PUBLIC_URL", new RegExp(`joiner U\\+200[CD] at position ${at} `)), url);
    }
    // Another invisible character beside a kept joiner is still refused: U+200B, and U+00AD, which the parser drops.
    assert.throws(() => load({ BULWARK_PUBLIC_URL: "https://\u0915\u094D\u200D\u0937\u200B.example" }), configError("BULWARK_PUBLIC_URL", /U\+200B/));
    assert.throws(() => load({ BULWARK_PUBLIC_URL: "https://\u0915\u094D\u200D\u0937\u00AD.example" }), configError("BULWARK_PUBLIC_URL", /U\+00AD/));
  });
});

describe("BULWARK_PASSWORD_CHECKS_IN_FLIGHT", () => {
  const load = (env: NodeJS.ProcessEnv) => loadHTTPAuthConfig(env, 3000);

  it("defaults to 8 per thread of the hashing pool (UV_THREADPOOL_SIZE, 4 when unset or unusable), and takes a whole number from 1 to 100000", () => {
    assert.equal(load({}).passwordChecksInFlight, 32);
    assert.equal(load({ UV_THREADPOOL_SIZE: "16" }).passwordChecksInFlight, 128);
    assert.equal(load({ UV_THREADPOOL_SIZE: "many" }).passwordChecksInFlight, 32);
    assert.equal(load({ UV_THREADPOOL_SIZE: "16", BULWARK_PASSWORD_CHECKS_IN_FLIGHT: " 6 " }).passwordChecksInFlight, 6);
  });

  for (const bad of ["0", "-1", "1.5", "unbounded", "100001"]) {
    it(`refuses BULWARK_PASSWORD_CHECKS_IN_FLIGHT=${bad}, naming it and the range`, () => {
      assert.throws(() => load({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: bad }), configError("BULWARK_PASSWORD_CHECKS_IN_FLIGHT", /whole number from 1 to 100000/));
    });
  }
});

describe("BULWARK_MAIL_REQUESTS_PER_HOUR", () => {
  const load = (env: NodeJS.ProcessEnv) => loadHTTPAuthConfig(env, 3000);

  it("defaults to 20 per client address and hour, and takes a whole number from 1 to 100000", () => {
    assert.equal(load({}).mailRequestsPerHour, 20);
    assert.equal(load({ BULWARK_MAIL_REQUESTS_PER_HOUR: " 5 " }).mailRequestsPerHour, 5);
  });

  for (const bad of ["0", "-3", "2.5", "lots", "100001"]) {
    it(`refuses BULWARK_MAIL_REQUESTS_PER_HOUR=${bad}, naming it and the range`, () => {
      assert.throws(() => load({ BULWARK_MAIL_REQUESTS_PER_HOUR: bad }), configError("BULWARK_MAIL_REQUESTS_PER_HOUR", /whole number from 1 to 100000/));
    });
  }
});

describe("whole-number variables", () => {
  it("refuses hex, binary, exponent and decimal-point forms Number() would take, naming the variable; plain digits (and spaces around them) pass", async () => {
    const { loadConfig } = await import("./config.ts");
    for (const raw of ["0x48", "1e2", "0b11", "12.0", "+12", "0o17", "Infinity", "1 2"]) {
      assert.throws(() => loadHTTPAuthConfig({ BULWARK_SESSION_IDLE_MINUTES: raw }, 8080), { code: "BULWARK_ERR_CONFIG", message: /BULWARK_SESSION_IDLE_MINUTES must be a whole number/ }, raw);
      assert.throws(() => loadConfig({ BULWARK_PASSWORD_MIN_LENGTH: raw, BULWARK_DATA_DIR: "/nonexistent-bulwark" }), { code: "BULWARK_ERR_CONFIG", message: /BULWARK_PASSWORD_MIN_LENGTH must be an integer/ }, raw);
    }
    assert.equal(loadHTTPAuthConfig({ BULWARK_SESSION_IDLE_MINUTES: " 45 " }, 8080).session.idleTimeoutMs, 45 * 60_000);
    assert.equal(loadConfig({ BULWARK_PASSWORD_MIN_LENGTH: "20", BULWARK_DATA_DIR: "/nonexistent-bulwark" }).passwordMinLength, 20);
  });
});
