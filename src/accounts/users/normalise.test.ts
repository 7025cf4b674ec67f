// Account identifiers: an address that only looks like another, or that the store would rewrite into another,
// is refused before it can become a second account (found by an import review: `alice\u200b@example.org`
// created a new account beside alice@example.org, and an unpaired surrogate was stored as U+FFFD).
import assert from "node:assert/strict";
import { it } from "node:test";
import { validateEmail, validateUsername } from "./normalise.ts";

it("attack: look-alike addresses (zero-width, soft hyphen, bidi override, unpaired surrogate) are refused", () => {
  for (const bad of ["alice\u200b@example.org", "alice\u00ad@example.org", "\u202egro.elpmaxe@ecila", "alice@exa\u2060mple.org", "jos\udce9@example.org", "ali\ufeffce@example.org"]) {
    assert.throws(() => validateEmail(bad), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_EMAIL_INVALID" && /invisible or formatting characters/.test(e.message), JSON.stringify(bad));
  }
});

it("keeps the addresses people really have: accents, other scripts, a plus, a dot-less domain", () => {
  for (const good of ["josé@example.org", "用户@例子.广告", "ana+bulwark@example.org", "root@intranet", "  padded@example.org  "]) {
    assert.equal(validateEmail(good), good.trim());
  }
  assert.throws(() => validateUsername("ana\u200b"), /control or invisible/);
  assert.throws(() => validateUsername("ana\udce9"), /unpaired surrogate/);
});

it("attack: compatibility look-alikes (full-width, long s, ligatures, a full-width @) are refused for new identifiers, naming the plain spelling (ASVS 1.1.1)", () => {
  const refused = (fn: () => unknown, code: string, plain: string): void =>
    assert.throws(fn, (e: Error & { code?: string }) => e.code === code && e.message.includes(`"${plain}"`) && /compatibility form/.test(e.message), plain);
  refused(() => validateEmail("\uff53\uff41\uff4d@example.org"), "BULWARK_ERR_EMAIL_INVALID", "sam@example.org");
  refused(() => validateEmail("\u017fam@example.org"), "BULWARK_ERR_EMAIL_INVALID", "sam@example.org");
  refused(() => validateEmail("of\ufb01ce@example.org"), "BULWARK_ERR_EMAIL_INVALID", "office@example.org");
  refused(() => validateUsername("\uff41\uff4c\uff49\uff43\uff45"), "BULWARK_ERR_USERNAME_INVALID", "alice");
  assert.throws(() => validateEmail("\uff53am@example.org"), /U\+FF53/, "the offending character is named");
  // An @ that only NFKC reveals would make a username read as someone's address.
  for (const at of ["sam\uff20example.org", "sam\ufe6bexample.org"]) {
    assert.throws(() => validateUsername(at), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_USERNAME_INVALID" && /reads as @/.test(e.message), JSON.stringify(at));
  }
  // Canonical equivalents are not look-alikes: a decomposed é is the same name, kept as typed.
  assert.equal(validateEmail("jose\u0301@example.org"), "jose\u0301@example.org");
  assert.equal(validateUsername("Ana\u0301"), "Ana\u0301".normalize("NFC"));
});

it("attack: an address or a username that starts a part with a combining mark, or is made of marks around its @, is refused — the marks draw on whatever is shown before them, or as nothing (ASVS 1.1.1) (was: \"\\u0301\\u0301@example.org\" accepted, shown as \"@example.org\")", () => {
  for (const bad of ["\u0301\u0301@example.org", "\u0301alice@example.org", "alice@\u0308example.org", "alice@example.\u0327org", "\u20dd@\u20dd"]) {
    assert.throws(() => validateEmail(bad), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_EMAIL_INVALID" && /combining mark \(U\+[0-9A-F]{4}\)/.test(e.message), JSON.stringify(bad));
  }
  assert.throws(() => validateUsername("\u0301alice"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_USERNAME_INVALID" && /combining mark \(U\+0301\)/.test(e.message));
  // Marks after a letter are how many scripts write: kept, decomposed or not.
  for (const good of ["jose\u0301@example.org", "ne\u0301e@exa\u0301mple.org", "हिन्दी@example.org"]) assert.equal(validateEmail(good), good);
  assert.equal(validateUsername("Zoe\u0308"), "Zoe\u0308".normalize("NFC"));
});
