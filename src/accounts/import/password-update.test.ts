// --replace-passwords never downgrades a stored hash. Between two slow hashes below the policy it compared only
// tiers, so bcrypt cost 12 was replaced by bcrypt cost 4, or by scrypt with N=2 (found in review); two wrapped hashes
// only by their outer argon2id, and argon2 1.3 by 1.0 at the same m, t (red-team round "cost census"); a salted
// crypt(3) hash by the same scheme and cost with an empty salt, which the census counts unsalted ("new code twenty-six").
import assert from "node:assert/strict";
import { it } from "node:test";
import { systemRandom } from "../../lib/random.ts";
import { createPasswordContext } from "../passwords/index.ts";
import type { ImportRow } from "./mapping.ts";
import { planPassword } from "./password-update.ts";

const passwords = createPasswordContext({ random: systemRandom });
const BCRYPT_4 = "$2b$04$abcdefghijklmnopqrstuuNm7cFh0B8oVtWnFQK0SzfTdwkXmmBNK";
const BCRYPT_12 = "$2b$12$abcdefghijklmnopqrstuuNm7cFh0B8oVtWnFQK0SzfTdwkXmmBNK";
const BCRYPT_13 = "$2b$13$abcdefghijklmnopqrstuuNm7cFh0B8oVtWnFQK0SzfTdwkXmmBNK";
const SCRYPT_TINY = "$scrypt$ln=1,r=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
const row = (hash: string): ImportRow => ({ line: 7, user: { passwordHash: hash, passwordScheme: null } }) as unknown as ImportRow;
const plan = (next: string, stored: string) => planPassword(row(next), stored, { replacePasswords: true }, passwords);

it("attack: a slow hash is not replaced by the same scheme at lower cost, nor by another slow scheme", () => {
  const lower = plan(BCRYPT_4, BCRYPT_12);
  assert.equal(lower.kind, "refuse");
  assert.match(lower.kind === "refuse" ? lower.reason : "", /\(cost=4\) are weaker than the stored hash's \(cost=12\)/);
  const other = plan(SCRYPT_TINY, BCRYPT_12);
  assert.equal(other.kind, "refuse");
  assert.match(other.kind === "refuse" ? other.reason : "", /different scheme below the current policy \(scrypt\)/);
});

it("replaces a slow hash by the same scheme at equal or higher cost, or by one meeting the policy", async () => {
  assert.equal(plan(BCRYPT_13, BCRYPT_12).kind, "replace");
  assert.equal(plan(BCRYPT_12.replace("uuNm", "uuNn"), BCRYPT_12).kind, "replace");
  assert.equal(plan(await passwords.hash("correct horse battery staple"), BCRYPT_12).kind, "replace");
  // Tiers still decide across them: a fast digest never replaces a slow hash.
  assert.equal(plan("5f4dcc3b5aa765d61d8327deb882cf99", BCRYPT_4).kind, "refuse");
});

it("an account holding no password is not reported as keeping one: without replacePasswords the file's is not set, with it it is", () => {
  const unset = planPassword(row(BCRYPT_12), null, { replacePasswords: false }, passwords);
  assert.deepEqual(unset, { kind: "not-set" });
  assert.deepEqual(planPassword(row(BCRYPT_12), BCRYPT_13, { replacePasswords: false }, passwords), { kind: "keep" });
  assert.deepEqual(planPassword(row(BCRYPT_12), null, { replacePasswords: true }, passwords), { kind: "replace", note: { line: 7, from: null, to: "bcrypt" } });
});

it("attack: a wrapped hash is not replaced by one whose inner legacy hash is weaker, though its outer argon2id is the same (ASVS 11.4.2)", () => {
  const outer = "m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY";
  const wrapped = (inner: string, settings: string, m = "m=19456,t=2,p=1"): string => `$bulwark-wrap$v=1$${inner}$${settings}$argon2id$v=19$${outer.replace("m=19456,t=2,p=1", m)}`;
  const sha = (rounds: number): string => wrapped("sha512-crypt", `$6$rounds=${rounds}$saltsalt`);
  const md5 = plan(wrapped("md5", ""), sha(1_000_000));
  assert.equal(md5.kind, "refuse");
  assert.match(md5.kind === "refuse" ? md5.reason : "", /its inner hash: a different scheme below the current policy \(md5\)/);
  const fewer = plan(sha(5000), sha(1_000_000));
  assert.equal(fewer.kind, "refuse");
  assert.match(fewer.kind === "refuse" ? fewer.reason : "", /its inner hash: its parameters \(rounds=5000\) are weaker/);
  assert.equal(plan(wrapped("sha512-crypt", "$6$rounds=1000000$saltsalt", "m=64,t=1,p=1"), sha(1_000_000)).kind, "refuse", "a cheaper outer layer");
  // The same inner scheme at no lower cost, under an outer layer no cheaper, replaces.
  assert.equal(plan(sha(1_000_000), sha(500_000)).kind, "replace");
  assert.equal(plan(wrapped("md5", "").replace("YWJj", "YWJk"), wrapped("md5", "")).kind, "replace");
});

it("attack: an argon2 1.3 hash below the policy is not replaced by a 1.0 one at the same parameters (ASVS 11.4.2)", () => {
  const phc = (v: string): string => `$argon2id$${v}m=1024,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY`;
  const older = plan(phc("v=16$"), phc("v=19$"));
  assert.equal(older.kind, "refuse");
  assert.match(older.kind === "refuse" ? older.reason : "", /argon2 version \(v=16\) is weaker than the stored hash's \(v=19\)/);
  assert.equal(plan(phc(""), phc("v=19$")).kind, "refuse", "an omitted version is 1.0");
  assert.equal(plan(phc("v=19$"), phc("v=16$")).kind, "replace");
});

it("attack: a salted crypt(3) hash is not replaced by the same scheme and cost with an empty salt, wrapped or not; the other way round replaces (ASVS 11.4.2)", () => {
  const unsalted = plan(`$1$$${"x".repeat(22)}`, "$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/");
  assert.equal(unsalted.kind, "refuse");
  assert.match(unsalted.kind === "refuse" ? unsalted.reason : "", /it has no salt and the stored hash has one/);
  assert.equal(plan(`$6$rounds=5000$$${"x".repeat(86)}`, `$6$saltsalt$${"y".repeat(86)}`).kind, "refuse", "rounds=5000 written out, salt dropped");
  assert.equal(plan(`$1$$${"x".repeat(22)}`, `$1$$${"y".repeat(22)}`).kind, "replace", "both unsalted: no loss");
  assert.equal(plan("$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/", `$1$$${"x".repeat(22)}`).kind, "replace", "a salt gained");
  const outer = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY";
  const wrapped = (settings: string): string => `$bulwark-wrap$v=1$sha512-crypt$${settings}${outer}`;
  const inner = plan(wrapped("$6$rounds=5000$"), wrapped("$6$rounds=5000$saltsalt"));
  assert.equal(inner.kind, "refuse");
  assert.match(inner.kind === "refuse" ? inner.reason : "", /its inner hash: it has no salt and the stored hash has one/);
  assert.equal(plan(wrapped("$6$rounds=5000$saltsalt"), wrapped("$6$rounds=5000$")).kind, "replace");
});
