// The password policy object (in the spirit of passlib's CryptContext): the scheme table, the
// default scheme (argon2id, OWASP parameters), minimum parameters, verify-and-rehash, dummy verify.
import type { RandomSource } from "../../lib/random.ts";
import { encodeB64NoPad } from "./encoding.ts";
import { argon2WorkBelowPolicy, hashArgon2id, verifyArgon2, type Argon2Params } from "./argon2.ts";
import { InvalidPasswordPolicyError, PasswordNotTextError, PasswordTooLongError, UnsupportedHashError } from "./errors.ts";
import { checkBound, resolveLimits, type HashLimits } from "./limits.ts";
import type { HashDescription, PasswordScheme, RehashPolicy, SchemeId } from "./scheme.ts";
import { createSchemeTable, type SchemeTable } from "./table.ts";
import { isWrappable, wrapLegacyHash } from "./wrap.ts";

/** OWASP Password Storage Cheat Sheet's argon2id profile: m=19 MiB, t=2, p=1. */
export const DEFAULT_ARGON2_PARAMS: Readonly<Argon2Params> = Object.freeze({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });

export interface PasswordContextOptions {
  /** Salts for new hashes come from here (the CSPRNG in production). */
  random: RandomSource;
  /** Parameters of new argon2id hashes; defaults to DEFAULT_ARGON2_PARAMS. */
  argon2?: Partial<Argon2Params>;
  /** argon2id hashes below these are rehashed at login; defaults to the `argon2` parameters. */
  minimum?: Partial<Pick<Argon2Params, "memoryCost" | "timeCost">>;
  /** Overrides of the bounds on stored hashes (see limits.ts). */
  limits?: Partial<HashLimits>;
}

export type VerifyAndRehashResult = { status: "invalid" } | { status: "valid" } | { status: "valid"; newHash: string };

export interface PasswordContext {
  readonly defaultScheme: "argon2id";
  readonly params: Readonly<Argon2Params>;
  readonly limits: Readonly<HashLimits>;
  readonly table: SchemeTable;
  /** The scheme of a supported, in-bounds hash. Throws UnsupportedHashError otherwise. */
  identify(hash: string): SchemeId;
  /** A new default-scheme (argon2id PHC) hash of `password`, exactly as received. Throws PasswordTooLongError, PasswordNotTextError (NUL, unpaired surrogate). */
  hash(password: string): Promise<string>;
  /**
   * True on a match. The password is compared exactly as received (ASVS 6.2.8), with one caveat
   * that is the legacy format's own behaviour: a bcrypt hash reads only the first 72 UTF-8 bytes
   * (the cut can fall mid-character), so any password sharing them matches; verifyAndRehash never
   * upgrades from such a password. False, without hashing, for a password holding
   * a NUL or an unpaired surrogate, or longer than the scheme's bound (maxPasswordBytes, or
   * legacyLoopMaxPasswordBytes for phpass, Drupal 7 and sha-crypt). Throws UnsupportedHashError
   * for an unsupported or out-of-bounds hash.
   */
  verify(password: string, hash: string): Promise<boolean>;
  /**
   * The longest password (UTF-8 bytes) that verify compares against `hash`: maxPasswordBytes, or the scheme's lower
   * bound (legacyLoopMaxPasswordBytes for phpass, Drupal 7 and sha-crypt). Throws UnsupportedHashError.
   */
  maxPasswordBytesFor(hash: string): number;
  /** True for any non-default scheme, wrapped hashes, and argon2id below the minimum. */
  needsRehash(hash: string): boolean;
  /**
   * Verifies and, when valid and needsRehash, returns a new default-scheme hash of exactly `password` — except
   * when the scheme may have read only part of it (bcrypt, 72 bytes or more): valid, but no new hash (see
   * readsPasswordBytes).
   */
  verifyAndRehash(password: string, hash: string): Promise<VerifyAndRehashResult>;
  /** Costs what verifying a default-scheme hash costs; always false (for unknown users). */
  dummyVerify(password: string): Promise<false>;
  /**
   * True when verifying `password` (or, without it, any password) against `hash` may cost less than dummyVerify,
   * so that a login must top it up with one (ASVS 6.3.8: a known account must not answer faster than an unknown
   * one). False only for a hash whose verify runs argon2 with at least the default memory and passes on at most its
   * lanes (argon2id, or a wrapped hash's outer layer); bcrypt, scrypt, PBKDF2 and the crypt loops are true, their
   * cost not being comparable with argon2id's in general. True for a hash the policy refuses (refused without
   * hashing), and for a `password` over the hash's own bound (maxPasswordBytesFor: a wrapped phpass, Drupal 7 or
   * sha-crypt hash keeps its inner 512 bytes), which verify refuses without hashing. Never throws, never hashes.
   */
  cheaperThanDefault(hash: string, password?: string): boolean;
  describe(hash: string): HashDescription;
  isWrappable(hash: string): boolean;
  /**
   * True when the argon2 a verify of `hash` runs — argon2id, argon2i, or the outer layer of a wrapped hash — is not
   * argon2id, is version 0x10 (also when the version is omitted), or costs less memory or fewer passes than the
   * policy minimum: what makes needsRehash upgrade an argon2 hash at login (ASVS 11.4.2), short salts and tags
   * apart. Such a hash cracks far faster than the policy intends, yet no job can lift it without the password
   * (wrap-migration only wraps fast legacy schemes); the owner's next login rehashes it. False for every other
   * scheme and for a hash the policy refuses. Never throws, never hashes.
   */
  belowMinimumCost(hash: string): boolean;
  /** argon2id over a fast legacy hash's result; idempotent (see wrap.ts). */
  wrapLegacyHash(hash: string): Promise<string>;
}

/**
 * Creates the password policy object.
 *
 * @example
 * const passwords = createPasswordContext({ random: systemRandom });
 * const stored = await passwords.hash("correct horse battery staple");
 * await passwords.verifyAndRehash("correct horse battery staple", legacyMd5); // { status: "valid", newHash }
 */
/**
 * Whether `password` can be stored exactly as typed; what is not is refused by hash, never matched by verify
 * and refused by the new-password policy (ASVS 6.2.8: verified exactly as received, so nothing that had to be
 * altered can match):
 * - unpaired surrogates: UTF-8 encoding would turn each into U+FFFD, so "\ud800" and "\udfff" would hash alike;
 * - NUL: HMAC zero-pads short keys, so "password\0" is the key "password" to PBKDF2 and scrypt, and bcrypt
 *   (like every crypt(3)) stops at the first NUL; no legacy system could store one.
 *
 * @example
 * isPasswordText("correct horse") // true
 * isPasswordText("\ud800 lone") // false
 */
export function isPasswordText(password: string): boolean {
  return password.isWellFormed() && !password.includes("\0");
}

export function createPasswordContext(options: PasswordContextOptions): PasswordContext {
  const limits = resolveLimits(options.limits);
  const params: Argon2Params = { ...DEFAULT_ARGON2_PARAMS, ...options.argon2 };
  const minimum = { memoryCost: params.memoryCost, timeCost: params.timeCost, ...options.minimum };
  try {
    // The default must be a hash we would ourselves accept, and at or above the minimum.
    checkBound("default argon2 p", params.parallelism, 1, limits.argon2MaxParallelism);
    checkBound("default argon2 m (KiB)", params.memoryCost, Math.max(8 * params.parallelism, minimum.memoryCost), limits.argon2MaxMemoryKiB);
    checkBound("default argon2 t", params.timeCost, Math.max(1, minimum.timeCost), limits.argon2MaxTime);
  } catch (error) {
    throw new InvalidPasswordPolicyError(`invalid password policy: ${(error as Error).message}`, { cause: error });
  }
  const policy: RehashPolicy = { defaultScheme: "argon2id", minimum: { ...minimum, parallelism: params.parallelism } };
  const table = createSchemeTable(limits);
  const random = options.random;

  const resolve = (hash: string): PasswordScheme => {
    const scheme = table.find(hash);
    scheme.parse(hash);
    return scheme;
  };
  // Not text we can store exactly as typed (isPasswordText): refused by hash, never matched by verify.
  const notText = (password: string): boolean => !isPasswordText(password);
  // Over-long passwords: hashing refuses them, verifying answers "no match" without any hashing (no
  // stored password can be that long). Schemes whose loop costs rounds × length declare a lower
  // bound (phpass, Drupal 7, sha-crypt: legacyLoopMaxPasswordBytes), wrapped ones their inner one.
  const boundFor = (scheme: PasswordScheme, stored: string): number =>
    Math.min(limits.maxPasswordBytes, scheme.maxPasswordBytes?.(stored) ?? limits.maxPasswordBytes);
  const unusable = (password: string, maxBytes: number): boolean => notText(password) || Buffer.byteLength(password, "utf8") > maxBytes;
  const hash = async (password: string): Promise<string> => {
    if (notText(password)) throw new PasswordNotTextError();
    if (Buffer.byteLength(password, "utf8") > limits.maxPasswordBytes) throw new PasswordTooLongError(limits.maxPasswordBytes);
    return hashArgon2id(password, params, random.bytes(16));
  };
  // async so that a refused hash is a rejected promise, never a synchronous throw.
  const verify = async (password: string, stored: string): Promise<boolean> => {
    const scheme = table.find(stored);
    if (unusable(password, boundFor(scheme, stored))) {
      scheme.parse(stored);
      return false;
    }
    return scheme.verify(password, stored);
  };
  const needsRehash = (stored: string): boolean => table.find(stored).needsRehash(stored, policy);
  const cheaperThanDefault = (stored: string, password?: string): boolean => {
    try {
      const scheme = table.find(stored);
      // verify answers "no match" at once past the scheme's own bound, where dummyVerify hashes up to
      // maxPasswordBytes: without a top-up, a wrapped legacy hash would answer a 600-byte password before an
      // unknown account does. (Past maxPasswordBytes the dummy verify does no hashing either.)
      if (password !== undefined && Buffer.byteLength(password, "utf8") > boundFor(scheme, stored)) return true;
      const work = scheme.argon2Params?.(stored);
      // Fewer lanes than the dummy's would only make it slower; more run side by side on the thread pool.
      return work === undefined || work.memoryCost < params.memoryCost || work.timeCost < params.timeCost || work.parallelism > params.parallelism;
    } catch (error) {
      if (error instanceof UnsupportedHashError) return true;
      throw error;
    }
  };

  // needsRehash's judgement of the argon2 a verify runs (variant, version, memory, passes), so that what login upgrades
  // as below the policy the census and migrate-hashes count so too: an argon2i or a 0x10 hash at the policy's m and t
  // was counted strong. (A short salt or tag, which needsRehash also upgrades, costs a guesser no less work.)
  const belowMinimumCost = (stored: string): boolean => {
    try {
      const work = table.find(stored).argon2Params?.(stored);
      return work !== undefined && argon2WorkBelowPolicy(work, policy);
    } catch (error) {
      if (error instanceof UnsupportedHashError) return false;
      throw error;
    }
  };

  return {
    defaultScheme: "argon2id",
    params: Object.freeze({ ...params }),
    limits: Object.freeze({ ...limits }),
    table,
    identify: (stored) => resolve(stored).id,
    hash,
    verify,
    maxPasswordBytesFor: (stored) => boundFor(resolve(stored), stored),
    needsRehash,
    async verifyAndRehash(password, stored) {
      const scheme = table.find(stored);
      if (!(await verify(password, stored))) return { status: "invalid" };
      // Always towards the default scheme, never to another legacy one (passlib's verify_and_update).
      if (!scheme.needsRehash(stored, policy)) return { status: "valid" };
      // bcrypt matched only the first 72 bytes: the tail may be anyone's. Storing what was typed would let a password
      // that shares the owner's prefix replace the owner's own; the bcrypt hash stays until a change or a reset.
      // Exactly 72 bytes included: bcrypt keys on the password and its closing NUL, and the cut at 72 drops that
      // NUL, so a 72-byte password is keyed like every longer one that starts with it.
      if (scheme.readsPasswordBytes !== undefined && Buffer.byteLength(password, "utf8") >= scheme.readsPasswordBytes) return { status: "valid" };
      return { status: "valid", newHash: await hash(password) };
    },
    async dummyVerify(password) {
      // Mirrors verify of a default-scheme hash exactly (argon2id has no lower bound of its own),
      // including the no-hashing answer for over-long or malformed passwords.
      if (unusable(password, limits.maxPasswordBytes)) return false;
      // A fresh random salt and tag with the default parameters: the same parse and argon2id work
      // as a real verify, and a match is impossible (2^-256).
      const phc = `$argon2id$v=19$m=${params.memoryCost},t=${params.timeCost},p=${params.parallelism}$${encodeB64NoPad(random.bytes(16))}$${encodeB64NoPad(random.bytes(32))}`;
      await verifyArgon2(phc, password, limits);
      return false;
    },
    cheaperThanDefault,
    describe: (stored) => table.find(stored).describe(stored),
    isWrappable: (stored) => isWrappable(stored, table),
    belowMinimumCost,
    wrapLegacyHash: (stored) => wrapLegacyHash(stored, { table, argon2: params, random }),
  } satisfies PasswordContext;
}
