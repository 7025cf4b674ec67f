// Attacks through the stored hash: a hostile import carrying huge cost parameters, junk or
// oversized strings must be refused as unsupported, before any hashing (ASVS 6.2.x / issue 3's
// "refused in milliseconds"). Proven structurally, not by timing: a probe watches every path a KDF
// can run through (node:crypto calls, crypto thread-pool requests, N-API async work of
// @node-rs/argon2 and @node-rs/bcrypt) and must see nothing while a hostile hash is refused, and
// must see work for a legitimate hash of every scheme (so a blind probe cannot pass).
import assert from "node:assert/strict";
import { createHook } from "node:async_hooks";
import crypto from "node:crypto";
import { readFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { describe, test } from "node:test";
import fc from "fast-check";
import { systemRandom } from "../../lib/random.ts";
import { createPasswordContext } from "./context.ts";
import { UnsupportedHashError } from "./errors.ts";
import { saltedFromTemplate } from "./salted.ts";
import { SCHEME_IDS, type SchemeId } from "./scheme.ts";

// ---- the KDF probe ------------------------------------------------------------------------------

// Async resources that are pure scheduling (promises, nextTick, timers): never KDF work.
const SCHEDULING: ReadonlySet<string> = new Set(["PROMISE", "TickObject", "Immediate", "Timeout", "Microtask"]);
const SPIED = ["hash", "createHash", "createHmac", "pbkdf2", "pbkdf2Sync", "scrypt", "scryptSync", "hkdf", "hkdfSync"] as const;

interface KdfObservation<T> {
  /** What the function returned, or the error it threw/rejected with. */
  outcome: { ok: true; value: T } | { ok: false; error: unknown };
  /** node:crypto functions called while it ran. */
  cryptoCalls: string[];
  /** Async resources created that are not plain scheduling (thread-pool and N-API work). */
  workResources: string[];
}

let installed = false;
const calls: string[] = [];
let recording = false;

// Wraps node:crypto's functions once; syncBuiltinESMExports() makes `import { hash } from
// "node:crypto"` in the scheme modules see the wrappers too.
function install(): void {
  if (installed) return;
  installed = true;
  const target = crypto as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of SPIED) {
    const original = target[name];
    if (typeof original !== "function") continue;
    target[name] = function spied(this: unknown, ...args: unknown[]): unknown {
      if (recording) calls.push(name);
      return original.apply(this, args);
    };
  }
  syncBuiltinESMExports();
}

/**
 * Runs `fn` and reports any KDF work it started. Not re-entrant: one observation at a time.
 *
 * @example
 * const seen = await observeKdf(() => passwords.verify("pw", "$2b$31$…"));
 * assert.deepEqual([seen.cryptoCalls, seen.workResources], [[], []]);
 */
async function observeKdf<T>(fn: () => Promise<T>): Promise<KdfObservation<T>> {
  install();
  const resources: string[] = [];
  const hook = createHook({
    init(_id, type) {
      if (!SCHEDULING.has(type)) resources.push(type);
    },
  });
  calls.length = 0;
  recording = true;
  hook.enable();
  let outcome: KdfObservation<T>["outcome"];
  try {
    outcome = { ok: true, value: await fn() };
  } catch (error) {
    outcome = { ok: false, error };
  } finally {
    hook.disable();
    recording = false;
  }
  return { outcome, cryptoCalls: [...calls], workResources: resources };
}
// -------------------------------------------------------------------------------------------------

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
  // RFC 7914 §2 requires N < 2^(16·r): node:crypto threw a RangeError at verify for these.
  "scrypt ln=16 with r=1 (N not below 2^(16·r))": "$scrypt$ln=16,r=1,p=1$Bw$BwcHBwcHBwcHBwcHBwcHBw",
  "scrypt ln=17 with r=1": `$scrypt$ln=17,r=1,p=1$${B64_16}$${B64_32}`,
  "scrypt ln=20 with r=1": `$scrypt$ln=20,r=1,p=1$${B64_16}$${B64_32}`,
  "pbkdf2 10^9 iterations": "$pbkdf2-sha256$1000000000$c2FsdA$" + "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY".replaceAll("+", "."),
  "django pbkdf2 10^10 iterations": "pbkdf2_sha256$10000000000$salt$" + "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY=",
  "wrapped with 2^37 inner count": "$bulwark-wrap$v=1$drupal7$$S$Zabcdefgh$argon2id$v=19$m=64,t=1,p=1$" + B64_16 + "$" + B64_32,
  "wrapped with 64 GiB argon2": wrappedMd5.replace("m=64", "m=67108864"),
  // Inner settings of a sibling phpass-family scheme: every verify used to throw after parse accepted them.
  "wrapped phpass with Drupal 7 $S$ settings": `$bulwark-wrap$v=1$phpass$$S$Cabcdefgh$argon2id$v=19$m=64,t=1,p=1$${B64_16}$${B64_32}`,
  "wrapped drupal7 with U$S$ settings": `$bulwark-wrap$v=1$drupal7$U$S$Cabcdefgh$argon2id$v=19$m=64,t=1,p=1$${B64_16}$${B64_32}`,
  "wrapped drupal7-wrapped-md5 with $P$ settings": `$bulwark-wrap$v=1$drupal7-wrapped-md5$$P$Cabcdefgh$argon2id$v=19$m=64,t=1,p=1$${B64_16}$${B64_32}`,
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
    test(`refuses ${name} as unsupported before any KDF runs`, async () => {
      // Every entry point a stored hash reaches: import (identify), login (verify, verifyAndRehash),
      // the census (describe), rehash checks, and wrap-migration.
      const entryPoints: Record<string, () => Promise<unknown>> = {
        identify: async () => passwords.identify(hash),
        verify: () => passwords.verify("password", hash),
        verifyAndRehash: () => passwords.verifyAndRehash("password", hash),
        needsRehash: async () => passwords.needsRehash(hash),
        describe: async () => passwords.describe(hash),
        wrapLegacyHash: () => passwords.wrapLegacyHash(hash),
      };
      for (const [entry, call] of Object.entries(entryPoints)) {
        const seen = await observeKdf(call);
        assert.equal(seen.outcome.ok, false, `${entry} accepted ${name}`);
        assert.ok(!seen.outcome.ok && seen.outcome.error instanceof UnsupportedHashError, `${entry}: ${String(!seen.outcome.ok && seen.outcome.error)}`);
        assert.deepEqual(seen.cryptoCalls, [], `${entry} called node:crypto for ${name}`);
        assert.deepEqual(seen.workResources, [], `${entry} started thread-pool or N-API work for ${name}`);
      }
      assert.equal(passwords.isWrappable(hash), false);
    });
  }

  test("the probe is not blind: it sees the KDF of a legitimate hash of every scheme", async () => {
    interface Vector { scheme: SchemeId; password: string; hash?: string; template?: string; salt?: string; digest?: string; match: boolean }
    const vectors = ["passlib.json", "php.json", "tools.json", "hashcat.json"].flatMap(
      (f) => (JSON.parse(readFileSync(new URL(`./vectors/${f}`, import.meta.url), "utf8")) as { vectors: Vector[] }).vectors,
    );
    const legit = new Map<SchemeId, { password: string; hash: string }>();
    for (const v of vectors) {
      if (!v.match || legit.has(v.scheme)) continue;
      const hash = v.hash ?? saltedFromTemplate(v.template!, v.salt!, v.digest!);
      // Only vectors within the default limits (the probe is about what we do run).
      try {
        passwords.identify(hash);
      } catch {
        continue;
      }
      legit.set(v.scheme, { password: v.password, hash });
    }
    legit.set("bulwark-wrapped", { password: "password", hash: await passwords.wrapLegacyHash("5f4dcc3b5aa765d61d8327deb882cf99") });
    assert.deepEqual([...legit.keys()].sort(), [...SCHEME_IDS].sort(), "a legitimate hash for every scheme");
    for (const [scheme, { password, hash }] of legit) {
      const seen = await observeKdf(() => passwords.verify(password, hash));
      assert.deepEqual(seen.outcome, { ok: true, value: true }, `${scheme} verifies its vector`);
      assert.ok(seen.cryptoCalls.length + seen.workResources.length > 0, `the probe saw no KDF work for a legitimate ${scheme} hash`);
    }
  });

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
    // Linear-time parse: a catastrophic backtrack would hang this test rather than fail a timer.
    assert.throws(() => passwords.identify(crafted), UnsupportedHashError);
  });
});

describe("scrypt parameters node:crypto refuses", () => {
  test("N just below 2^(16·r) is accepted and verifies without throwing", async () => {
    const edge = `$scrypt$ln=15,r=1,p=1$${B64_16}$${B64_32}`;
    assert.deepEqual(passwords.describe(edge), { scheme: "scrypt", params: "ln=15,r=1,p=1" });
    assert.equal(await passwords.verify("password", edge), false);
  });

  test("an error from node's scrypt for a parsed hash is UnsupportedHashError, never node's own error", async () => {
    // Limits loosened past what node:crypto accepts (p · r · 128 bytes above maxmem): parse passes.
    const loose = createPasswordContext({ random: systemRandom, limits: { scryptMaxP: 2 ** 31 } });
    const hash = `$scrypt$ln=1,r=1,p=2147483648$${B64_16}$${B64_32}`;
    assert.equal(loose.identify(hash), "scrypt");
    await assert.rejects(loose.verify("password", hash), (error: unknown) => {
      assert.ok(error instanceof UnsupportedHashError, String(error));
      assert.equal(error.code, "BULWARK_ERR_HASH_UNSUPPORTED");
      assert.ok(error.cause instanceof Error, "node's error is kept as the cause");
      return true;
    });
  });
});

describe("over-long passwords against loops that cost rounds × length", () => {
  // 512 and 513 UTF-8 bytes (256 and 257 characters: the bound counts bytes). The hashes are made
  // by each scheme's own derive at the cheapest cost: these tests are about the bound; correctness
  // is the known-answer vectors' job (vectors/).
  const AT_BOUND = "é".repeat(256);
  const OVER = "é".repeat(256) + "p";
  const legacyHash = (id: SchemeId, settings: string, separator: string) => async (password: string): Promise<string> =>
    settings + separator + (await passwords.table.get(id)!.wrap!.derive(password, settings));
  const LOOPS: Record<string, (password: string) => Promise<string>> = {
    "drupal7 $S$": legacyHash("drupal7", "$S$5abcdefgh", ""),
    "phpass $P$": legacyHash("phpass", "$P$5abcdefgh", ""),
    "phpass $H$": legacyHash("phpass", "$H$5abcdefgh", ""),
    "sha256-crypt": legacyHash("sha256-crypt", "$5$rounds=1000$saltsalt", "$"),
    "sha512-crypt": legacyHash("sha512-crypt", "$6$rounds=1000$saltsalt", "$"),
  };

  test("attack: a password over 512 bytes never matches a phpass, Drupal 7 or sha-crypt hash, plain or wrapped, and the loop never runs", async () => {
    for (const [name, make] of Object.entries(LOOPS)) {
      // The hash of exactly this password: only the bound stands between it and a match.
      const plain = await make(OVER);
      const wrapped = await passwords.wrapLegacyHash(plain);
      for (const hash of [plain, wrapped]) {
        const label = `${name} ${hash === plain ? "plain" : "wrapped"}`;
        const verified = await observeKdf(() => passwords.verify(OVER, hash));
        assert.deepEqual(verified.outcome, { ok: true, value: false }, label);
        assert.deepEqual([verified.cryptoCalls, verified.workResources], [[], []], `${label}: the loop (or argon2id) ran`);
        const rehashed = await observeKdf(() => passwords.verifyAndRehash(OVER, hash));
        assert.deepEqual(rehashed.outcome, { ok: true, value: { status: "invalid" } }, label);
        assert.deepEqual([rehashed.cryptoCalls, rehashed.workResources], [[], []], `${label}: verifyAndRehash hashed`);
      }
    }
  });

  test("a password of exactly 512 bytes is still verified in full, plain and wrapped", async () => {
    for (const [name, make] of Object.entries(LOOPS)) {
      const plain = await make(AT_BOUND);
      for (const hash of [plain, await passwords.wrapLegacyHash(plain)]) {
        const seen = await observeKdf(() => passwords.verify(AT_BOUND, hash));
        assert.deepEqual(seen.outcome, { ok: true, value: true }, name);
        assert.ok(seen.cryptoCalls.length > 0, `${name}: the loop ran`);
      }
    }
  });

  test("maxPasswordBytesFor names the bound verify applies: 512 for these loops, plain or wrapped, 4096 otherwise", async () => {
    for (const [name, make] of Object.entries(LOOPS)) {
      const plain = await make(AT_BOUND);
      assert.equal(passwords.maxPasswordBytesFor(plain), 512, name);
      assert.equal(passwords.maxPasswordBytesFor(await passwords.wrapLegacyHash(plain)), 512, `${name} wrapped`);
    }
    assert.equal(passwords.maxPasswordBytesFor(await passwords.hash("p")), 4096);
    assert.equal(passwords.maxPasswordBytesFor(await legacyHash("md5-crypt", "$1$saltsalt", "$")("p")), 4096);
    assert.throws(() => passwords.maxPasswordBytesFor("not a hash"), { code: "BULWARK_ERR_HASH_UNSUPPORTED" });
  });

  test("schemes whose cost does not grow as rounds × length keep the 4096-byte bound", async () => {
    const long = "p".repeat(4096);
    // Drupal 7's U$ form loops over md5(password) as 32 hex digits; Drupal applies its 512 bound to that digest.
    const drupal6 = await legacyHash("drupal7-wrapped-md5", "U$P$5abcdefgh", "")(long);
    // md5-crypt's 1000 rounds are fixed (limits.ts gives its cost at 4096 bytes).
    const md5crypt = await legacyHash("md5-crypt", "$1$saltsalt", "$")(long);
    for (const hash of [drupal6, md5crypt, await passwords.wrapLegacyHash(drupal6)]) {
      assert.equal(await passwords.verify(long, hash), true, hash.slice(0, 24));
      assert.equal(await passwords.verify(long.slice(1), hash), false, hash.slice(0, 24));
    }
  });

  test("dummyVerify keeps doing a default-scheme verify's argon2id work for a password over the legacy bound", async () => {
    // argon2id, the default scheme, has no bound of its own below 4096 bytes, so neither does the
    // dummy verify that stands in for it (no user enumeration through the amount of work).
    const seen = await observeKdf(() => passwords.dummyVerify(OVER));
    assert.deepEqual(seen.outcome, { ok: true, value: false });
    assert.ok(seen.workResources.length > 0, "argon2id ran");
  });
});
