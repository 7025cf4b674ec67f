// The census and a salt shared by many rows: a legacy system that used one fixed salt (`$1$a$…` on every row, a
// site-wide "pepper" stored as the salt, a bcrypt salt reused by a buggy library) lets a cracker test every such row
// with one computation per guess, slow hash or not. The census must count those rows (per scheme and cost: the same
// salt under two schemes is two computations), the groups and the largest, on SQLite and PostgreSQL, and say so.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { passwordCensus } from "../src/accounts/census/index.ts";
import { ITOA64, encodeB64NoPad } from "../src/accounts/passwords/encoding.ts";
import { createPasswordContext, saltedFromTemplate } from "../src/accounts/passwords/index.ts";
import { createUserStore } from "../src/accounts/users/user-store.ts";
import { openApp } from "../src/app/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom, type RandomSource } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";

// The census never hashes; the policy (m=1024, t=1) is what it measures argon2 against.
const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
// A wrap made by a tool that used one fixed outer salt (a re-import file): what the census must still see.
const fixedSalt: RandomSource = { bytes: (size) => new Uint8Array(size).fill(7) };
const fixedWrapper = createPasswordContext({ random: fixedSalt, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });

/** `n` random characters of the crypt alphabet (checksums: the census never verifies). */
const crypt = (n: number): string => Array.from(randomBytes(n), (b) => ITOA64[b & 63]).join("");
const md5Crypt = (salt: string): string => `$1$${salt}$${crypt(22)}`;
const bcrypt = (cost: number, salt: string, version = "2b"): string => `$${version}$${cost}$${salt}${crypt(31)}`;
const argon2id = (salt: Uint8Array): string => `$argon2id$v=19$m=1024,t=1,p=1$${encodeB64NoPad(salt)}$${encodeB64NoPad(randomBytes(32))}`;
const md5 = (text: string): string => createHash("md5").update(text, "utf8").digest("hex");

const SITE_BCRYPT_SALT = "abcdefghijklmnopqrstuu"; // 22 characters: bcrypt's 16 bytes
const SITE_ARGON2_SALT = Buffer.from("site-wide pepper"); // 16 bytes

/** A fresh migrated database and a way to add users with the given stored hashes. */
async function storeOf(database: Database): Promise<{ database: Database; add: (hashes: readonly string[]) => Promise<void> }> {
  const clock = new ManualClock();
  await migrate(database, clock);
  const users = createUserStore({ database, clock, random: systemRandom });
  let n = 0;
  const add = async (hashes: readonly string[]): Promise<void> => {
    for (const hash of hashes) await users.create({ email: `user${++n}@example.org`, passwordHash: hash });
  };
  return { database, add };
}

const shared = (c: { sharedSalt: number; sharedSaltGroups: number; largestSharedSaltGroup: number }): number[] => [c.sharedSalt, c.sharedSaltGroups, c.largestSharedSaltGroup];

forEachDialect("census: salts shared by many rows", (fx) => {
  it("attack: a legacy table hashed with one site-wide salt per scheme (bcrypt cost 12, argon2id at the policy, md5-crypt `$1$a$`) — the census counts every row sharing its salt, the groups and the largest, and the fast ones as unsalted (one precomputation for all of them) (ASVS 11.4.2) (was: bcrypt and argon2id reported strong, md5-crypt salted, the shared salt unseen)", async () => {
    const { database, add } = await storeOf(await fx.fresh());
    await add(Array.from({ length: 4 }, () => bcrypt(12, SITE_BCRYPT_SALT)));
    await add(Array.from({ length: 3 }, () => argon2id(SITE_ARGON2_SALT)));
    await add(Array.from({ length: 5 }, () => md5Crypt("a")));
    // Rows with salts of their own, of the same schemes: not counted.
    await add([bcrypt(12, crypt(21) + "."), bcrypt(12, crypt(21) + "."), await passwords.hash("a fine passphrase"), md5Crypt("b0")]);
    const census = await passwordCensus({ database, passwords }, { pageSize: 3 });
    assert.deepEqual(shared(census), [12, 3, 5], "4 bcrypt, 3 argon2id and 5 md5-crypt rows share a salt: 3 groups, the largest of 5");
    assert.deepEqual([census.users, census.weak, census.unsalted], [16, 6, 5], "the 5 md5-crypt rows on one salt are one precomputation: unsalted");
    // Slow rows on a shared salt are reported, not made weak: their groups' flags stay what the cost says.
    assert.deepEqual(census.schemes.filter((r) => r.scheme !== "md5-crypt").map((r) => [r.scheme, r.users, r.weak]), [["bcrypt", 6, false], ["argon2id", 4, false]]);
  });

  it("distinct salts are not counted, nor unsalted rows (bare digests, empty crypt salts: counted unsalted as before)", async () => {
    const { database, add } = await storeOf(await fx.fresh());
    await add([
      bcrypt(10, crypt(21) + "O"), bcrypt(10, crypt(21) + "O"), bcrypt(10, crypt(21) + "O"),
      await passwords.hash("one"), await passwords.hash("two"), argon2id(randomBytes(16)),
      md5Crypt("s1"), md5Crypt("s2"), md5Crypt("s3"),
      `$pbkdf2-sha256$29000$${encodeB64NoPad(randomBytes(16)).replaceAll("+", ".")}$${encodeB64NoPad(randomBytes(32)).replaceAll("+", ".")}`,
      `$pbkdf2-sha256$29000$${encodeB64NoPad(randomBytes(16)).replaceAll("+", ".")}$${encodeB64NoPad(randomBytes(32)).replaceAll("+", ".")}`,
      md5("same password"), md5("same password"),
      `$1$$${crypt(22)}`, `$1$$${crypt(22)}`,
      await passwords.wrapLegacyHash(md5("wrapped")), await passwords.wrapLegacyHash(md5("wrapped")),
    ]);
    const census = await passwordCensus({ database, passwords });
    assert.deepEqual(shared(census), [0, 0, 0]);
    assert.deepEqual([census.users, census.weak, census.unsalted], [17, 9, 4]);
  });

  it("attack: one salt under two schemes or two costs is not one computation, and is not counted; one computation spelled two ways is ($6$rounds=5000$ and $6$, bcrypt $2a$ and $2y$) (ASVS 11.4.2) (was: never counted)", async () => {
    const { database, add } = await storeOf(await fx.fresh());
    const pepper = "NaClSecretPepper";
    await add([
      // The same 8 characters under four schemes: four computations per guess.
      md5Crypt("saltsalt"), `$5$saltsalt$${crypt(43)}`, `$6$saltsalt$${crypt(86)}`, `$P$Bsaltsalt${crypt(22)}`,
      // A salted digest's template is part of the computation: md5(salt+password) is not sha256(salt+password).
      saltedFromTemplate("md5(salt+password):hex", pepper, md5(`${pepper}x`)),
      saltedFromTemplate("sha256(salt+password):hex", pepper, createHash("sha256").update(`${pepper}x`).digest("hex")),
      // bcrypt's cost is part of the computation.
      bcrypt(10, SITE_BCRYPT_SALT), bcrypt(12, SITE_BCRYPT_SALT),
      // One computation: the default rounds spelled out or not.
      `$6$rounds=5000$pepper$${crypt(86)}`, `$6$pepper$${crypt(86)}`,
      // One computation: $2a$ and $2y$ alike (for any password under 256 bytes).
      bcrypt(11, `${"q".repeat(21)}.`, "2a"), bcrypt(11, `${"q".repeat(21)}.`, "2y"),
    ]);
    const census = await passwordCensus({ database, passwords });
    assert.deepEqual(shared(census), [4, 2, 2]);
    assert.equal(census.unsalted, 2, "the two sha512-crypt rows on one salt and rounds: one precomputation");
  });

  it("attack: wrapped hashes over one inner salt are not counted — each outer argon2id salt is fresh, a guess costs an argon2id per row — while wraps that also share the outer salt (made with a fixed salt) are one computation and are counted (ASVS 11.4.2) (was: never counted)", async () => {
    const { database, add } = await storeOf(await fx.fresh());
    await add([
      await passwords.wrapLegacyHash(md5Crypt("a")), await passwords.wrapLegacyHash(md5Crypt("a")), await passwords.wrapLegacyHash(md5Crypt("a")),
      // One outer salt, one inner salt: one computation per guess for both.
      await fixedWrapper.wrapLegacyHash(md5Crypt("a")), await fixedWrapper.wrapLegacyHash(md5Crypt("a")),
      // One outer salt, other inner salts: the argon2id input differs per row.
      await fixedWrapper.wrapLegacyHash(md5Crypt("b")), await fixedWrapper.wrapLegacyHash(md5Crypt("c")),
      // Unsalted inner digests under one outer salt: one computation.
      await fixedWrapper.wrapLegacyHash(md5("p1")), await fixedWrapper.wrapLegacyHash(md5("p2")), await fixedWrapper.wrapLegacyHash(md5("p3")),
    ]);
    const census = await passwordCensus({ database, passwords });
    assert.deepEqual(shared(census), [5, 2, 3]);
    assert.deepEqual([census.weak, census.unsalted], [0, 0], "wrapped rows at the policy are not weak, not unsalted");
  });
});

describe("census: the human output names salts shared by many rows", () => {
  const root = mkdtempSync(join(tmpdir(), "bulwark-census-shared-salt-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("prints how many users share a salt, in how many groups, and the largest; --json has the fields", async () => {
    const env = { BULWARK_DATA_DIR: join(root, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent" };
    assert.equal((await bulwarkInProcess(["init"], env)).code, 0);
    const app = await openApp({ env });
    try {
      let n = 0;
      for (const hash of [...Array.from({ length: 3 }, () => bcrypt(12, SITE_BCRYPT_SALT)), md5Crypt("a"), md5Crypt("a"), md5Crypt("zz")]) {
        await app.accounts.users.create({ email: `cli${++n}@example.org`, passwordHash: hash });
      }
    } finally {
      await app.close();
    }
    const human = await bulwarkInProcess(["users", "census"], env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /, 2 unsalted or on a shared salt \(one precomputation for all of them\)\n/);
    assert.match(human.stdout, /^5 user\(s\) share their salt with another user of the same scheme and cost \(2 group\(s\), the largest of 3\): one computation per guess tests a whole group/m);
    assert.ok(!human.stdout.includes(SITE_BCRYPT_SALT), "the salt itself never reaches the output");
    const json = await bulwarkInProcess(["users", "census", "--json"], env);
    const census = JSON.parse(json.stdout);
    assert.deepEqual([census.sharedSalt, census.sharedSaltGroups, census.largestSharedSaltGroup, census.unsalted], [5, 2, 3, 2]);
    assert.ok(!json.stdout.includes(SITE_BCRYPT_SALT));
  });
});
