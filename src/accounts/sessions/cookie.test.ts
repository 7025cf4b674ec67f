// The session cookie and token format: attributes the browser enforces, and a Cookie parser that survives
// hostile headers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { systemRandom } from "../../lib/random.ts";
import { clearSessionCookie, parseCookieHeader, readSessionCookie, SESSION_COOKIE, sessionCookie } from "./cookie.ts";
import { generateSessionToken, hashSessionSecret, MAX_TOKEN_LENGTH, parseSessionToken, secretMatches } from "./token.ts";

describe("session cookie", () => {
  it("sets a __Host- cookie that is Secure, HttpOnly, SameSite=Lax, Path=/ and has no Domain", () => {
    // ASVS 3.3.1–3.3.4 (cookie attributes and the __Host- prefix; V3 is outside the selected TSV).
    const { token } = generateSessionToken(systemRandom);
    const header = sessionCookie(token);
    assert.equal(SESSION_COOKIE, "__Host-bulwark-session");
    const [pair, ...attrs] = header.split("; ");
    assert.equal(pair, `${SESSION_COOKIE}=${token}`);
    assert.deepEqual(attrs.sort(), ["HttpOnly", "Path=/", "SameSite=Lax", "Secure"]);
    assert.doesNotMatch(header, /domain=/i);
    assert.match(sessionCookie(token, { maxAgeSeconds: 3600 }), /; Max-Age=3600$/);
  });

  it("clears the cookie with the same attributes and an expiry in the past", () => {
    const header = clearSessionCookie();
    assert.match(header, /^__Host-bulwark-session=; /);
    for (const attr of ["Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=0"]) assert.ok(header.includes(attr), attr);
  });

  it("refuses to serialise a value that could inject a header or another cookie", () => {
    for (const bad of ["a;b", "a\r\nSet-Cookie: x=1", "", "a b", "a,b", "x".repeat(201)]) {
      assert.throws(() => sessionCookie(bad), { code: "BULWARK_ERR_COOKIE_VALUE" }, JSON.stringify(bad));
    }
    assert.throws(() => sessionCookie("abc", { maxAgeSeconds: -1 }), { code: "BULWARK_ERR_SESSION_POLICY" });
  });

  it("reads the session token out of a Cookie header full of other cookies and junk", () => {
    const { token } = generateSessionToken(systemRandom);
    const header = `theme=dark; ;junk; =novalue; ${SESSION_COOKIE}=${token} ; other="quoted"`;
    assert.equal(readSessionCookie(header), token);
    assert.deepEqual(parseCookieHeader(header).get("other"), ["quoted"]);
    assert.equal(parseCookieHeader(header).has(""), false);
    assert.equal(readSessionCookie(undefined), null);
    assert.equal(readSessionCookie(""), null);
    assert.equal(readSessionCookie("bulwark-session=abc"), null, "the name without its prefix is another cookie");
  });

  it("refuses two different session cookies as ambiguous (a planted cookie)", () => {
    const a = generateSessionToken(systemRandom).token;
    const b = generateSessionToken(systemRandom).token;
    assert.equal(readSessionCookie(`${SESSION_COOKIE}=${a}; ${SESSION_COOKIE}=${b}`), null);
    assert.equal(readSessionCookie(`${SESSION_COOKIE}=${a}; ${SESSION_COOKIE}=${a}`), a);
    assert.equal(readSessionCookie(`${SESSION_COOKIE}=<script>`), null);
  });

  it("parses any string, huge or binary, without throwing", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 2000 }), fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b).toString("latin1")), fc.string({ unit: fc.constantFrom(";", "=", " ", '"', "a", SESSION_COOKIE), maxLength: 500 })), (header) => {
        const cookies = parseCookieHeader(header);
        assert.ok(cookies.size <= 200);
        const token = readSessionCookie(header);
        assert.ok(token === null || /^[A-Za-z0-9._-]+$/.test(token));
      }),
      { numRuns: 200 },
    );
    const huge = `${"a=b; ".repeat(200_000)}${SESSION_COOKIE}=x`;
    assert.ok(parseCookieHeader(huge).size <= 200, "pair count is bounded");
  });
});

describe("session token", () => {
  it("has a 128-bit id and a 256-bit secret, and stores only the secret's SHA-256", () => {
    // ASVS 7.2.3: reference tokens from a CSPRNG with at least 128 bits of entropy.
    const t = generateSessionToken(systemRandom);
    assert.match(t.id, /^ses_[a-z2-7]{26}$/);
    assert.equal(Buffer.from(t.secret, "base64url").length, 32);
    assert.equal(t.token, `${t.id}.${t.secret}`);
    assert.equal(t.secretHash, hashSessionSecret(t.secret));
    assert.ok(!t.secretHash.includes(t.secret));
    assert.deepEqual(parseSessionToken(t.token), { id: t.id, secret: t.secret });
    assert.equal(secretMatches(t.secret, t.secretHash), true);
    assert.equal(secretMatches(t.secretHash, t.secretHash), false);
  });

  it("parses only the exact shape it issues", () => {
    const t = generateSessionToken(systemRandom);
    for (const bad of ["", t.id, `${t.id}.`, `.${t.secret}`, `${t.id}.${t.secret}x`, `${t.id}.${t.secret}.x`, `${t.id.toUpperCase()}.${t.secret}`, `${t.id}.${t.secretHash}`]) {
      assert.equal(parseSessionToken(bad), null, bad);
    }
    fc.assert(
      fc.property(fc.string({ maxLength: 3 * MAX_TOKEN_LENGTH }), (s) => {
        const parsed = parseSessionToken(s);
        assert.ok(parsed === null || `${parsed.id}.${parsed.secret}` === s);
      }),
    );
  });
});
