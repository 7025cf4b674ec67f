// bcrypt ($2a$, $2b$, $2y$), verified by @node-rs/bcrypt after our own strict parse: the library
// accepts noncanonical spellings (e.g. "+4" costs) and costs up to 31, so it never sees a hash
// we have not bounded. Slow by design, so never wrapped; replaced by argon2id at the next login.
import { verify as bcryptVerify } from "@node-rs/bcrypt";
import { UnsupportedHashError } from "./errors.ts";
import { checkBound, type HashLimits } from "./limits.ts";
import type { HashDescription, PasswordScheme, RehashPolicy } from "./scheme.ts";

// $2x$ (the 2011 crypt_blowfish sign-extension bug) is refused: the library does not reproduce
// the buggy algorithm, so such hashes would never verify anyway.
const SHAPE = /^\$2([aby])\$([0-9]{2})\$[./A-Za-z0-9]{53}$/;

interface BcryptParams {
  version: string;
  cost: number;
}

/**
 * The bcrypt scheme. Note bcrypt reads only the first 72 UTF-8 bytes of a password (the cut can
 * fall inside a character) and stops at a NUL: that is the legacy system's behaviour when verifying
 * its hashes; new hashes are argon2id and never truncate, and the context never passes a NUL here.
 *
 * @example
 * const [bcrypt] = bcryptSchemes(DEFAULT_HASH_LIMITS);
 * await bcrypt.verify("password", "$2y$10$...") // true or false
 */
export function bcryptSchemes(limits: HashLimits): PasswordScheme[] {
  const parse = (hash: string): BcryptParams => {
    const m = SHAPE.exec(hash);
    if (!m) throw new UnsupportedHashError("malformed bcrypt hash (expected $2a$, $2b$ or $2y$, a two-digit cost and 53 characters)");
    const cost = Number(m[2]);
    // Each cost step doubles the work; a hostile cost 31 would pin a core for hours.
    checkBound("bcrypt cost", cost, limits.bcryptMinCost, limits.bcryptMaxCost);
    return { version: `2${m[1]}`, cost };
  };
  return [
    {
      id: "bcrypt",
      // The algorithm keys Blowfish with at most 72 bytes (OpenBSD bcrypt(3)); @node-rs/bcrypt cuts there too.
      readsPasswordBytes: 72,
      identify: (hash: string): boolean => /^\$2[abxy]\$/.test(hash),
      parse,
      async verify(password: string, hash: string): Promise<boolean> {
        parse(hash);
        return bcryptVerify(password, hash);
      },
      needsRehash(hash: string, policy: RehashPolicy): boolean {
        parse(hash);
        return policy.defaultScheme !== "bcrypt";
      },
      describe(hash: string): HashDescription {
        return { scheme: "bcrypt", params: `cost=${parse(hash).cost}` };
      },
    } satisfies PasswordScheme,
  ];
}
