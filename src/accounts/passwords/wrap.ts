// Wrap-migration: a fast legacy hash rewritten as argon2id over the legacy result, with the
// legacy settings (salt, parameters) kept in clear so the result can be recomputed at login:
//   $bulwark-wrap$v=1$<inner scheme id>$<legacy settings>$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>
// <legacy settings> is the legacy hash minus its digest (may be empty, may contain "$"); the
// argon2id input is the UTF-8 legacy result (crypt checksum, or lower-case hex of the digest).
import { hashArgon2id, parseArgon2, verifyArgon2, type Argon2Params, type Argon2Work } from "./argon2.ts";
import { UnsupportedHashError } from "./errors.ts";
import type { HashLimits } from "./limits.ts";
import type { HashDescription, PasswordScheme, RehashPolicy, SchemeId } from "./scheme.ts";
import type { SchemeTable } from "./table.ts";
import type { RandomSource } from "../../lib/random.ts";

export const WRAP_PREFIX = "$bulwark-wrap$v=1$";
// The PHC tail is matched at the end; its fields never contain "$argon2id$", so the greedy
// settings group ends exactly where the argon2id string starts.
const SHAPE = /^\$bulwark-wrap\$v=1\$([a-z0-9-]{1,32})\$(.*)\$(argon2id\$v=19\$m=[0-9]{1,16},t=[0-9]{1,16},p=[0-9]{1,16}\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+)$/;

interface ParsedWrapped {
  inner: PasswordScheme;
  settings: string;
  phc: string;
  innerParams: string;
}

/**
 * The `bulwark-wrapped` scheme: verifies by recomputing the inner legacy result, then argon2id.
 *
 * @example
 * const scheme = wrappedScheme((id) => table.get(id), DEFAULT_HASH_LIMITS);
 */
export function wrappedScheme(lookup: (id: SchemeId) => PasswordScheme | undefined, limits: HashLimits): PasswordScheme {
  const parse = (hash: string): ParsedWrapped => {
    const m = SHAPE.exec(hash);
    if (!m) throw new UnsupportedHashError("malformed bulwark-wrapped hash");
    const inner = lookup(m[1] as SchemeId);
    if (!inner?.wrap) throw new UnsupportedHashError(`bulwark-wrapped inner scheme "${m[1]}" is not a wrappable scheme`);
    const phc = `$${m[3]}`;
    // Both layers are bounded before any hashing: the inner settings (rounds, counts) and argon2id.
    const innerParams = inner.wrap.params(m[2]!);
    parseArgon2(phc, limits);
    return { inner, settings: m[2]!, phc, innerParams };
  };
  return {
    id: "bulwark-wrapped",
    identify: (hash: string): boolean => hash.startsWith(WRAP_PREFIX),
    parse,
    // The inner scheme's bound: a wrapped sha512-crypt still runs its rounds × length loop.
    maxPasswordBytes: (hash: string): number => parse(hash).inner.wrap!.maxPasswordBytes ?? limits.maxPasswordBytes,
    // The outer argon2id (1.3, by SHAPE): what a verify runs besides the inner legacy derivation.
    argon2Params(hash: string): Argon2Work {
      const { variant, version, memoryCost, timeCost, parallelism } = parseArgon2(parse(hash).phc, limits);
      return { variant, version, memoryCost, timeCost, parallelism };
    },
    async verify(password: string, hash: string): Promise<boolean> {
      const w = parse(hash);
      const legacy = await w.inner.wrap!.derive(password, w.settings);
      return verifyArgon2(w.phc, Buffer.from(legacy, "utf8"), limits);
    },
    // A wrapped hash is a migration state, never the target: plain argon2id at the next login.
    needsRehash(hash: string, _policy: RehashPolicy): boolean {
      parse(hash);
      return true;
    },
    describe(hash: string): HashDescription {
      const w = parse(hash);
      const a = parseArgon2(w.phc, limits);
      const inner = w.innerParams === "" ? w.inner.id : `${w.inner.id}(${w.innerParams})`;
      return { scheme: "bulwark-wrapped", params: `inner=${inner},m=${a.memoryCost},t=${a.timeCost},p=${a.parallelism}` };
    },
  } satisfies PasswordScheme;
}

export interface WrapOptions {
  table: SchemeTable;
  argon2: Argon2Params;
  random: RandomSource;
}

/**
 * True when `hash` is a supported fast legacy hash that wrap-migration would rewrite (false for
 * argon2, bcrypt, scrypt, already-wrapped and unsupported hashes).
 *
 * @example
 * isWrappable("5f4dcc3b5aa765d61d8327deb882cf99", table) // true
 */
export function isWrappable(hash: string, table: SchemeTable): boolean {
  try {
    const scheme = table.find(hash);
    if (!scheme.wrap) return false;
    scheme.parse(hash);
    return true;
  } catch (error) {
    if (error instanceof UnsupportedHashError) return false;
    throw error;
  }
}

/**
 * Rewrites a fast legacy hash as argon2id over its legacy result. Idempotent: wrapped hashes and
 * slow schemes (argon2, bcrypt, scrypt) come back unchanged. Throws UnsupportedHashError for a
 * hash the table refuses.
 *
 * @example
 * await wrapLegacyHash("5f4dcc3b5aa765d61d8327deb882cf99", { table, argon2, random })
 * // "$bulwark-wrap$v=1$md5$$argon2id$v=19$m=19456,t=2,p=1$…$…"
 */
export async function wrapLegacyHash(hash: string, options: WrapOptions): Promise<string> {
  const scheme = options.table.find(hash);
  if (!scheme.wrap) {
    scheme.parse(hash);
    return hash;
  }
  const { settings, result } = scheme.wrap.split(hash);
  const phc = await hashArgon2id(Buffer.from(result, "utf8"), options.argon2, options.random.bytes(16));
  const wrapped = `${WRAP_PREFIX}${scheme.id}$${settings}${phc}`;
  // The stored form must be one we accept later (length bound included); refuse it now otherwise.
  options.table.find(wrapped).parse(wrapped);
  return wrapped;
}
