// Request bodies are decoded as strict UTF-8 (ASVS 1.5.3, 6.2.8): bytes that are not UTF-8 — a Latin-1 form, a
// raw 0xE8 in JSON, an overlong or surrogate sequence — are refused with 400 naming the problem, never replaced
// by U+FFFD, which would make different byte strings one password (docs/password-hashes.md). Valid UTF-8 —
// accents, CJK, emoji, raw or percent-encoded — still reaches the login unchanged, in JSON and in forms.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseFormBody } from "../src/http/auth/form-body.ts";
import { HOST, ORIGIN } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const FORM = "application/x-www-form-urlencoded";
const post = (url: string, payload: Buffer | string, type: string) =>
  fx.server.inject({ method: "POST", url, headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": type }, payload });

describe("bodies that are not UTF-8", () => {
  it("attack: a password sent as Latin-1 (form %E8, JSON byte 0xE8) is refused with 400, never matched through U+FFFD", async () => {
    // What lossy decoding stored for "café" typed on a Latin-1 page: a U+FFFD in place of the byte.
    await fx.user("latin@example.org", { password: "copper meadow caf\uFFFD whistles" });
    const form = await post("/auth/login", "identifier=latin%40example.org&password=copper+meadow+caf%E8+whistles", FORM);
    assert.equal(form.statusCode, 400, `a different byte (è for é) must not sign in: ${form.body}`);
    assert.equal(form.json().error.code, "BULWARK_ERR_FORM");
    assert.match(form.json().error.message, /form field "password" is not valid UTF-8/);
    const json = await post("/auth/login", Buffer.concat([Buffer.from('{"identifier":"latin@example.org","password":"copper meadow caf'), Buffer.from([0xe8]), Buffer.from(' whistles"}')]), "application/json");
    assert.equal(json.statusCode, 400, json.body);
    assert.equal(json.json().error.code, "BULWARK_ERR_JSON");
    assert.match(json.json().error.message, /the JSON body is not valid UTF-8/);
    assert.doesNotMatch(form.body + json.body, /whistles/, "the answer never repeats the password");
  });

  it("attack: overlong and surrogate encodings, raw non-UTF-8 bytes and a non-UTF-8 field name are refused too", async () => {
    const bodies: Array<[Buffer | string, string]> = [
      ["identifier=a%40example.org&password=%C0%AFetc", "overlong /"],
      ["identifier=a%40example.org&password=%ED%A0%80lone", "UTF-8 of a lone surrogate"],
      [Buffer.concat([Buffer.from("identifier=a%40example.org&password=caf"), Buffer.from([0xe9])]), "a raw Latin-1 byte"],
      ["identifier=a%40example.org&password=x&na%FFme=1", "a field name"],
    ];
    for (const [payload, what] of bodies) {
      const res = await post("/auth/login", payload, FORM);
      assert.equal(res.statusCode, 400, `${what}: ${res.body}`);
      assert.match(res.json().error.message, /not valid UTF-8/, what);
    }
  });

  it("attack: a password reset sent from a Latin-1 form is refused, so no U+FFFD password is ever stored", async () => {
    const owner = await fx.user("reset-latin@example.org");
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: owner.email } });
    await fx.deliver();
    const token = /#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/.exec(fx.mailTo(owner.email).at(-1)?.body ?? "")?.[1] ?? "";
    assert.ok(token);
    const set = await post("/auth/password/reset/complete", `token=${encodeURIComponent(token)}&newPassword=m%F6tley+cr%FCe+quiet+harbour`, FORM);
    assert.equal(set.statusCode, 400, set.body);
    const other = await post("/auth/login", "identifier=reset-latin%40example.org&password=m%E4tley+cr%E9e+quiet+harbour", FORM);
    assert.equal(other.statusCode, 400);
    assert.equal((await fx.browser().login(owner.email, owner.password)).statusCode, 200, "the password was not changed");
  });
});

describe("valid UTF-8 still passes", () => {
  const password = "café naïve 東京の夜 🔑🌊 ñandú + 100%";

  it("accents, CJK and emoji sign in through JSON and through a percent-encoded form", async () => {
    const u = await fx.user("unicode@example.org", { password });
    assert.equal((await fx.browser().login(u.email, password)).statusCode, 200);
    const viaForm = await fx.browser().request("POST", "/auth/login", { form: true, body: { identifier: u.email, password } });
    assert.equal(viaForm.statusCode, 200, viaForm.body);
  });

  it("a form keeps URLSearchParams' reading: raw UTF-8 bytes, '+' as a space, %2B as '+', a stray '%' as itself", async () => {
    const u = await fx.user("form-rules@example.org", { password: "a+b c東京 50%zz off %" });
    const raw = Buffer.concat([Buffer.from("identifier=form-rules%40example.org&password=a%2Bb+c"), Buffer.from("東京", "utf8"), Buffer.from("+50%zz+off+%")]);
    const res = await post("/auth/login", raw, FORM);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((await post("/auth/login", "identifier=form-rules%40example.org&password=a+b+c%E6%9D%B1%E4%BA%AC+50%25zz+off+%25", FORM)).statusCode, 401, "'+' is a space, so this is another password");
    assert.equal(u.email, "form-rules@example.org");
  });
});

describe("parseFormBody", () => {
  it("reads whatever URLSearchParams writes, for any well-formed text (property)", () => {
    const text = fc.string({ unit: "grapheme", maxLength: 20 }).filter((t) => t.isWellFormed());
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(text, text), { selector: ([k]) => k, maxLength: 8 }), (pairs) => {
        const body = Buffer.from(new URLSearchParams(pairs).toString(), "utf8");
        assert.deepEqual(parseFormBody(body), Object.fromEntries(pairs));
      }),
    );
  });
});
