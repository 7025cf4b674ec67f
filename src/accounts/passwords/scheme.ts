// The contract every password-hash family implements, and a builder for the "fast" legacy
// families whose verify is "recompute the legacy result from the settings, compare".
import { constantTimeEqualString } from "../../crypto/constant-time.ts";
import type { Argon2Work } from "./argon2.ts";
import type { HashLimits } from "./limits.ts";

/** Scheme ids: part of the CLI contract (`bulwark hash identify`) and of the census. */
export type SchemeId =
  | "argon2id" | "argon2i" | "bcrypt" | "scrypt"
  | "drupal7" | "phpass" | "drupal7-wrapped-md5"
  | "md5-crypt" | "sha256-crypt" | "sha512-crypt"
  | "pbkdf2-sha256" | "pbkdf2-sha512" | "django-pbkdf2-sha256" | "django-pbkdf2-sha1"
  | "ssha" | "ssha256" | "ssha512"
  | "md5" | "sha1" | "sha256" | "sha512"
  | "salted-digest" | "bulwark-wrapped";

/** Every scheme id the table knows, in identification order. */
export const SCHEME_IDS: readonly SchemeId[] = [
  "bulwark-wrapped", "argon2id", "argon2i", "bcrypt", "scrypt", "drupal7", "phpass", "drupal7-wrapped-md5",
  "md5-crypt", "sha256-crypt", "sha512-crypt", "pbkdf2-sha256", "pbkdf2-sha512", "django-pbkdf2-sha256",
  "django-pbkdf2-sha1", "ssha", "ssha256", "ssha512", "salted-digest", "md5", "sha1", "sha256", "sha512",
];

/** What the census reports for one hash: its scheme and its cost parameters as text. */
export interface HashDescription {
  scheme: SchemeId;
  params: string;
}

/** The policy a scheme's needsRehash compares against (the context's default argon2id). */
export interface RehashPolicy {
  defaultScheme: SchemeId;
  minimum: { memoryCost: number; timeCost: number; parallelism: number };
}

/**
 * A fast legacy hash split into its clear settings (salt, parameters: the hash minus its digest)
 * and the legacy result the old system compared. Wrap-migration keeps `settings` in clear and
 * stores argon2id over `result`.
 */
export interface LegacyParts {
  settings: string;
  result: string;
}

export interface LegacyWrap {
  /** Validates the hash (bounds included) and splits it. Throws UnsupportedHashError. */
  split(hash: string): LegacyParts;
  /** Recomputes the legacy result for `password` from validated `settings`. */
  derive(password: string, settings: string): Promise<string>;
  /** Validates `settings` (bounds included) and returns the census parameters. Throws UnsupportedHashError. */
  params(settings: string): string;
  /** The scheme's own password bound in UTF-8 bytes, when its cost grows with the length (see PasswordScheme). */
  readonly maxPasswordBytes?: number;
}

export interface PasswordScheme {
  readonly id: SchemeId;
  /** Present exactly for fast legacy schemes: wrap-migration lifts them into argon2id. */
  readonly wrap?: LegacyWrap;
  /** Cheap shape test ("is this mine?"); a true answer does not mean the hash is within bounds. */
  identify(hash: string): boolean;
  /** Validates format and bounds, returning the parameters. Throws UnsupportedHashError. */
  parse(hash: string): unknown;
  /** True when `password` matches. Throws UnsupportedHashError for a hash parse() refuses. */
  verify(password: string, hash: string): Promise<boolean>;
  /** True when the hash should be replaced by a default-scheme hash at the next login. */
  needsRehash(hash: string, policy: RehashPolicy): boolean;
  describe(hash: string): HashDescription;
  /**
   * The longest password, in UTF-8 bytes, this scheme verifies against `hash`, declared by schemes
   * whose cost is rounds × length (phpass, Drupal 7, sha-crypt); a wrapped hash answers its inner
   * scheme's bound. The context answers "no match" for a longer password without running the
   * scheme. Absent: the context's maxPasswordBytes. Throws UnsupportedHashError when it must
   * parse the hash to answer and cannot.
   */
  maxPasswordBytes?(hash: string): number;
  /**
   * The UTF-8 bytes of a password the scheme reads, for a scheme that ignores the rest (bcrypt: 72). A password of
   * that length or longer matches on its prefix alone (bcrypt's cut at 72 also drops the closing NUL it keys on, so
   * 72 bytes key like any longer password sharing them): it is not known to be the owner's, never used to rehash.
   */
  readonly readsPasswordBytes?: number;
  /**
   * The argon2 a verify of `hash` runs (parameters, variant, version), for schemes that run argon2 (argon2id, argon2i,
   * and the outer layer of a wrapped hash): what the context compares with a dummy verify's work and with the policy's
   * minimum (belowMinimumCost). Throws UnsupportedHashError.
   */
  argon2Params?(hash: string): Argon2Work;
}

/** What a family supplies to become a fast, wrappable PasswordScheme. */
export interface FastSchemeSpec {
  id: SchemeId;
  identify(hash: string): boolean;
  split(hash: string): LegacyParts;
  derive(password: string, settings: string): Promise<string>;
  /** Census parameters, from validated settings. */
  params(settings: string): string;
  /** Password bound in UTF-8 bytes for a family whose loop costs rounds × length; absent: the global one. */
  maxPasswordBytes?: number;
}

/**
 * Builds a scheme whose verify recomputes the legacy result and compares it in constant time.
 *
 * @example
 * export const md5Scheme = fastScheme({ id: "md5", identify, split, derive, params: () => "" });
 */
export function fastScheme(spec: FastSchemeSpec): PasswordScheme {
  const bound = spec.maxPasswordBytes;
  return {
    id: spec.id,
    wrap: { split: spec.split, derive: spec.derive, params: spec.params, maxPasswordBytes: bound },
    maxPasswordBytes: bound === undefined ? undefined : () => bound,
    identify: spec.identify,
    parse: (hash: string) => spec.split(hash),
    async verify(password: string, hash: string): Promise<boolean> {
      const { settings, result } = spec.split(hash);
      const derived = await spec.derive(password, settings);
      return constantTimeEqualString(derived, result);
    },
    needsRehash(hash: string, policy: RehashPolicy): boolean {
      spec.split(hash);
      return policy.defaultScheme !== spec.id;
    },
    describe(hash: string): HashDescription {
      return { scheme: spec.id, params: spec.params(spec.split(hash).settings) };
    },
  } satisfies PasswordScheme;
}

/** Every family file exports a factory taking the limits it must enforce. */
export type SchemeFactory = (limits: HashLimits) => PasswordScheme[];
