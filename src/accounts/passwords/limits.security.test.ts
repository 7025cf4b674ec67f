// Attacks through the stored hash: a hostile import carrying huge cost parameters, junk or
// oversized strings must be refused as unsupported, before any hashing, in milliseconds.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { systemRandom } from "../../lib/random.ts";
import { createPasswordContext } from "./context.ts";
import { UnsupportedHashError } from "./errors.ts";
import { SCHEME_IDS } from "./scheme.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
const B64_16 = "c2FsdHNhbHRzYWx0c2FsdA";
const B64_32 = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY";
const wrappedMd5 = "$bulwark-wrap$v=1$md5$$argon2id$v=19$m=64,t=1,p=1$" + B64_16 + "$" + B64_32;

// The hostile hashes the issue names, and their relatives for every cost parameter.
const HOSTILE: Record<string, string> = {
  "bcrypt cost 31": "$2b$31$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
  "bcrypt cost 16": "$2y$16$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
  "bcrypt $2x$ (sign-extension bug)": "$2x$10$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
  "bcrypt +4 cost spelling": "$2b$+4$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
  "Drupal 7 count 2^37": "$S$Z" + "abcdefgh" + "x".repeat(43),
  "Drupal 7 count 2^30": "$S$S" + "abcdefgh" + "x".repeat(43),
  "phpass count 2^30": "$P$S" + "abcdefgh" + "x".repeat(22),
  "U$ wrapped count 2^37": "U$S$Z" + "abcdefgh" + "x".repeat(43),
  "sha512-crypt 10^9 rounds": "$6$rounds=1000000000$saltsalt$" + "x".repeat(86),
  "sha256-crypt 10^9 rounds": "$5$rounds=1000000000$saltsalt$" + "x".repeat(43),
  "sha512-crypt absurd rounds": "$6$rounds=99999999999999999999999$saltsalt$" + "x".repeat(86),
  "sha512-crypt rounds below 1000": "$6$rounds=10$saltsalt$" + "x".repeat(86),
  "argon2id 64 GiB": `$argon2id$v=19$m=67108864,t=2,p=1$${B64_16}$${B64_32}`,
  "argon2id t=1000": `$argon2id$v=19$m=19456,t=1000,p=1$${B64_16}$${B64_32}`,
  "argon2id p=255": `$argon2id$v=19$m=19456,t=2,p=255$${B64_16}$${B64_32}`,
  "argon2id keyid field": `$argon2id$v=19$m=19456,t=2,p=1,keyid=AAAA$${B64_16}$${B64_32}`,
  "argon2d": `$argon2d$v=19$m=19456,t=2,p=1$${B64_16}$${B64_32}`,
  "argon2id 4-byte salt": `$argon2id$v=19$m=19456,t=2,p=1$AAAAAA$${B64_32}`,
  "scrypt N=2^30": `$scrypt$ln=30,r=8,p=1$${B64_16}$${B64_32}`,
  "scrypt 1 GiB (ln=20,r=8)": `$scrypt$ln=20,r=8,p=1$${B64_16}$${B64_32}`,
  "scrypt p=1000": `$scrypt$ln=10,r=8,p=1000$${B64_16}$${B64_32}`,
  "pbkdf2 10^9 iterations": "$pbkdf2-sha256$1000000000$c2FsdA$" + "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY".replaceAll("+", "."),
  "django pbkdf2 10^10 iterations": "pbkdf2_sha256$10000000000$salt$" + "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY=",
  "wrapped with 2^37 inner count": "$bulwark-wrap$v=1$drupal7$$S$Zabcdefgh$argon2id$v=19$m=64,t=1,p=1$" + B64_16 + "$" + B64_32,
  "wrapped with 64 GiB argon2": wrappedMd5.replace("m=64", "m=67108864"),
  "wrapped around a slow scheme": "$bulwark-wrap$v=1$bcrypt$$2b$10$abc$argon2id$v=19$m=64,t=1,p=1$" + B64_16 + "$" + B64_32,
  "wrapped twice": "$bulwark-wrap$v=1$bulwark-wrapped$" + wrappedMd5 + "$argon2id$v=19$m=64,t=1,p=1$" + B64_16 + "$" + B64_32,
  "garbage": "not a hash at all",
  "binary junk": "\u0000\u0001\u00ff\ufffd$2b$10$",
  "empty": "",
  "one megabyte": "$6$" + "a".repeat(1024 * 1024),
  "md5 hex with a trailing newline": "5f4dcc3b5aa765d61d8327deb882cf99\n",
  "md5 of the wrong length": "5f4dcc3b5aa765d61d8327deb882cf9",
  "ssha without a salt": "{SSHA}" + Buffer.alloc(20).toString("base64"),
};

describe("hostile stored hashes", () => {
  for (const [name, hash] of Object.entries(HOSTILE)) {
    test(`refuses ${name} as unsupported in under 100 ms, before any hashing`, async () => {
      const started = performance.now();
      assert.throws(() => passwords.identify(hash), UnsupportedHashError);
      await assert.rejects(passwords.verify("password", hash), UnsupportedHashError);
      await assert.rejects(passwords.verifyAndRehash("password", hash), UnsupportedHashError);
      assert.throws(() => passwords.needsRehash(hash), UnsupportedHashError);
      assert.throws(() => passwords.describe(hash), UnsupportedHashError);
      assert.equal(passwords.isWrappable(hash), false);
      await assert.rejects(passwords.wrapLegacyHash(hash), UnsupportedHashError);
      // The bound, asserted generously for all seven calls together (CI machines are slow).
      assert.ok(performance.now() - started < 100, `${name} took ${performance.now() - started} ms`);
    });
  }

  test("the refusal names the reason but never echoes the hash", () => {
    const error = (() => {
      try {
        passwords.identify(HOSTILE["bcrypt cost 31"]!);
      } catch (e) {
        return e as UnsupportedHashError;
      }
      throw new Error("not refused");
    })();
    assert.equal(error.code, "BULWARK_ERR_HASH_UNSUPPORTED");
    assert.equal(error.kind, "input");
    assert.match(error.message, /bcrypt cost 31 is above the limit of 15/);
    assert.ok(!error.message.includes("N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"));
  });

  test("random and prefixed junk never crashes, hangs, or escapes as anything but UnsupportedHashError", () => {
    const prefixes = ["", "$2b$", "$2y$1", "$S$", "U$S$", "$P$", "$1$", "$5$rounds=", "$6$", "$pbkdf2-sha256$", "pbkdf2_sha1$", "{SSHA}", "{SSHA512}",
      "$scrypt$ln=", "$argon2id$v=19$m=", "$argon2i$", "$salted-digest$a=md5,l=salt+password,e=hex$", "$bulwark-wrap$v=1$", "$bulwark-wrap$v=1$md5$"];
    const junk = fc.oneof(fc.string({ maxLength: 600 }), fc.string({ unit: "binary", maxLength: 300 }), fc.stringMatching(/^[./$0-9A-Za-z=,+-]{0,200}$/));
    fc.assert(
      fc.property(fc.constantFrom(...prefixes), junk, (prefix, rest) => {
        const hash = prefix + rest;
        try {
          const id = passwords.identify(hash);
          assert.ok(SCHEME_IDS.includes(id));
          passwords.describe(hash);
          passwords.needsRehash(hash);
        } catch (error) {
          assert.ok(error instanceof UnsupportedHashError, String(error));
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("a huge crafted wrapped string is parsed without catastrophic backtracking", () => {
    const crafted = "$bulwark-wrap$v=1$md5$" + "$argon2id$v=19$m=1,t=1,p=1$a".repeat(16);
    const started = performance.now();
    assert.throws(() => passwords.identify(crafted), UnsupportedHashError);
    assert.ok(performance.now() - started < 100);
  });
});
