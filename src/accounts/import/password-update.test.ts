// --replace-passwords never downgrades a stored hash. Between two slow hashes below the policy it compared only
// tiers, so bcrypt cost 12 was replaced by bcrypt cost 4, or by scrypt with N=2 (found in review).
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
