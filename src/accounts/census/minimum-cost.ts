// The minimum costs below which a slow (never wrapped) hash is weak (ASVS 11.4.2): argon2 by the policy's own
// minimum, bcrypt and scrypt by OWASP's Password Storage Cheat Sheet. What the census and migrate-hashes call
// `belowMinimum`: weak, and lifted only by the owner's next sign-in (the job cannot rehash without the password).
import type { PasswordContext } from "../passwords/index.ts";

/** OWASP Password Storage Cheat Sheet, bcrypt: "use a work factor of 10 or more". */
export const BCRYPT_MIN_COST = 10;

/**
 * scrypt's least work N·r·p. OWASP Password Storage Cheat Sheet, scrypt: "a minimum CPU/memory cost parameter of
 * (2^17), a minimum block size of 8 (1024 bytes), and a parallelization parameter of 1", or one of its equivalent
 * configurations N=2^16 p=2, N=2^15 p=3, N=2^14 p=5, N=2^13 p=10 (all r=8). The least work among them is
 * 2^14·8·5 = 2^13·8·10 = 655,360; passlib's default ln=16, r=8, p=1 (524,288) is below it.
 */
export const SCRYPT_MIN_WORK = 2 ** 14 * 8 * 5;

/**
 * scrypt's least memory per lane, 128·N·r bytes: 8 MiB, the least of OWASP's equivalent configurations (N=2^13,
 * r=8). Work alone could be met by many cheap lanes (N=2, p large), which a GPU runs side by side in little memory.
 */
export const SCRYPT_MIN_MEMORY = 128 * 2 ** 13 * 8;

const BCRYPT_PARAMS = /^cost=([0-9]{1,3})$/;
const SCRYPT_PARAMS = /^ln=([0-9]{1,3}),r=([0-9]{1,6}),p=([0-9]{1,6})$/;

/**
 * True when `hash` is a slow hash below its minimum cost: argon2 (plain, or a wrapped hash's outer layer) below the
 * policy's minimum (PasswordContext.belowMinimumCost), bcrypt below cost 10, scrypt below OWASP's work or memory.
 * False for fast (wrappable) schemes, which are weak on their own account, and for a hash the policy refuses.
 * Never hashes. Parameters it cannot read from the scheme's description count as below (fails closed).
 *
 * @example
 * belowMinimumCost(passwords, "$2b$04$…") // true: bcrypt cost 4
 * belowMinimumCost(passwords, "$scrypt$ln=17,r=8,p=1$…$…") // false: OWASP's minimum
 */
export function belowMinimumCost(passwords: PasswordContext, hash: string): boolean {
  if (passwords.belowMinimumCost(hash)) return true;
  let scheme: string;
  let params: string;
  try {
    ({ scheme, params } = passwords.describe(hash));
  } catch {
    // A hash the policy refuses is counted as unsupported, never verified: not "below" anything.
    return false;
  }
  if (scheme === "bcrypt") {
    const m = BCRYPT_PARAMS.exec(params);
    return m === null || Number(m[1]) < BCRYPT_MIN_COST;
  }
  if (scheme === "scrypt") {
    const m = SCRYPT_PARAMS.exec(params);
    if (m === null) return true;
    const [n, r, p] = [2 ** Number(m[1]), Number(m[2]), Number(m[3])];
    return n * r * p < SCRYPT_MIN_WORK || 128 * n * r < SCRYPT_MIN_MEMORY;
  }
  return false;
}
