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
