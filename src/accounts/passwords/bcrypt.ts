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
// bcrypt's base64: standard base64's bit order over its own alphabet (OpenBSD bcrypt.c Base64Code).
const BCRYPT64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// `$2b$NN$` then 22 salt characters: 132 bits for the salt's 16 bytes, the last character's low 4 bits spare.
const SALT_START = 7;
const SALT_END = 29;

interface BcryptParams {
  version: string;
  cost: number;
}

/**
 * The 16 salt bytes of a bcrypt hash (its shape already checked), decoded as OpenBSD's decode_base64 and PHP's
 * crypt_blowfish BF_decode do: the 4 spare bits of the 22nd character are ignored.
 *
 * @example
 * bcryptSaltBytes("$2b$04$abcdefghijklmnopqrstuv…").equals(bcryptSaltBytes("$2b$04$abcdefghijklmnopqrstuu…")) // true
 */
export function bcryptSaltBytes(hash: string): Buffer {
  const text = Array.from(hash.slice(SALT_START, SALT_END), (c) => B64[BCRYPT64.indexOf(c)]).join("");
  // Node's base64 decoder drops the bits past the last whole byte, as bcrypt's own decoder does.
  return Buffer.from(text, "base64");
}

/**
 * `hash` with its salt's 22nd character's spare bits cleared. OpenBSD (decode_base64) and crypt_blowfish (PHP, glibc's
 * libxcrypt) decode 16 bytes and ignore those bits; passlib clears them (with a warning) and verifies, so a table that
 * passlib checked can hold such salts (a generator that drew 22 random characters). @node-rs/bcrypt refuses the salt and
 * never verifies the hash, which locked the owner of such an imported hash out without a word. The 16 bytes, hence the
 * computation, are unchanged. (OpenBSD and PHP compare the whole string they write back, salt re-encoded, so such a
 * hash never verified there; the checksum's spare bits, which no encoder sets, are left as they are.)
 */
function withCanonicalSalt(hash: string): string {
  const last = BCRYPT64.indexOf(hash[SALT_END - 1]!);
  return `${hash.slice(0, SALT_END - 1)}${BCRYPT64[last & 0x30]}${hash.slice(SALT_END)}`;
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
        return bcryptVerify(password, withCanonicalSalt(hash));
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
