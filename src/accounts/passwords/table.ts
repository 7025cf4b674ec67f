// The scheme table: every family, in the order "is this mine?" is asked, plus lookup by id.
// Identification is by unambiguous prefixes first and bare hex lengths last.
import { argon2Schemes } from "./argon2.ts";
import { bcryptSchemes } from "./bcrypt.ts";
import { md5CryptSchemes } from "./crypt-md5.ts";
import { shaCryptSchemes } from "./crypt-sha2.ts";
import { digestSchemes } from "./digest.ts";
import { UnsupportedHashError } from "./errors.ts";
import { ldapSchemes } from "./ldap.ts";
import { checkHashText, type HashLimits } from "./limits.ts";
import { pbkdf2Schemes } from "./pbkdf2.ts";
import { phpassSchemes } from "./phpass.ts";
import { saltedSchemes } from "./salted.ts";
import type { PasswordScheme, SchemeId } from "./scheme.ts";
import { scryptSchemes } from "./scrypt.ts";
import { wrappedScheme } from "./wrap.ts";

export interface SchemeTable {
  readonly limits: HashLimits;
  readonly schemes: readonly PasswordScheme[];
  get(id: SchemeId): PasswordScheme | undefined;
  /** The scheme whose format `hash` has (bounds not yet checked). Throws UnsupportedHashError. */
  find(hash: string): PasswordScheme;
}

/**
 * Builds the table of every supported scheme, enforcing `limits`.
 *
 * @example
 * const table = createSchemeTable(DEFAULT_HASH_LIMITS);
 * table.find("$2b$10$...").id // "bcrypt"
 */
export function createSchemeTable(limits: HashLimits): SchemeTable {
  const byId = new Map<SchemeId, PasswordScheme>();
  const get = (id: SchemeId): PasswordScheme | undefined => byId.get(id);
  const schemes: PasswordScheme[] = [
    wrappedScheme(get, limits),
    ...argon2Schemes(limits),
    ...bcryptSchemes(limits),
    ...scryptSchemes(limits),
    ...phpassSchemes(limits),
    ...md5CryptSchemes(limits),
    ...shaCryptSchemes(limits),
    ...pbkdf2Schemes(limits),
    ...ldapSchemes(limits),
    ...saltedSchemes(limits),
    ...digestSchemes(limits),
  ];
  for (const s of schemes) byId.set(s.id, s);
  return {
    limits,
    schemes,
    get,
    find(hash: string): PasswordScheme {
      checkHashText(hash, limits);
      const scheme = schemes.find((s) => s.identify(hash));
      if (!scheme) throw new UnsupportedHashError("the format is not one we recognise");
      return scheme;
    },
  };
}
