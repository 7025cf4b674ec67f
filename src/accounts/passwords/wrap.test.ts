// Wrap-migration: fast legacy hashes become argon2id over their legacy result, self-describing,
// idempotent, verified through the clear legacy settings, and replaced at the next login.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import fc from "fast-check";
import { systemRandom } from "../../lib/random.ts";
import { parseArgon2 } from "./argon2.ts";
import { createPasswordContext } from "./context.ts";
import { DEFAULT_HASH_LIMITS } from "./limits.ts";
import { saltedFromTemplate } from "./salted.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });

// Vectors from vectors/*.json (independent implementations), all for the password "password".
const MD5_HEX = "5f4dcc3b5aa765d61d8327deb882cf99";
const MD5_CRYPT = "$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/";
const BCRYPT = "$2b$05$Wr1uKte7wWrAEQeLuLiudOCRQytXFLj4fHrPjeiA8QhkIo4d2kIFm";

describe("wrapLegacyHash", () => {
  test("writes the self-describing form: inner scheme, clear legacy settings, argon2id", async () => {
    // ASVS 11.4.2: after migration no stored value is a fast hash.
    const wrapped = await passwords.wrapLegacyHash(MD5_CRYPT);
    assert.match(wrapped, /^\$bulwark-wrap\$v=1\$md5-crypt\$\$1\$sO8MPH5T\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.ok(!wrapped.includes("1UaSqeVE6381x6LRWT5vL/"), "the legacy digest is gone from the stored value");
    const bare = await passwords.wrapLegacyHash(MD5_HEX);
    assert.match(bare, /^\$bulwark-wrap\$v=1\$md5\$\$argon2id\$/);
    assert.ok(!bare.includes(MD5_HEX));
    const phc = bare.slice(bare.indexOf("$argon2id$"));
    assert.equal(parseArgon2(phc, DEFAULT_HASH_LIMITS).saltBytes, 16);
  });

  test("a wrapped hash verifies the right password only", async () => {
    const wrapped = await passwords.wrapLegacyHash(MD5_CRYPT);
    assert.equal(await passwords.verify("password", wrapped), true);
    assert.equal(await passwords.verify("Password", wrapped), false);
    assert.equal(await passwords.verify("", wrapped), false);
  });

  test("is idempotent: a wrapped hash and a slow-scheme hash come back unchanged", async () => {
    const wrapped = await passwords.wrapLegacyHash(MD5_HEX);
    assert.equal(await passwords.wrapLegacyHash(wrapped), wrapped);
    assert.equal(await passwords.wrapLegacyHash(BCRYPT), BCRYPT);
    const modern = await passwords.hash("password");
    assert.equal(await passwords.wrapLegacyHash(modern), modern);
  });

  test("isWrappable is true for fast legacy schemes only", async () => {
    assert.equal(passwords.isWrappable(MD5_HEX), true);
    assert.equal(passwords.isWrappable(MD5_CRYPT), true);
    assert.equal(passwords.isWrappable(saltedFromTemplate("md5(password+salt)", "pepper", "0".repeat(32))), true);
    assert.equal(passwords.isWrappable(BCRYPT), false);
    assert.equal(passwords.isWrappable(await passwords.hash("x")), false);
    assert.equal(passwords.isWrappable(await passwords.wrapLegacyHash(MD5_HEX)), false);
    assert.equal(passwords.isWrappable("garbage"), false);
  });

  test("a wrapped hash needs rehash and becomes plain argon2id at the next login", async () => {
    const wrapped = await passwords.wrapLegacyHash(MD5_CRYPT);
    assert.equal(passwords.needsRehash(wrapped), true);
    const outcome = await passwords.verifyAndRehash("password", wrapped);
    assert.ok(outcome.status === "valid" && "newHash" in outcome);
    assert.equal(passwords.identify(outcome.newHash), "argon2id");
    assert.deepEqual(await passwords.verifyAndRehash("wrong", wrapped), { status: "invalid" });
  });

  test("describes a wrapped hash with its inner scheme and argon2id parameters", async () => {
    assert.deepEqual(passwords.describe(await passwords.wrapLegacyHash(MD5_HEX)), { scheme: "bulwark-wrapped", params: "inner=md5,m=64,t=1,p=1" });
    const sha = "$6$rounds=10000$abc$" + "x".repeat(86);
    assert.deepEqual(passwords.describe(await passwords.wrapLegacyHash(sha)), {
      scheme: "bulwark-wrapped",
      params: "inner=sha512-crypt(rounds=10000),m=64,t=1,p=1",
    });
  });

  test("a wrapped hash whose clear settings were tampered with no longer verifies", async () => {
    const wrapped = await passwords.wrapLegacyHash(MD5_CRYPT);
    const tampered = wrapped.replace("$1$sO8MPH5T$", "$1$sO8MPH5U$");
    assert.equal(passwords.identify(tampered), "bulwark-wrapped");
    assert.equal(await passwords.verify("password", tampered), false);
    const otherScheme = wrapped.replace("$v=1$md5-crypt$", "$v=1$sha256-crypt$").replace("$1$sO8MPH5T", "$5$sO8MPH5T");
    assert.equal(await passwords.verify("password", otherScheme), false);
  });

  test("refuses to wrap a hash it cannot verify", async () => {
    await assert.rejects(passwords.wrapLegacyHash("$6$rounds=1000000000$salt$" + "x".repeat(86)), { code: "BULWARK_ERR_HASH_UNSUPPORTED" });
  });

  test("for any password, wrapping md5(password) verifies that password and no other", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "grapheme", maxLength: 80 }), fc.string({ maxLength: 80 }), async (password, other) => {
        const wrapped = await passwords.wrapLegacyHash(createHash("md5").update(password, "utf8").digest("hex"));
        assert.equal(await passwords.verify(password, wrapped), true);
        assert.equal(await passwords.verify(other, wrapped), other === password);
      }),
      { numRuns: 40 },
    );
  });
});
