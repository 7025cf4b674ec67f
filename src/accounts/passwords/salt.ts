// What a guess against a stored hash computes with besides the password, as one canonical text per computation: two
// hashes with the same key are tested by one computation per guess, slow scheme or not, however each was written. The
// census counts rows whose key another row shares (a legacy system's fixed salt, a site-wide pepper stored as the salt,
// a bcrypt salt reused by a buggy library, two dumps of one system merged).
import { bcryptSaltBytes } from "./bcrypt.ts";
import { DIGEST_BYTES, ITOA64, decodeAB64, type DigestName } from "./encoding.ts";
import type { SchemeTable } from "./table.ts";
import { WRAP_PREFIX } from "./wrap.ts";

/** A computation as canonical text, and whether a salt is part of it (a bare digest, an empty crypt salt: none). */
interface Computation {
  key: string;
  salted: boolean;
}

const SHA_CRYPT_SETTINGS = /^\$([56])\$(?:rounds=([0-9]+)\$)?(.*)$/;
// Drepper's specification: rounds when `rounds=` is absent.
const SHA_CRYPT_DEFAULT_ROUNDS = 5000;
const PHPASS_SETTINGS = /^(U?)\$([SPH])\$(.)(.{8})$/;
const PBKDF2_SETTINGS = /^(\$pbkdf2-|pbkdf2_)(sha1|sha256|sha512)\$([0-9]+)\$(.*)$/;
const SALTED_SETTINGS = /^\$salted-digest\$a=(md5|sha1|sha256|sha512),l=(salt\+password|password\+salt),e=(?:hex|base64)\$(.*)$/;
const LDAP_DIGESTS: Readonly<Record<string, DigestName>> = { "{SSHA}": "sha1", "{SSHA256}": "sha256", "{SSHA512}": "sha512" };
const SCRYPT_SHAPE = /^\$scrypt\$ln=([0-9]+),r=([0-9]+),p=([0-9]+)\$([^$]*)\$([^$]*)$/;

/** The salt as a computation sees it: its bytes, as hex (a salt written in base64, hex or crypt characters alike). */
const hex = (salt: Uint8Array): string => Buffer.from(salt).toString("hex");
const salted = (key: string, salt: Uint8Array): Computation => ({ key: `${key};salt=${hex(salt)}`, salted: salt.length > 0 });

/**
 * The inputs other than the password that a guess against `hash` computes with, as canonical text (one computation,
 * however written, gives one key), or null for a hash without a salt (a bare digest, an empty crypt salt: the census
 * counts those as unsalted already). Never holds the digest; holds the salt, so it must not be printed. Throws
 * UnsupportedHashError for a hash the table refuses.
 *
 * The key names the computation, not the format: a family (a digest of a concatenation, the phpass loop, PBKDF2-HMAC,
 * crypt's loops, bcrypt, argon2, scrypt), its algorithm, cost and construction, and the salt's bytes as hex.
 * - Part of the key: the algorithm and the cost, the construction (salt before or after the password), the output
 *   length where the scheme lets it vary: the same salt under md5-crypt and sha512-crypt, bcrypt cost 10 and 12, or
 *   md5(salt+password) and sha256(salt+password) is two computations per guess.
 * - Not part of it: how the hash is written. phpass `$P$` and phpBB `$H$` (one MD5 loop); a salted digest in hex or
 *   base64; LDAP `{SSHA}` and the salted digest sha1(password+salt); passlib's `$pbkdf2-sha256$` and Django's
 *   `pbkdf2_sha256$` (one PBKDF2-HMAC-SHA256, the digest's length); sha-crypt's default rounds written out or not;
 *   bcrypt `$2a$`, `$2b$`, `$2y$` (alike for every password under 256 bytes) and the spare bits of its salt's last
 *   character; argon2's omitted version (1.0).
 * - argon2: variant, version, m, t, p, the salt and the tag length (all enter argon2's H0).
 * - a wrapped hash: both layers, the inner computation's key and the outer argon2id's. A guess costs an argon2id per
 *   distinct outer salt, and wrapLegacyHash draws a fresh one for each hash, so a shared inner salt saves a cracker only
 *   the cheap legacy step, not the argon2id per row: such rows share no key. Wraps that also share the outer salt (made
 *   elsewhere with a fixed one and imported) do, inner salt or none.
 *
 * @example
 * saltKey("$1$a$…", table) === saltKey("$1$a$…(another checksum)", table) // true: one computation per guess
 * saltKey("$P$9pepper12…", table) === saltKey("$H$9pepper12…", table) // true: one MD5 loop
 */
export function saltKey(hash: string, table: SchemeTable): string | null {
  const scheme = table.find(hash);
  scheme.parse(hash);
  let c: Computation;
  switch (scheme.id) {
    case "argon2id":
    case "argon2i":
      c = argon2Computation(hash, table);
      break;
    case "bcrypt":
      c = salted(`bcrypt;cost=${Number(hash.slice(4, 6))}`, bcryptSaltBytes(hash));
      break;
    case "scrypt": {
      const [, ln, r, p, salt, key] = SCRYPT_SHAPE.exec(hash)!;
      c = salted(`scrypt;ln=${Number(ln)};r=${Number(r)};p=${Number(p)};length=${Buffer.from(key!, "base64").length}`, Buffer.from(salt!, "base64"));
      break;
    }
    case "bulwark-wrapped": {
      // `$bulwark-wrap$v=1$<inner id>$<settings>$argon2id$…` (wrap.ts): no argon2id field holds "$argon2id$", so the
      // last one starts the outer layer.
      const rest = hash.slice(WRAP_PREFIX.length);
      const id = rest.slice(0, rest.indexOf("$"));
      const outer = rest.lastIndexOf("$argon2id$");
      const inner = settingsComputation(id, rest.slice(id.length + 1, outer));
      c = { key: `wrapped;inner=(${inner.key});outer=(${argon2Computation(rest.slice(outer), table).key})`, salted: true };
      break;
    }
    default:
      if (!scheme.wrap) throw new Error(`saltKey: no salt reader for the ${scheme.id} scheme`);
      c = settingsComputation(scheme.id, scheme.wrap.split(hash).settings);
  }
  return c.salted ? c.key : null;
}

/**
 * saltKey of a fast (wrappable) scheme's hash from its settings alone (the hash minus its digest, as the scheme's
 * `wrap.split` gives them and a wrapped hash keeps its inner layer's, validated by the scheme): null when they hold no
 * salt (a bare digest's empty settings, an empty crypt(3) salt). The same key saltKey gives the whole hash.
 *
 * @example
 * settingsSaltKey("md5-crypt", "$1$") // null
 * settingsSaltKey("ssha", "{SSHA}7065707065723132") === settingsSaltKey("salted-digest", "$salted-digest$a=sha1,l=password+salt,e=hex$cGVwcGVyMTI") // true
 */
export function settingsSaltKey(schemeId: string, settings: string): string | null {
  const c = settingsComputation(schemeId, settings);
  return c.salted ? c.key : null;
}

/** The computation of a fast scheme's validated settings; throws (a bug, not a row) on settings of an unknown shape. */
function settingsComputation(schemeId: string, settings: string): Computation {
  switch (schemeId) {
    case "md5":
    case "sha1":
    case "sha256":
    case "sha512":
      if (settings !== "") break;
      return { key: `digest;a=${schemeId};l=password`, salted: false };
    case "md5-crypt":
      if (!settings.startsWith("$1$")) break;
      return salted("md5-crypt", Buffer.from(settings.slice(3), "latin1"));
    case "sha256-crypt":
    case "sha512-crypt": {
      const m = SHA_CRYPT_SETTINGS.exec(settings);
      if (m === null) break;
      return salted(`${schemeId};rounds=${m[2] === undefined ? SHA_CRYPT_DEFAULT_ROUNDS : Number(m[2])}`, Buffer.from(m[3]!, "latin1"));
    }
    case "phpass":
    case "drupal7":
    case "drupal7-wrapped-md5": {
      // _password_crypt: H(salt ‖ secret), then 2^log2 times H(previous ‖ secret); `$P$` and `$H$` are one MD5 loop,
      // `$S$` the SHA-512 one; the `U$` forms loop over md5(password) as hex, another secret.
      const m = PHPASS_SETTINGS.exec(settings);
      if (m === null) break;
      const secret = m[1] === "U" ? "md5-hex(password)" : "password";
      return salted(`phpass-loop;a=${m[2] === "S" ? "sha512" : "md5"};secret=${secret};log2=${ITOA64.indexOf(m[3]!)}`, Buffer.from(m[4]!, "latin1"));
    }
    case "pbkdf2-sha256":
    case "pbkdf2-sha512":
    case "django-pbkdf2-sha256":
    case "django-pbkdf2-sha1": {
      // passlib's salt is adapted base64 of its bytes, Django's is used as text (UTF-8); both take the digest's length.
      const m = PBKDF2_SETTINGS.exec(settings);
      const salt = m === null ? null : m[1] === "pbkdf2_" ? Buffer.from(m[4]!, "utf8") : decodeAB64(m[4]!);
      if (m === null || salt === null) break;
      const digest = m[2] as DigestName;
      return salted(`pbkdf2-hmac;a=${digest};iterations=${Number(m[3])};length=${DIGEST_BYTES[digest]}`, salt);
    }
    case "ssha":
    case "ssha256":
    case "ssha512": {
      // RFC 2307 style: H(password ‖ salt), the salt kept as hex (either case) behind a label of either case.
      const cut = settings.indexOf("}") + 1;
      const digest = LDAP_DIGESTS[settings.slice(0, cut).toUpperCase()];
      if (digest === undefined || !/^(?:[0-9a-fA-F]{2})*$/.test(settings.slice(cut))) break;
      return salted(`digest;a=${digest};l=password+salt`, Buffer.from(settings.slice(cut), "hex"));
    }
    case "salted-digest": {
      // The digest's encoding (e=) is how the old system wrote it, not what it computed: not part of the key.
      const m = SALTED_SETTINGS.exec(settings);
      if (m === null) break;
      return salted(`digest;a=${m[1]};l=${m[2]}`, Buffer.from(m[3]!, "base64url"));
    }
    default:
      break;
  }
  throw new Error(`saltKey: no salt reader for ${schemeId} settings of this shape`);
}

/** An argon2 PHC string's computation (parsed by the table: canonical base64, a version read as 1.0 when omitted). */
function argon2Computation(phc: string, table: SchemeTable): Computation {
  const w = table.find(phc).argon2Params!(phc);
  const [salt, tag] = phc.split("$").slice(-2) as [string, string];
  return salted(`argon2;variant=${w.variant};v=${w.version};m=${w.memoryCost};t=${w.timeCost};p=${w.parallelism};length=${Buffer.from(tag, "base64").length}`, Buffer.from(salt, "base64"));
}
