// Salted-digest templates: the parser for `sha256(salt+password):hex`, the stored form, and
// hostile template text (property-tested: no crash, no hang, only InvalidHashTemplateError).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import fc from "fast-check";
import { systemRandom } from "../../lib/random.ts";
import { createPasswordContext } from "./context.ts";
import { InvalidHashTemplateError, UnsupportedHashError } from "./errors.ts";
import { formatSaltedTemplate, parseSaltedTemplate, saltedFromTemplate } from "./salted.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });

describe("salted-digest templates", () => {
  test("parses the template forms an import declares", () => {
    assert.deepEqual(parseSaltedTemplate("sha256(salt+password):hex"), { algorithm: "sha256", layout: "salt+password", encoding: "hex" });
    assert.deepEqual(parseSaltedTemplate(" MD5( password + salt ) : base64 "), { algorithm: "md5", layout: "password+salt", encoding: "base64" });
    assert.deepEqual(parseSaltedTemplate("sha1(salt+password)"), { algorithm: "sha1", layout: "salt+password", encoding: "hex" });
    assert.equal(formatSaltedTemplate(parseSaltedTemplate("sha512(password+salt):base64")), "sha512(password+salt):base64");
  });

  test("refuses templates it does not understand, naming what is expected", () => {
    for (const bad of ["", "sha256", "sha256(salt+salt)", "md4(salt+password)", "sha256(password+password):hex", "sha256(salt+password):base32", "sha256(salt+password+salt)"]) {
      assert.throws(() => parseSaltedTemplate(bad), (e: unknown) => e instanceof InvalidHashTemplateError && /expected/.test(e.message), bad);
    }
  });

  test("stores SourceLair's sha256(salt + password) with a 32-character salt and verifies it", async () => {
    const salt = "0123456789abcdefghijklmnopqrstuv";
    const digest = createHash("sha256").update(salt + "hunter2").digest("hex").toUpperCase();
    const stored = saltedFromTemplate("sha256(salt+password):hex", salt, digest);
    assert.match(stored, /^\$salted-digest\$a=sha256,l=salt\+password,e=hex\$[A-Za-z0-9_-]+\$[0-9a-f]{64}$/);
    assert.equal(passwords.identify(stored), "salted-digest");
    assert.deepEqual(passwords.describe(stored), { scheme: "salted-digest", params: "sha256(salt+password):hex" });
    assert.equal(await passwords.verify("hunter2", stored), true);
    assert.equal(await passwords.verify("hunter3", stored), false);
  });

  test("keeps salts with $ and non-ASCII characters intact", async () => {
    const salt = "$ä€$";
    const digest = createHash("md5").update("pw" + salt).digest("base64");
    const stored = saltedFromTemplate({ algorithm: "md5", layout: "password+salt", encoding: "base64" }, salt, digest);
    assert.equal(await passwords.verify("pw", stored), true);
    assert.equal(await passwords.verify("pw", await passwords.wrapLegacyHash(stored)), true);
  });

  test("refuses a digest of the wrong size or encoding and an empty salt", () => {
    assert.throws(() => saltedFromTemplate("sha256(salt+password):hex", "salt", "abcd"), UnsupportedHashError);
    assert.throws(() => saltedFromTemplate("md5(salt+password):base64", "salt", "0".repeat(32)), UnsupportedHashError);
    assert.throws(() => saltedFromTemplate("md5(salt+password):hex", "", "0".repeat(32)), UnsupportedHashError);
  });

  test("hostile template text never crashes or hangs the parser", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 2000 }), fc.string({ unit: "binary", maxLength: 500 }), fc.stringMatching(/^[a-z0-9()+: ]{0,300}$/)), (text) => {
        try {
          const t = parseSaltedTemplate(text);
          assert.equal(parseSaltedTemplate(formatSaltedTemplate(t)).algorithm, t.algorithm);
        } catch (error) {
          assert.ok(error instanceof InvalidHashTemplateError);
        }
      }),
      { numRuns: 2000 },
    );
    const huge = "sha256(" + " ".repeat(100_000) + "salt+password)";
    // Read in one pass, the spaces skipped (its time against a short one's is measured in bench/linear-time.ts, never
    // asserted here).
    assert.deepEqual(parseSaltedTemplate(huge), { algorithm: "sha256", layout: "salt+password", encoding: "hex" });
  });
});
