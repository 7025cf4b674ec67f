// Red-team round "census salt": the shared-salt count of `users census` (sharedSalt, saltKey in
// src/accounts/passwords/salt.ts) and --replace-passwords' "never lose a salt, never downgrade" after last session.
// Attacker: whoever wrote the legacy table or a re-import file (a compromised old system, a partner's export, a careless
// merge of two legacy dumps) and later holds a copy of the users table offline. They want rows that one computation per
// guess cracks together to pass as individually salted (the census says "no shared salt", the operator does nothing),
// or a re-import to swap a costly stored hash for one that cracks at once.
// Tried: one computation spelled two ways — phpass `$P$` and phpBB `$H$` over one salt and count; a salted digest's
// digest written in hex and in base64; LDAP {SSHA} and the salted-digest sha1(password+salt) over one salt; passlib's
// `$pbkdf2-sha256$` and Django's `pbkdf2_sha256$` over one salt and iteration count; wrapped hashes under one (fixed)
// outer argon2id salt whose inner sha512-crypt spells the default rounds or not; spellings the parsers canonicalise
// (an `{ssha}` label, an omitted argon2 version); hostile rows (oversized, bad base64, hostile costs) between the
// members of shared groups across page boundaries; --replace-passwords crossing from the fast tier to a slow hash
// below its minimum cost; a bcrypt hash whose salt's 22nd character has its spare bits set (a salt of 22 random
// characters, which passlib verifies), seen in review.
// Held: `{ssha}`/`{SSHA}` and argon2 `v=16`/omitted are one key; hostile rows are counted unsupported and neither stop
// the census nor split or join a group across pages; no salt reaches the output.
// Found (fixed since: saltKey keys the computation — family, algorithm, cost, construction and the salt's bytes as hex —
// and a wrapped hash by its inner computation's key and its outer argon2id's; planPassword refuses a slow hash below its
// minimum cost in place of a fast one; bcrypt verifies a salt whose last character has spare bits set, as passlib does):
// (1)-(5) saltKey keyed a computation by the hash's spelling, not by what a guess computes: `$P$`/`$H$`,
// hex/base64 salted digests, {SSHA} against sha1(password+salt), the two PBKDF2 dialects, and a wrapped hash's inner
// settings (raw text: `$6$rounds=5000$` and `$6$` were one key unwrapped but two wrapped) each reported rows on one salt
// as individually salted (sharedSalt 0, not unsalted) although every guess tested both rows with one computation — the
// very promise of docs/password-migration.md ("the key is all a guess computes with besides the password ... one
// computation spelled two ways is" counted); (6) --replace-passwords replaced a stored fast hash of high cost (a
// 10^6-round sha512-crypt, 2·10^6 PBKDF2 iterations, which migrate-hashes would lift to the policy's argon2id) by a
// slow hash far below its minimum (scrypt N=2, bcrypt cost 4, argon2id m=8 t=1): the tiers alone decided across them;
// (7) such a bcrypt hash parsed but never verified (@node-rs/bcrypt refuses the salt), locking its owner out silently.
// Not tested: a deliberate collision of SaltDigests' 8-byte truncation (~2^32 work per pair offline, too slow for a
// test; it could only make rows look shared, never hide sharing).
import assert from "node:assert/strict";
import { createHash, pbkdf2Sync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { belowMinimumCost, passwordCensus, type Census } from "../src/accounts/census/index.ts";
import type { ImportRow } from "../src/accounts/import/mapping.ts";
import { planPassword } from "../src/accounts/import/password-update.ts";
import { ITOA64, encodeB64NoPad } from "../src/accounts/passwords/encoding.ts";
import { createPasswordContext, saltedFromTemplate, type SchemeId } from "../src/accounts/passwords/index.ts";
import { createUserStore } from "../src/accounts/users/user-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom, type RandomSource } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";

const root = mkdtempSync(join(tmpdir(), "bulwark-redteam-census-salt-"));
const opened: Database[] = [];
after(async () => {
  for (const db of opened) await db.close().catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

// The census never hashes; a cheap policy keeps the verifies below (sanity: the rows are real hashes) fast.
const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
// A wrap made elsewhere with one fixed outer salt (a re-import file): the case the census docs say it counts.
const fixedSalt: RandomSource = { bytes: (size) => new Uint8Array(size).fill(7) };
const fixedWrapper = createPasswordContext({ random: fixedSalt, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
// The product's default policy, for --replace-passwords' tiers.
const policy = createPasswordContext({ random: systemRandom });

const PASSWORD = "hunter2-correct-horse";
let dbCounter = 0;

/** A fresh migrated SQLite database holding one user per hash. */
async function tableOf(hashes: readonly string[]): Promise<Database> {
  const database = openSQLite(join(root, `db-${++dbCounter}.sqlite`), { create: true });
  opened.push(database);
  const clock = new ManualClock();
  await migrate(database, clock);
  const users = createUserStore({ database, clock, random: systemRandom });
  let n = 0;
  for (const passwordHash of hashes) await users.create({ email: `u${++n}@example.org`, passwordHash });
  return database;
}

const shared = (c: Census): [number, number, number] => [c.sharedSalt, c.sharedSaltGroups, c.largestSharedSaltGroup];
const crypt = (n: number): string => Array.from(randomBytes(n), (b) => ITOA64[b & 63]).join("");
/** The legacy result a fast scheme derives for PASSWORD from `settings` (the scheme's own code). */
const derive = (id: SchemeId, settings: string): Promise<string> => passwords.table.get(id)!.wrap!.derive(PASSWORD, settings);
/** Both rows verify PASSWORD: they are real hashes, not test artefacts. */
async function bothVerify(hashes: readonly string[]): Promise<void> {
  for (const h of hashes) assert.equal(await passwords.verify(PASSWORD, h), true, `${passwords.describe(h).scheme} row does not verify: test bug`);
}
/** Two more rows with salts of their own, so that a census of "everything shares" is not trivially right. */
const bystanders = (): string[] => [`$1$${crypt(8)}$${crypt(22)}`, `$1$${crypt(8)}$${crypt(22)}`];

describe("census salt: one computation spelled two ways", () => {
  // phpass' `$P$` (WordPress) and phpBB's `$H$` run the same MD5 loop (phpass.ts ALGORITHM: both md5): the same salt
  // and count give the same checksum for every password. A merged WordPress + phpBB dump on one fixed salt is one
  // computation per guess for both rows.
  it("attack: a WordPress `$P$` and a phpBB `$H$` row on one salt and count (the same MD5 loop, the same checksum) — the census counts them as sharing a salt, and unsalted (ASVS 11.4.2) (was: two keys, `$P$` and `$H$`: counted individually salted)", async () => {
    const checksum = await derive("phpass", "$P$9pepper12");
    const rows = [`$P$9pepper12${checksum}`, `$H$9pepper12${checksum}`];
    assert.equal(await derive("phpass", "$H$9pepper12"), checksum, "one computation: $H$ derives the checksum $P$ does");
    await bothVerify(rows);
    const census = await passwordCensus({ database: await tableOf([...rows, ...bystanders()]), passwords });
    assert.deepEqual(shared(census), [2, 1, 2], `the $P$ and $H$ rows share salt, count and computation (identical checksums), yet the census reports sharedSalt/groups/largest ${JSON.stringify(shared(census))}: saltKey keys the text "$P$"/"$H$", not the computation`);
    assert.equal(census.unsalted, 2, "fast rows on one computation are one precomputation: unsalted");
  });

  // The salted-digest template's `e=` is how the old system wrote its digest, not what it computed: derive always
  // yields the hex of md5(salt+password), and split decodes either encoding to it.
  it("attack: two salted-digest rows with one salt and template, the digest written in hex in one and base64 in the other (merged dumps) — the census counts them as sharing a salt (ASVS 11.4.2) (was: the digest's encoding e=hex/e=base64 in the key: not counted)", async () => {
    const salt = "site-wide-pepper";
    const digest = createHash("md5").update(`${salt}${PASSWORD}`, "utf8").digest();
    const rows = [
      saltedFromTemplate("md5(salt+password):hex", salt, digest.toString("hex")),
      saltedFromTemplate("md5(salt+password):base64", salt, digest.toString("base64")),
    ];
    await bothVerify(rows);
    const census = await passwordCensus({ database: await tableOf([...rows, ...bystanders()]), passwords });
    assert.deepEqual(shared(census), [2, 1, 2], `both rows are md5("${"<salt>"}" + password) with one salt — one MD5 per guess tests both — yet the census reports ${JSON.stringify(shared(census))}: saltKey keys the digest's output encoding (e=hex/e=base64)`);
    assert.equal(census.unsalted, 2);
  });

  // RFC 2307 {SSHA} is sha1(password ‖ salt); the salted-digest sha1(password+salt) is the same function of the same
  // bytes. Docs: "the key is all a guess computes with besides the password".
  it("attack: an LDAP {SSHA} row and a salted-digest sha1(password+salt) row on one salt (an LDAP export and a web app's table, one pepper) — one SHA-1 per guess tests both; the census counts them as sharing (ASVS 11.4.2) (was: keyed by scheme id: not counted)", async () => {
    const salt = "pepper12";
    const digest = createHash("sha1").update(PASSWORD, "utf8").update(salt, "utf8").digest();
    const rows = [
      `{SSHA}${Buffer.concat([digest, Buffer.from(salt)]).toString("base64")}`,
      saltedFromTemplate("sha1(password+salt):hex", salt, digest.toString("hex")),
    ];
    await bothVerify(rows);
    const census = await passwordCensus({ database: await tableOf([...rows, ...bystanders()]), passwords });
    assert.deepEqual(shared(census), [2, 1, 2], `{SSHA} and sha1(password+salt) with the same salt store the same 20-byte digest (one SHA-1 per guess cracks both), yet the census reports ${JSON.stringify(shared(census))}: saltKey keys the scheme id, not the computation`);
  });

  it("attack: passlib `$pbkdf2-sha256$` and Django `pbkdf2_sha256$` rows with one salt and iteration count — the same PBKDF2-HMAC-SHA256 call, the same derived key; the census counts them as sharing (ASVS 11.4.2) (was: keyed by dialect and salt text: not counted)", async () => {
    const salt = "pepperpepper";
    const dk = pbkdf2Sync(PASSWORD, salt, 1000, 32, "sha256");
    const ab64 = (b: Buffer): string => encodeB64NoPad(b).replaceAll("+", ".");
    const rows = [`$pbkdf2-sha256$1000$${ab64(Buffer.from(salt))}$${ab64(dk)}`, `pbkdf2_sha256$1000$${salt}$${dk.toString("base64")}`];
    await bothVerify(rows);
    const census = await passwordCensus({ database: await tableOf([...rows, ...bystanders()]), passwords });
    assert.deepEqual(shared(census), [2, 1, 2], `both rows are PBKDF2-HMAC-SHA256(password, "${"<salt>"}", 1000, 32) — one derivation per guess tests both — yet the census reports ${JSON.stringify(shared(census))}: saltKey keys the dialect, not the computation`);
  });

  // Unwrapped, saltKey spells sha-crypt's default rounds out (census-shared-salt.test.ts pins `$6$rounds=5000$` = `$6$`);
  // wrapped, it keys the hash's raw text minus the tag, inner settings as written.
  it("attack: two wraps made with one fixed outer salt over sha512-crypt `$6$rounds=5000$pepper$…` and `$6$pepper$…` (one computation, identical stored tag) — counted as sharing, as their unwrapped forms are (ASVS 11.4.2) (was: keyed by the wrapped hash's raw text: not counted)", async () => {
    const checksum = await derive("sha512-crypt", "$6$rounds=5000$pepper");
    assert.equal(await derive("sha512-crypt", "$6$pepper"), checksum);
    const unwrapped = [`$6$rounds=5000$pepper$${checksum}`, `$6$pepper$${checksum}`];
    const rows = [await fixedWrapper.wrapLegacyHash(unwrapped[0]!), await fixedWrapper.wrapLegacyHash(unwrapped[1]!)];
    await bothVerify(rows);
    assert.equal(rows[0]!.slice(rows[0]!.lastIndexOf("$")), rows[1]!.slice(rows[1]!.lastIndexOf("$")), "one outer salt, one legacy result: the same argon2id tag");
    const control = await passwordCensus({ database: await tableOf([...unwrapped, ...bystanders()]), passwords });
    assert.deepEqual(shared(control), [2, 1, 2], "control: unwrapped, the two spellings are one key");
    const census = await passwordCensus({ database: await tableOf([...rows, ...bystanders()]), passwords });
    assert.deepEqual(shared(census), [2, 1, 2], `the wrapped rows store the same argon2id tag under the same outer salt (one argon2id per guess tests both), yet the census reports ${JSON.stringify(shared(census))}: saltKey's bulwark-wrapped case keys the inner settings' raw text, not settingsSaltKey's canonical form`);
  });

  it("attack: spellings the parsers canonicalise — an `{ssha}` label beside `{SSHA}`, an argon2i with `v=16` beside one with the version omitted, on one salt — are one key each, and no salt reaches the JSON (ASVS 11.4.2)", async () => {
    const salt = Buffer.from("pepper12");
    const digest = createHash("sha1").update(PASSWORD, "utf8").update(salt).digest();
    const payload = Buffer.concat([digest, salt]).toString("base64");
    const argonSalt = encodeB64NoPad(Buffer.from("a-site-wide-salt"));
    const tag = encodeB64NoPad(randomBytes(32));
    const rows = [`{SSHA}${payload}`, `{ssha}${payload}`, `$argon2i$v=16$m=1024,t=2,p=1$${argonSalt}$${tag}`, `$argon2i$m=1024,t=2,p=1$${argonSalt}$${tag}`];
    await bothVerify(rows.slice(0, 2));
    const census = await passwordCensus({ database: await tableOf([...rows, ...bystanders()]), passwords });
    assert.deepEqual(shared(census), [4, 2, 2]);
    assert.equal(census.unsupported, 0);
    const json = JSON.stringify(census);
    assert.ok(!json.includes(argonSalt) && !json.includes("pepper12") && !json.includes(payload), "no salt or digest in the census");
  });
});

describe("census salt: hostile rows between shared groups", () => {
  it("attack: oversized, bad-base64 and hostile-cost rows interleaved with the members of shared groups across page boundaries — counted unsupported, nothing stops, groups exact (ASVS 11.4.2, 16.5.3)", async () => {
    const argonSalt = encodeB64NoPad(Buffer.from("a-site-wide-salt"));
    const argon = (salt: string): string => `$argon2id$v=19$m=19456,t=2,p=1$${salt}$${encodeB64NoPad(randomBytes(32))}`;
    const hostile = [
      `$1$a$${"A".repeat(600_000)}`, // 600 KB
      `$argon2id$v=19$m=19456,t=2,p=1$${argonSalt}B$${encodeB64NoPad(randomBytes(32))}`, // a lone base64 character
      `$argon2id$v=19$m=2147483648,t=2,p=1$${argonSalt}$${encodeB64NoPad(randomBytes(32))}`, // m = 2^31 KiB
      `$2b$31$abcdefghijklmnopqrstuu${crypt(31)}`, // bcrypt 2^31
      `$6$rounds=99999999999$pepper$${crypt(86)}`,
      `$P$zpepper12${crypt(22)}`, // phpass 2^63
      `$scrypt$ln=31,r=8,p=1$${argonSalt}$${encodeB64NoPad(randomBytes(32))}`,
    ];
    const md5a = (): string => `$1$a$${crypt(22)}`;
    // Three md5-crypt `$1$a$` rows and two argon2id rows on one salt, each member split from the next by a hostile row.
    const rows = [md5a(), hostile[0]!, argon(argonSalt), hostile[1]!, md5a(), hostile[2]!, hostile[3]!, argon(argonSalt), hostile[4]!, md5a(), hostile[5]!, hostile[6]!, ...bystanders()];
    const census = await passwordCensus({ database: await tableOf(rows), passwords }, { pageSize: 2 });
    assert.equal(census.users, rows.length);
    assert.equal(census.unsupported, hostile.length, "every hostile row counted unsupported");
    assert.deepEqual(shared(census), [5, 2, 3]);
    assert.equal(census.unsalted, 3, "the three `$1$a$` rows are one precomputation");
    assert.ok(census.schemes.every((r) => r.params.length < 64), "no hostile text in the parameters");
  });
});

describe("census salt: --replace-passwords across the tiers", () => {
  const rowWith = (hash: string): ImportRow => ({ line: 3, user: { passwordHash: hash, passwordScheme: null } }) as unknown as ImportRow;
  const plan = (next: string, stored: string) => planPassword(rowWith(next), stored, { replacePasswords: true }, policy);

  // The stored rows are fast (wrappable): migrate-hashes lifts them to argon2id at the policy. The file's are slow
  // schemes the census counts below their minimum (minimum-cost.ts), which no job can lift: only the owner's next
  // sign-in. And a guess against them costs a small fraction of the stored hash's 10^6 sha512-crypt rounds
  // (1.4-1.8 s of CPU, docs/password-hashes.md) or 2·10^6 PBKDF2 iterations. assess() ranks every slow hash above every
  // fast one, so noWeaker is never asked.
  it("attack: a re-import file's scrypt N=2, bcrypt cost 4 or argon2id m=8 t=1 against a stored 10^6-round sha512-crypt or 2·10^6-iteration PBKDF2 — refused: --replace-passwords never downgrades (ASVS 11.4.2) (was: replaced: every slow hash ranked above every fast one)", () => {
    const stored = [`$6$rounds=1000000$saltsalt$${crypt(86)}`, `$pbkdf2-sha256$2000000$${encodeB64NoPad(randomBytes(16)).replaceAll("+", ".")}$${encodeB64NoPad(randomBytes(32)).replaceAll("+", ".")}`];
    const files = [
      `$scrypt$ln=1,r=1,p=1$c2FsdHNhbHQ$${encodeB64NoPad(randomBytes(32))}`,
      `$2b$04$abcdefghijklmnopqrstuu${crypt(31)}`,
      `$argon2id$v=19$m=8,t=1,p=1$${encodeB64NoPad(randomBytes(16))}$${encodeB64NoPad(randomBytes(32))}`,
    ];
    const replaced: string[] = [];
    for (const s of stored) {
      assert.equal(policy.isWrappable(s), true, "control: migrate-hashes lifts the stored hash");
      for (const f of files) {
        assert.equal(belowMinimumCost(policy, f), true, "control: the census counts the file's hash below its minimum");
        const p = plan(f, s);
        if (p.kind !== "refuse") replaced.push(`${policy.describe(s).scheme}(${policy.describe(s).params}) → ${policy.describe(f).scheme}(${policy.describe(f).params}): ${p.kind}`);
      }
    }
    assert.deepEqual(replaced, [], `the file's slow hashes below their minimum cost (the census's belowMinimum, which migrate-hashes cannot lift) replaced stored hashes costing a guesser far more per guess (and which migrate-hashes would lift to the policy): ${replaced.join("; ")}`);
  });
});

describe("census salt: a bcrypt salt whose last character has its spare bits set", () => {
  // Known answer from glibc's libxcrypt (crypt_blowfish, the code PHP's crypt() runs), through Python 3.11's crypt
  // module: crypt("password", "$2b$04$abcdefghijklmnopqrstuv") wrote "$2b$04$abcdefghijklmnopqrstuu" + CHECKSUM, the
  // salt decoded to 16 bytes and written back ("v" is "u" with two of the 4 spare bits set). passlib verifies the "v"
  // form (it clears the bits, with a warning); OpenBSD and PHP compare the whole string they write back, so they never
  // did: only a table checked by passlib holds such hashes.
  const CHECKSUM = "ghE8Ev8uGFaUgY2cNEySvxngrb/Jzdm";
  const written = `$2b$04$abcdefghijklmnopqrstuu${CHECKSUM}`;
  const spare = `$2b$04$abcdefghijklmnopqrstuv${CHECKSUM}`;

  it("attack: an imported bcrypt hash whose salt's 22nd character has spare bits set — verifies its owner's password and no other, and is one computation with its canonical spelling in the census (ASVS 11.4.2) (was: parsed but never verified, the owner locked out silently)", async () => {
    assert.equal(await passwords.verify("password", written), true, "control: the known answer verifies as written");
    assert.equal(await passwords.verify("password", spare), true, "the spare bits are not part of the salt's 16 bytes");
    assert.equal(await passwords.verify("passwordx", spare), false);
    assert.equal(await passwords.verify("password", `$2b$04$abcdefghijklmnopqrstue${CHECKSUM}`), false, "a last character whose 2 salt bits differ (\"e\", not \"u\") is another salt");
    const census = await passwordCensus({ database: await tableOf([written, spare, ...bystanders()]), passwords });
    assert.deepEqual(shared(census), [2, 1, 2], "one salt, one cost: one computation per guess");
  });
});
