// Attacks on CSRF protection that must fail: a token from another session, a token for another action,
// forged or junk tokens, and cross-site unsafe requests judged by Origin / Sec-Fetch-Site.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { generateSessionToken } from "../sessions/token.ts";
import { systemRandom } from "../../lib/random.ts";
import { API_ACTION, csrfToken, verifyCSRF } from "./csrf-token.ts";
import { crossSiteVerdict, type CrossSiteRequest } from "./origin-policy.ts";

// ASVS 3.5.1 (ASVS 5.0 V3.5, browser origin separation; V3 is outside the selected TSV): cross-origin
// requests to sensitive functionality are validated with anti-forgery tokens and Origin/Sec-Fetch-* headers.

const mine = generateSessionToken(systemRandom).secret;
const theirs = generateSessionToken(systemRandom).secret;

describe("CSRF synchronizer tokens", () => {
  it("accepts a token for the same session and action, and each issue looks different", () => {
    const a = csrfToken(mine, "password.change");
    const b = csrfToken(mine, "password.change");
    assert.notEqual(a, b, "a fresh nonce per token: no fixed secret for BREACH to recover");
    assert.equal(verifyCSRF(mine, "password.change", a), true);
    assert.equal(verifyCSRF(mine, "password.change", b), true);
    assert.equal(verifyCSRF(mine, API_ACTION, csrfToken(mine, API_ACTION)), true);
  });

  it("refuses a token issued to another session", () => {
    // The attacker has a session of their own and gets a valid token for it.
    const attackers = csrfToken(theirs, "password.change");
    assert.equal(verifyCSRF(mine, "password.change", attackers), false);
    assert.equal(verifyCSRF(mine, API_ACTION, csrfToken(theirs, API_ACTION)), false);
  });

  it("refuses a token issued for another action", () => {
    const forLogout = csrfToken(mine, "logout");
    assert.equal(verifyCSRF(mine, "account.delete", forLogout), false);
    assert.equal(verifyCSRF(mine, API_ACTION, forLogout), false);
    assert.equal(verifyCSRF(mine, "logout ", forLogout), false);
  });

  it("refuses a tampered, truncated, missing or junk token without throwing", () => {
    const good = csrfToken(mine, "form");
    const flipped = good.slice(0, 40) + (good[40] === "A" ? "B" : "A") + good.slice(41);
    for (const bad of [flipped, good.slice(0, 63), `${good}A`, "", null, undefined, 42, ["x"], { token: good }, good.toUpperCase(), `${good.slice(0, 63)}=`]) {
      assert.equal(verifyCSRF(mine, "form", bad), false, JSON.stringify(bad));
    }
    // The MAC alone, or a session secret's hash, is not a token either.
    assert.equal(verifyCSRF(mine, "form", Buffer.alloc(48).toString("base64url")), false);
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.base64String({ minLength: 64, maxLength: 64 }), fc.uint8Array({ minLength: 48, maxLength: 48 }).map((b) => Buffer.from(b).toString("base64url"))), (junk) => {
        assert.equal(verifyCSRF(mine, "form", junk), false);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses to issue or check a token without a session secret or with a bad action id", () => {
    assert.throws(() => csrfToken("", "form"), { code: "BULWARK_ERR_CSRF_SECRET" });
    assert.throws(() => verifyCSRF("", "form", "x"), { code: "BULWARK_ERR_CSRF_SECRET" });
    assert.throws(() => csrfToken(mine, ""), { code: "BULWARK_ERR_CSRF_ACTION" });
    assert.throws(() => csrfToken(mine, "a".repeat(201)), { code: "BULWARK_ERR_CSRF_ACTION" });
  });
});

describe("cross-site request verdicts", () => {
  const base: CrossSiteRequest = { method: "POST", host: "bulwark.example.org" };

  it("allows safe methods whatever their origin", () => {
    for (const method of ["GET", "HEAD", "OPTIONS"]) {
      assert.deepEqual(crossSiteVerdict({ ...base, method, secFetchSite: "cross-site", origin: "https://evil.example" }), { allow: true, reason: "safe-method" });
    }
  });

  it("refuses a cross-site POST, PUT, PATCH and DELETE", () => {
    for (const method of ["POST", "PUT", "PATCH", "DELETE", "post", "PROPFIND"]) {
      const verdict = crossSiteVerdict({ ...base, method, secFetchSite: "cross-site", origin: "https://evil.example" });
      assert.deepEqual(verdict, { allow: false, reason: "cross-site" }, method);
    }
  });

  it("refuses a cross-site POST from an old browser that sends only Origin", () => {
    assert.deepEqual(crossSiteVerdict({ ...base, origin: "https://evil.example" }), { allow: false, reason: "origin-mismatch" });
    assert.deepEqual(crossSiteVerdict({ ...base, origin: "https://bulwark.example.org.evil.example" }), { allow: false, reason: "origin-mismatch" });
    assert.deepEqual(crossSiteVerdict({ ...base, origin: "http://bulwark.example.org" }), { allow: false, reason: "origin-mismatch" }, "plain HTTP is another origin");
    assert.deepEqual(crossSiteVerdict({ ...base, origin: "https://bulwark.example.org:8443" }), { allow: false, reason: "origin-mismatch" }, "another port is another origin");
  });

  it("refuses a POST from a sibling subdomain (same-site is not same-origin)", () => {
    const verdict = crossSiteVerdict({ ...base, secFetchSite: "same-site", origin: "https://blog.example.org" });
    assert.deepEqual(verdict, { allow: false, reason: "same-site-other-origin" });
  });

  it("refuses an opaque 'null' origin from a sandboxed frame", () => {
    assert.deepEqual(crossSiteVerdict({ ...base, origin: "null" }), { allow: false, reason: "opaque-origin" });
    assert.deepEqual(crossSiteVerdict({ ...base, origin: "not a url" }), { allow: false, reason: "opaque-origin" });
  });

  it("fails closed when a cookie-authenticated unsafe request carries neither header", () => {
    assert.deepEqual(crossSiteVerdict(base), { allow: false, reason: "no-origin-headers" });
    assert.deepEqual(crossSiteVerdict({ ...base, origin: "", secFetchSite: "  " }), { allow: false, reason: "no-origin-headers" });
    assert.deepEqual(crossSiteVerdict({ ...base, cookieAuthenticated: false }), { allow: true, reason: "no-cookie" }, "an API-token client has nothing ambient to ride on");
    assert.deepEqual(crossSiteVerdict({ ...base, cookieAuthenticated: false, secFetchSite: "cross-site" }), { allow: false, reason: "cross-site" });
  });

  it("refuses an unknown Sec-Fetch-Site value and a same-origin claim contradicted by Origin", () => {
    assert.deepEqual(crossSiteVerdict({ ...base, secFetchSite: "sameorigin" }), { allow: false, reason: "unknown-fetch-site" });
    assert.deepEqual(crossSiteVerdict({ ...base, secFetchSite: "same-origin", origin: "https://evil.example" }), { allow: false, reason: "origin-mismatch" });
  });

  it("allows same-origin requests, user-initiated navigations and configured origins", () => {
    assert.deepEqual(crossSiteVerdict({ ...base, secFetchSite: "same-origin", origin: "https://bulwark.example.org" }), { allow: true, reason: "same-origin" });
    assert.deepEqual(crossSiteVerdict({ ...base, secFetchSite: "same-origin" }), { allow: true, reason: "same-origin" });
    assert.deepEqual(crossSiteVerdict({ ...base, origin: "https://Bulwark.Example.org" }), { allow: true, reason: "same-origin" });
    assert.deepEqual(crossSiteVerdict({ ...base, secFetchSite: "none" }), { allow: true, reason: "user-initiated" });
    assert.deepEqual(crossSiteVerdict({ ...base, host: "localhost:3000", scheme: "http", origin: "http://localhost:3000" }), { allow: true, reason: "same-origin" });
    const console = { ...base, allowedOrigins: ["https://console.example.org"] };
    assert.deepEqual(crossSiteVerdict({ ...console, secFetchSite: "same-site", origin: "https://console.example.org" }), { allow: true, reason: "allowed-origin" });
    assert.deepEqual(crossSiteVerdict({ ...console, secFetchSite: "cross-site", origin: "https://console.example.org" }), { allow: true, reason: "allowed-origin" });
  });

  it("never throws on hostile header values", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 5 }), fc.option(fc.string({ maxLength: 300 })), fc.option(fc.string({ maxLength: 40 })), fc.option(fc.string({ maxLength: 100 })), (method, origin, secFetchSite, host) => {
        const verdict = crossSiteVerdict({ method, origin, secFetchSite, host });
        assert.equal(typeof verdict.allow, "boolean");
        if (!["GET", "HEAD", "OPTIONS"].includes(method) && verdict.allow) assert.ok(["same-origin", "user-initiated"].includes(verdict.reason));
      }),
      { numRuns: 500 },
    );
  });
});

describe("cross-site verdicts with a hostile Host header", () => {
  it("does not let a Host header with URL syntax make a foreign origin look like ours", () => {
    assert.deepEqual(crossSiteVerdict({ method: "POST", host: "x@evil.example", origin: "https://evil.example" }), { allow: false, reason: "origin-mismatch" });
    assert.deepEqual(crossSiteVerdict({ method: "POST", host: "evil.example/", origin: "https://evil.example" }), { allow: false, reason: "origin-mismatch" });
    assert.deepEqual(crossSiteVerdict({ method: "POST", host: "[::1]:8443", origin: "https://[::1]:8443" }), { allow: true, reason: "same-origin" });
  });
});
