// The policy object: default argon2id hashing, verify-and-rehash towards the default, minimum
// parameters, dummy verify, census descriptions, and passwords taken exactly as received.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { hash as bcryptHash } from "@node-rs/bcrypt";
import { systemRandom } from "../../lib/random.ts";
import { parseArgon2 } from "./argon2.ts";
import { createPasswordContext, DEFAULT_ARGON2_PARAMS } from "./context.ts";
import { InvalidPasswordPolicyError, PasswordNotTextError, PasswordTooLongError } from "./errors.ts";
import { DEFAULT_HASH_LIMITS } from "./limits.ts";

// Cheap parameters: these tests are about the policy, not argon2's cost.
const cheap = { memoryCost: 64, timeCost: 1, parallelism: 1 };
const passwords = createPasswordContext({ random: systemRandom, argon2: cheap });

// From vectors/passlib.json and vectors/tools.json (independent implementations).
const MD5_CRYPT = "$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/"; // "password"
const MD5_HEX = "5f4dcc3b5aa765d61d8327deb882cf99"; // "password" (md5sum)

describe("createPasswordContext", () => {
  test("defaults to OWASP's argon2id profile m=19456 KiB, t=2, p=1", () => {
    // ASVS 11.4.2: passwords stored with a computationally intensive KDF, parameters per current guidance.
    const ctx = createPasswordContext({ random: systemRandom });
    assert.deepEqual({ ...ctx.params }, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
    assert.deepEqual({ ...DEFAULT_ARGON2_PARAMS }, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
    assert.equal(ctx.defaultScheme, "argon2id");
  });

  test("hashes new passwords as argon2id PHC strings with the configured parameters and a fresh salt", async () => {
    const a = await passwords.hash("correct horse battery staple");
    const b = await passwords.hash("correct horse battery staple");
    assert.match(a, /^\$argon2id\$v=19\$m=64,t=1,p=1\$/);
    assert.notEqual(a, b);
    const parsed = parseArgon2(a, DEFAULT_HASH_LIMITS);
    assert.equal(parsed.saltBytes, 16);
    assert.equal(parsed.hashBytes, 32);
    assert.equal(passwords.identify(a), "argon2id");
    assert.equal(await passwords.verify("correct horse battery staple", a), true);
    assert.equal(await passwords.verify("correct horse battery stapl", a), false);
  });

  test("takes the salt from the injected random source", async () => {
    const fixed = createPasswordContext({ random: { bytes: (n) => new Uint8Array(n).fill(7) }, argon2: cheap });
    assert.equal(await fixed.hash("x"), await fixed.hash("x"));
  });

  test("verifies passwords exactly as received: no truncation, case folding or normalisation", async () => {
    // ASVS 6.2.8, 6.2.9: long passwords count in full; case, whitespace and Unicode form matter.
    const long = "a".repeat(100) + "Z";
    const stored = await passwords.hash(long);
    assert.equal(await passwords.verify(long, stored), true);
    assert.equal(await passwords.verify("a".repeat(100) + "z", stored), false);
    assert.equal(await passwords.verify("a".repeat(72), stored), false);
    const nfc = "caf\u00e9 ";
    const storedNfc = await passwords.hash(nfc);
    assert.equal(await passwords.verify("caf\u0065\u0301 ", storedNfc), false);
    assert.equal(await passwords.verify("caf\u00e9", storedNfc), false);
    assert.equal(await passwords.verify("CAF\u00c9 ", storedNfc), false);
  });

  test("refuses to hash, and never matches, a password above maxPasswordBytes", async () => {
    const max = DEFAULT_HASH_LIMITS.maxPasswordBytes;
    // Counted in UTF-8 bytes, not characters: 1366 × "€" (3 bytes each) is 4098 bytes.
    for (const long of ["a".repeat(max + 1), "€".repeat(Math.ceil((max + 1) / 3))]) {
      await assert.rejects(passwords.hash(long), PasswordTooLongError);
    }
    const full = "a".repeat(max);
    const stored = await passwords.hash(full);
    assert.equal(await passwords.verify(full, stored), true, "4096 bytes are accepted in full");
    assert.equal(await passwords.verify(`${full}a`, stored), false, "one byte more never matches (and is not truncated to match)");
    assert.equal(await passwords.verify(full.slice(1), stored), false);
    // Not text at all (an unpaired surrogate) is refused to hash too, and matches nothing.
    await assert.rejects(passwords.hash("pass\uD800word"), PasswordNotTextError);
    assert.equal(await passwords.verify("pass\uD800word", stored), false);
  });

  test("attack: a string with unpaired surrogates is never hashed and never matches what UTF-8 would make of it (ASVS 6.2.8)", async () => {
    // Encoding would turn each lone surrogate into U+FFFD: twenty of them are a legitimate password of their own.
    const replaced = "\uFFFD".repeat(20);
    const stored = await passwords.hash(replaced);
    await assert.rejects(passwords.hash("\uD800".repeat(20)), PasswordNotTextError);
    assert.equal(await passwords.verify("\uD800".repeat(20), stored), false);
    assert.equal(await passwords.verify("\uDC00".repeat(20), stored), false);
    assert.equal(await passwords.verify(replaced, stored), true, "the real U+FFFD password still matches");
  });

  test("attack: a password holding NUL is never hashed and never matches what HMAC or bcrypt would make of it (ASVS 6.2.8)", async () => {
    // HMAC zero-pads short keys (PBKDF2 and scrypt saw "password\0" as "password"); bcrypt stops at the NUL.
    await assert.rejects(passwords.hash("\0"), PasswordNotTextError);
    await assert.rejects(passwords.hash("password\0"), PasswordNotTextError);
    const bcrypt = await bcryptHash("password", { cost: 4 });
    assert.equal(await passwords.verify("password", bcrypt), true);
    assert.equal(await passwords.verify("password\0tail", bcrypt), false, "bcrypt would have read only up to the NUL");
    const argon = await passwords.hash("password");
    assert.equal(await passwords.verify("password\0", argon), false);
  });

  test("bcrypt caveat: the legacy format reads 72 bytes, so a password of 72 bytes or more matches on its prefix and is never stored", async () => {
    // ASVS 6.2.8's one exception (docs/asvs.md, docs/password-hashes.md): bcrypt's own behaviour decides the login.
    const stored = await bcryptHash("A".repeat(72), { cost: 4 });
    const typed = "A".repeat(72) + "a different tail";
    assert.equal(await passwords.verify(typed, stored), true);
    // Attack: a stranger's password sharing the owner's first 72 bytes must not become the account's password. bcrypt
    // never read the tail, so the typed password is not known to be the owner's: valid, but no new hash.
    assert.deepEqual(await passwords.verifyAndRehash(typed, stored), { status: "valid" });
    // Exactly 72 bytes is no proof either: the cut drops bcrypt's closing NUL, so "A"×72 is keyed like the longer
    // password above (verified by it), and could be the prefix of the owner's: valid, but no new hash.
    assert.deepEqual(await passwords.verifyAndRehash("A".repeat(72), stored), { status: "valid" });
    const longOwner = await bcryptHash(typed, { cost: 4 });
    assert.equal(await passwords.verify("A".repeat(72), longOwner), true, "the 72-byte prefix matches the longer password's hash");
    assert.deepEqual(await passwords.verifyAndRehash("A".repeat(72), longOwner), { status: "valid" }, "and never replaces it");
    // 71 bytes were all read, with the NUL after them: upgraded as usual.
    const short = await bcryptHash("A".repeat(71), { cost: 4 });
    assert.equal(await passwords.verify("A".repeat(72), short), false);
    const exact = await passwords.verifyAndRehash("A".repeat(71), short);
    assert.ok(exact.status === "valid" && "newHash" in exact, "71 bytes were all read: upgraded as usual");
    assert.equal(passwords.identify(exact.newHash), "argon2id");
    assert.equal(await passwords.verify("A".repeat(71), exact.newHash), true);
    assert.equal(await passwords.verify("A".repeat(72), exact.newHash), false, "argon2id does not truncate");
    // The cut can fall inside a character: "é" and "è" share their first UTF-8 byte (C3); 73 bytes, so no upgrade.
    const midCharacter = await bcryptHash("A".repeat(71) + "\u00e9", { cost: 4 });
    assert.equal(await passwords.verify("A".repeat(71) + "\u00e8", midCharacter), true);
    assert.deepEqual(await passwords.verifyAndRehash("A".repeat(71) + "\u00e8", midCharacter), { status: "valid" });
  });

  test("cheaperThanDefault: only an argon2 run at the default's parameters or above costs what a dummy verify does (ASVS 6.3.8)", async () => {
    // The login tops a cheaper verify up with dummyVerify, so a known account costs what an unknown one does.
    assert.equal(passwords.cheaperThanDefault(await passwords.hash("x")), false, "the default itself");
    const stronger = createPasswordContext({ random: systemRandom, argon2: { ...cheap, memoryCost: 128, timeCost: 2 } });
    assert.equal(passwords.cheaperThanDefault(await stronger.hash("x")), false, "more memory and passes");
    assert.equal(stronger.cheaperThanDefault(await passwords.hash("x")), true, "an argon2id hash below the default");
    const lanes = createPasswordContext({ random: systemRandom, argon2: { ...cheap, memoryCost: 64, parallelism: 4 } });
    assert.equal(passwords.cheaperThanDefault(await lanes.hash("x")), true, "the same memory on more lanes runs in parallel");
    assert.equal(passwords.cheaperThanDefault(await passwords.wrapLegacyHash(MD5_HEX)), false, "a wrapped hash runs the default argon2id");
    assert.equal(stronger.cheaperThanDefault(await passwords.wrapLegacyHash(MD5_HEX)), true);
    // Attack (ASVS 6.3.8): a wrapped phpass hash keeps its inner 512-byte bound, so verify refuses a longer password
    // without hashing; given the password, it counts as cheaper and the login tops it up like an unknown account.
    const setting = "$P$5abcdefgh";
    const wrappedPhpass = await passwords.wrapLegacyHash(setting + (await passwords.table.get("phpass")!.wrap!.derive("x", setting)));
    assert.equal(passwords.cheaperThanDefault(wrappedPhpass), false);
    assert.equal(passwords.cheaperThanDefault(wrappedPhpass, "p".repeat(512)), false, "within the bound: the outer argon2id runs");
    assert.equal(passwords.cheaperThanDefault(wrappedPhpass, "p".repeat(513)), true, "past it: refused without hashing");
    assert.equal(passwords.cheaperThanDefault(await passwords.hash("x"), "p".repeat(4096)), false, "argon2id's bound is the dummy's own");
    for (const legacy of [MD5_HEX, MD5_CRYPT, await bcryptHash("x", { cost: 4 }), "$scrypt$ln=4,r=8,p=1$kDIGIGQModR6rzXGuLfWWg$msm79XEpadE5XspPV7LeBJG9oMfpTgtEUHtdNgZoojY"]) {
      assert.equal(passwords.cheaperThanDefault(legacy), true, `${passwords.identify(legacy)} is not compared with argon2id: topped up`);
    }
    // Refused without any hashing: as cheap as it gets, and no throw (the login still tops it up).
    assert.equal(passwords.cheaperThanDefault("garbage"), true);
    assert.equal(passwords.cheaperThanDefault(`$2b$31$${"a".repeat(53)}`), true);
  });

  test("verifyAndRehash reports invalid, valid, or valid with a new default-scheme hash", async () => {
    assert.deepEqual(await passwords.verifyAndRehash("wrong", MD5_CRYPT), { status: "invalid" });
    const legacy = await passwords.verifyAndRehash("password", MD5_CRYPT);
    assert.equal(legacy.status, "valid");
    assert.ok("newHash" in legacy);
    assert.equal(passwords.identify(legacy.newHash), "argon2id");
    assert.equal(await passwords.verify("password", legacy.newHash), true);
    const current = await passwords.hash("password");
    assert.deepEqual(await passwords.verifyAndRehash("password", current), { status: "valid" });
  });

  test("needsRehash is true for every non-default scheme and for argon2id below the minimum", async () => {
    // ASVS 11.2.2: crypto agility — raising the parameters upgrades stored hashes at the next login.
    assert.equal(passwords.needsRehash(MD5_CRYPT), true);
    assert.equal(passwords.needsRehash(MD5_HEX), true);
    assert.equal(passwords.needsRehash(await passwords.hash("x")), false);
    const stronger = createPasswordContext({ random: systemRandom, argon2: { ...cheap, memoryCost: 128 } });
    assert.equal(stronger.needsRehash(await passwords.hash("x")), true, "m=64 is below the new default m=128");
    const tolerant = createPasswordContext({ random: systemRandom, argon2: { ...cheap, memoryCost: 128 }, minimum: { memoryCost: 64 } });
    assert.equal(tolerant.needsRehash(await passwords.hash("x")), false, "m=64 meets an explicit minimum of 64");
    const argon2i = "$argon2i$v=19$m=128,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$ZGlnZXN0ZGlnZXN0ZGlnZXN0ZGlnZXN0ZGlnZXN0AAA";
    assert.equal(passwords.needsRehash(argon2i), true);
  });

  test("refuses a policy whose default is below its minimum or outside the limits", () => {
    assert.throws(() => createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024 }, minimum: { memoryCost: 19456 } }), InvalidPasswordPolicyError);
    assert.throws(() => createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64 * 1024 * 1024 } }), InvalidPasswordPolicyError);
    assert.throws(() => createPasswordContext({ random: systemRandom, argon2: { timeCost: 0 } }), InvalidPasswordPolicyError);
    assert.throws(() => createPasswordContext({ random: systemRandom, limits: { bcryptMaxCost: -1 } }), InvalidPasswordPolicyError);
  });

  test("dummyVerify always answers false and runs a default-parameter argon2id verify", async () => {
    assert.equal(await passwords.dummyVerify("password"), false);
    assert.equal(await passwords.dummyVerify(""), false);
    let drawn = 0;
    const counting = createPasswordContext({ random: { bytes: (n) => (drawn += n, systemRandom.bytes(n)) }, argon2: cheap });
    await counting.dummyVerify("x");
    assert.equal(drawn, 48, "a fresh 16-byte salt and 32-byte tag per call");
  });

  test("describes hashes for the census", async () => {
    assert.deepEqual(passwords.describe(MD5_CRYPT), { scheme: "md5-crypt", params: "" });
    assert.deepEqual(passwords.describe(MD5_HEX), { scheme: "md5", params: "" });
    assert.deepEqual(passwords.describe(await passwords.hash("x")), { scheme: "argon2id", params: "m=64,t=1,p=1" });
    assert.deepEqual(passwords.describe("$2b$05$Wr1uKte7wWrAEQeLuLiudOCRQytXFLj4fHrPjeiA8QhkIo4d2kIFm"), { scheme: "bcrypt", params: "cost=5" });
    assert.deepEqual(passwords.describe("$6$rounds=10000$abc$" + "x".repeat(86)), { scheme: "sha512-crypt", params: "rounds=10000" });
    assert.deepEqual(passwords.describe("$5$abc$" + "x".repeat(43)), { scheme: "sha256-crypt", params: "rounds=5000" });
    assert.deepEqual(passwords.describe("$S$D" + "abcdefgh" + "x".repeat(43)), { scheme: "drupal7", params: "log2=15" });
    assert.deepEqual(passwords.describe("U$P$B" + "abcdefgh" + "x".repeat(22)), { scheme: "drupal7-wrapped-md5", params: "log2=13" });
    assert.deepEqual(passwords.describe("$scrypt$ln=4,r=8,p=1$kDIGIGQModR6rzXGuLfWWg$msm79XEpadE5XspPV7LeBJG9oMfpTgtEUHtdNgZoojY"), { scheme: "scrypt", params: "ln=4,r=8,p=1" });
    assert.deepEqual(passwords.describe("$pbkdf2-sha256$1000$5TwHIIRQ6n0vZayVsjbGWA$MtVxASCVVrb1SBUOlEuWWY4qwJ9TrV3QNCaiUM0lXoA"), { scheme: "pbkdf2-sha256", params: "rounds=1000" });
  });

  test("identifies each family by its own marker", () => {
    const cases: [string, string][] = [
      ["$2y$04$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "bcrypt"],
      ["$P$B" + "abcdefgh" + "x".repeat(22), "phpass"],
      ["$H$B" + "abcdefgh" + "x".repeat(22), "phpass"],
      ["U$S$D" + "abcdefgh" + "x".repeat(43), "drupal7-wrapped-md5"],
      ["da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1"],
      ["E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "sha256"],
      ["{ssha}" + Buffer.alloc(24).toString("base64"), "ssha"],
    ];
    for (const [hash, id] of cases) assert.equal(passwords.identify(hash), id, hash);
  });
});
