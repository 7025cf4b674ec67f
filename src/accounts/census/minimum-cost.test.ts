// The minimum costs of the slow schemes at their boundaries: bcrypt cost 10 and OWASP's scrypt configurations
// (Password Storage Cheat Sheet) are not below; one step under each is. Parsed only: nothing is hashed.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { systemRandom } from "../../lib/random.ts";
import { createPasswordContext } from "../passwords/index.ts";
import { belowMinimumCost } from "./minimum-cost.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
// Salt and checksum from passlib's scrypt vector (vectors/passlib.json); only the parameters vary.
const scrypt = (ln: number, r: number, p: number): string => `$scrypt$ln=${ln},r=${r},p=${p}$eQ9h7L3XGuOcc27tHQNAyA$k3TQlb7XrMaKBMNfo1NeBMGzuuLNrSJdAK0+S+/O7NA`;
// Salt and checksum from hashcat's mode 3200 example (vectors/hashcat.json); only the cost varies.
const bcrypt = (cost: number): string => `$2a$${String(cost).padStart(2, "0")}$MBCzKhG1KhezLh.0LRa0Kuw12nLJtpHy6DIaU.JAnqJUDYspHC.Ou`;

describe("minimum cost of slow schemes (ASVS 11.4.2)", () => {
  it("counts bcrypt below cost 10 as below its minimum, cost 10 and above not (OWASP Password Storage Cheat Sheet)", () => {
    assert.deepEqual([4, 5, 9, 10, 12].map((c) => belowMinimumCost(passwords, bcrypt(c))), [true, true, true, false, false]);
  });

  it("counts scrypt below OWASP's N=2^17, r=8, p=1 or an equivalent configuration as below its minimum", () => {
    const cases: Array<[number, number, number, boolean]> = [
      [17, 8, 1, false], // OWASP's minimum
      [16, 8, 2, false], // its equivalents (p ≤ 4 is the scheme's own bound)
      [15, 8, 3, false],
      [16, 8, 1, true], // passlib's default: half OWASP's work
      [14, 8, 4, true],
      [4, 8, 1, true], // passlib's test profile, 16 KiB
      [15, 1, 4, true], // 4 MiB per lane, 2^17 work
      [10, 32, 4, true], // 4 MiB per lane, 2^17 work
    ];
    for (const [ln, r, p, below] of cases) assert.equal(belowMinimumCost(passwords, scrypt(ln, r, p)), below, `ln=${ln},r=${r},p=${p}`);
  });

  it("counts scrypt with OWASP's work spread over many small lanes as below: 8 MiB per lane at least", () => {
    // Only reachable where the operator raised the bound on p (default 4).
    const wide = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 }, limits: { scryptMaxP: 64 } });
    assert.equal(belowMinimumCost(wide, scrypt(13, 8, 10)), false, "OWASP's N=2^13, r=8, p=10");
    assert.equal(belowMinimumCost(wide, scrypt(12, 8, 20)), true, "the same work in 4 MiB lanes");
    assert.equal(belowMinimumCost(wide, scrypt(13, 8, 9)), true, "8 MiB lanes, less work");
  });

  it("leaves fast schemes (weak on their own account), policy argon2id and refused hashes out", async () => {
    assert.equal(belowMinimumCost(passwords, createHash("md5").update("x").digest("hex")), false);
    assert.equal(belowMinimumCost(passwords, await passwords.hash("a fine passphrase")), false);
    assert.equal(belowMinimumCost(passwords, "$2b$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"), false);
    assert.equal(belowMinimumCost(passwords, "not a hash"), false);
  });

  it("counts argon2 below the policy's minimum as below, as PasswordContext.belowMinimumCost does", async () => {
    const cheap = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
    assert.equal(belowMinimumCost(passwords, await cheap.hash("a fine passphrase")), true);
  });
  it("counts argon2i and argon2 version 0x10 (also an omitted version) at the policy's m and t as below, as needsRehash does; argon2id 1.3 and a wrap's outer argon2id at it not", () => {
    const phc = (head: string): string => `${head}m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY`;
    const hashes = ["$argon2i$v=19$", "$argon2i$v=16$", "$argon2id$v=16$", "$argon2id$", "$argon2id$v=19$", "$bulwark-wrap$v=1$md5$$argon2id$v=19$"].map(phc);
    assert.deepEqual(hashes.map((h) => belowMinimumCost(passwords, h)), [true, true, true, true, false, false]);
    assert.deepEqual(hashes.map((h) => passwords.belowMinimumCost(h)), [true, true, true, true, false, false]);
    assert.deepEqual(hashes.slice(0, 5).map((h) => passwords.needsRehash(h)), [true, true, true, true, false]);
  });
});
