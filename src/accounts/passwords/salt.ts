// What a guess against a stored hash computes with besides the password (scheme, cost parameters, salt) as one
// canonical text: two hashes with the same key are tested by one computation per guess, slow scheme or not. The census
// counts rows whose key another row shares (a legacy system's fixed salt, a site-wide pepper stored as the salt, a
// bcrypt salt reused by a buggy library).
import { b64NoPadLength } from "./encoding.ts";
import type { SchemeTable } from "./table.ts";

const SHA_CRYPT_SETTINGS = /^\$([56])\$(?:rounds=([0-9]+)\$)?(.*)$/;
// Drepper's specification: rounds when `rounds=` is absent.
const SHA_CRYPT_DEFAULT_ROUNDS = 5000;

/**
 * The inputs other than the password that a guess against `hash` computes with, as canonical text (the same
 * computation spelled two ways gives one key), or null for a hash without a salt (a bare digest, an empty crypt salt:
 * the census counts those as unsalted already). Never holds the digest; holds the salt, so it must not be printed.
 * Throws UnsupportedHashError for a hash the table refuses.
 *
 * - The scheme and its cost are part of the key: the same salt under md5-crypt and sha512-crypt, under bcrypt cost 10
 *   and 12, or under md5(salt+password) and sha256(salt+password) is two computations per guess.
 * - argon2: variant, version, m, t, p, the salt and the tag length (all enter argon2's H0).
 * - bcrypt: cost and the 22 salt characters; `$2a$`, `$2b$` and `$2y$` compute alike for every password under 256
 *   bytes, so they share a key.
 * - a fast scheme: its settings (the hash minus its digest, validated canonical by the scheme), sha-crypt's default
 *   rounds written out.
 * - a wrapped hash: both layers, the inner settings and the outer argon2id's parameters and salt. A guess costs an
 *   argon2id per distinct outer salt, and wrapLegacyHash draws a fresh one for each hash, so a shared inner salt saves
 *   a cracker only the cheap legacy step, not the argon2id per row: such rows share no key. Wraps that also share the
 *   outer salt (made elsewhere with a fixed one and imported) do.
 *
 * @example
 * saltKey("$1$a$…", table) === saltKey("$1$a$…(another checksum)", table) // true: one computation per guess
 */
export function saltKey(hash: string, table: SchemeTable): string | null {
  const scheme = table.find(hash);
  scheme.parse(hash);
  const cut = hash.lastIndexOf("$");
  switch (scheme.id) {
    case "argon2id":
    case "argon2i": {
      const w = scheme.argon2Params!(hash);
      const [salt, tag] = hash.split("$").slice(-2) as [string, string];
      return `${scheme.id}$v=${w.version},m=${w.memoryCost},t=${w.timeCost},p=${w.parallelism}$${salt}$${b64NoPadLength(tag)}`;
    }
    case "bcrypt":
      return `bcrypt$${Number(hash.slice(4, 6))}$${hash.slice(7, 29)}`;
    case "scrypt":
      // `$scrypt$ln=…,r=…,p=…$salt` (canonical decimals and base64, by parse) and the key length.
      return `${hash.slice(0, cut)}$${b64NoPadLength(hash.slice(cut + 1))}`;
    case "bulwark-wrapped":
      return `${hash.slice(0, cut)}$${b64NoPadLength(hash.slice(cut + 1))}`;
    default:
      break;
  }
  if (!scheme.wrap) throw new Error(`saltKey: no salt reader for the ${scheme.id} scheme`);
  return settingsSaltKey(scheme.id, scheme.wrap.split(hash).settings);
}

/**
 * saltKey of a fast (wrappable) scheme's hash from its settings alone (the hash minus its digest, as the scheme's
 * `wrap.split` gives them and a wrapped hash keeps its inner layer's): null when they hold no salt (a bare digest's
 * empty settings, an empty crypt(3) salt).
 *
 * @example
 * settingsSaltKey("md5-crypt", "$1$") // null
 */
export function settingsSaltKey(schemeId: string, settings: string): string | null {
  const sha = SHA_CRYPT_SETTINGS.exec(settings);
  if (schemeId === "md5-crypt") return settings === "$1$" ? null : `${schemeId}${settings}`;
  if (sha !== null && (schemeId === "sha256-crypt" || schemeId === "sha512-crypt")) {
    return sha[3] === "" ? null : `${schemeId}$${sha[2] === undefined ? SHA_CRYPT_DEFAULT_ROUNDS : Number(sha[2])}$${sha[3]}`;
  }
  // Bare digests have empty settings: no salt at all.
  return settings === "" ? null : `${schemeId}$${settings}`;
}
