// PBKDF2 in two dialects: passlib's `$pbkdf2-sha256$rounds$salt$hash` (adapted base64, raw salt)
// and Django's `pbkdf2_sha256$iterations$salt$hash` (salt used as text, standard base64 digest).
import { pbkdf2 } from "node:crypto";
import { promisify } from "node:util";
import { DIGEST_BYTES, decodeAB64, decodeB64Padded, type DigestName } from "./encoding.ts";
import { UnsupportedHashError } from "./errors.ts";
import { checkBound, parseDecimal, type HashLimits } from "./limits.ts";
import { fastScheme, type LegacyParts, type PasswordScheme, type SchemeId } from "./scheme.ts";

// node:crypto's async pbkdf2 runs on the libuv thread pool: it does not block the event loop.
const pbkdf2Async = promisify(pbkdf2);

interface Pbkdf2Settings {
  iterations: number;
  salt: Buffer;
}

interface Dialect {
  id: SchemeId;
  digest: DigestName;
  /** How the hash starts. */
  prefix: string;
  /** Settings text → salt bytes, or null when malformed. */
  salt(text: string): Buffer | null;
  /** Digest text → bytes, or null when malformed. */
  decode(text: string): Buffer | null;
}

const DIALECTS: readonly Dialect[] = [
  { id: "pbkdf2-sha256", digest: "sha256", prefix: "$pbkdf2-sha256$", salt: decodeAB64, decode: decodeAB64 },
  { id: "pbkdf2-sha512", digest: "sha512", prefix: "$pbkdf2-sha512$", salt: decodeAB64, decode: decodeAB64 },
  // Django passes the salt string itself (UTF-8) to PBKDF2; its salts never contain "$".
  { id: "django-pbkdf2-sha256", digest: "sha256", prefix: "pbkdf2_sha256$", salt: djangoSalt, decode: decodeB64Padded },
  { id: "django-pbkdf2-sha1", digest: "sha1", prefix: "pbkdf2_sha1$", salt: djangoSalt, decode: decodeB64Padded },
];

function djangoSalt(text: string): Buffer | null {
  return /^[\x21-\x23\x25-\x7e]+$/.test(text) ? Buffer.from(text, "utf8") : null;
}

function pbkdf2Scheme(dialect: Dialect, limits: HashLimits): PasswordScheme {
  const size = DIGEST_BYTES[dialect.digest];
  const parseSettings = (settings: string): Pbkdf2Settings => {
    if (!settings.startsWith(dialect.prefix)) throw new UnsupportedHashError(`not ${dialect.id} settings`);
    const fields = settings.slice(dialect.prefix.length).split("$");
    if (fields.length !== 2) throw new UnsupportedHashError(`malformed ${dialect.id} settings (expected iterations and salt)`);
    const iterations = parseDecimal(`${dialect.id} iterations`, fields[0]!);
    // Iterations are the cost an imported hash controls.
    checkBound(`${dialect.id} iterations`, iterations, limits.pbkdf2MinIterations, limits.pbkdf2MaxIterations);
    const salt = dialect.salt(fields[1]!);
    if (salt === null) throw new UnsupportedHashError(`${dialect.id} salt is malformed`);
    checkBound(`${dialect.id} salt length`, salt.length, limits.minSaltBytes, limits.maxSaltBytes);
    return { iterations, salt };
  };
  return fastScheme({
    id: dialect.id,
    identify: (hash) => hash.startsWith(dialect.prefix),
    split(hash): LegacyParts {
      const cut = hash.lastIndexOf("$");
      const settings = hash.slice(0, cut);
      parseSettings(settings);
      const result = dialect.decode(hash.slice(cut + 1));
      // Both dialects store the full digest-sized output (dklen = digest size).
      if (result === null || result.length !== size) throw new UnsupportedHashError(`${dialect.id} digest must be ${size} bytes`);
      return { settings, result: result.toString("hex") };
    },
    async derive(password, settings) {
      const { iterations, salt } = parseSettings(settings);
      return (await pbkdf2Async(password, salt, iterations, size, dialect.digest)).toString("hex");
    },
    params: (settings) => `rounds=${parseSettings(settings).iterations}`,
  });
}

/**
 * pbkdf2-sha256, pbkdf2-sha512 (passlib) and django-pbkdf2-sha256, django-pbkdf2-sha1.
 *
 * @example
 * const schemes = pbkdf2Schemes(DEFAULT_HASH_LIMITS);
 * schemes[2]!.identify("pbkdf2_sha256$600000$salt$hash=") // true
 */
export function pbkdf2Schemes(limits: HashLimits): PasswordScheme[] {
  return DIALECTS.map((d) => pbkdf2Scheme(d, limits));
}
