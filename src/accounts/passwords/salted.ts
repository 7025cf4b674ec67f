// Salted digests whose layout only the old system knew (SourceLair's sha256(salt + password),
// md5(password + salt), …), declared at import with a template and stored self-describing as
//   $salted-digest$a=<md5|sha1|sha256|sha512>,l=<salt+password|password+salt>,e=<hex|base64>$<salt, base64url of UTF-8>$<digest as declared>
import { DIGEST_BYTES, decodeB64Padded, decodeHex, digest, type DigestName } from "./encoding.ts";
import { InvalidHashTemplateError, UnsupportedHashError } from "./errors.ts";
import { DEFAULT_HASH_LIMITS, type HashLimits } from "./limits.ts";
import { fastScheme, type PasswordScheme } from "./scheme.ts";

export type SaltedLayout = "salt+password" | "password+salt";

export interface SaltedTemplate {
  algorithm: DigestName;
  layout: SaltedLayout;
  encoding: "hex" | "base64";
}

const PREFIX = "$salted-digest$";
const SETTINGS = /^\$salted-digest\$a=(md5|sha1|sha256|sha512),l=(salt\+password|password\+salt),e=(hex|base64)\$([A-Za-z0-9_-]+)$/;
const TEMPLATE = /^(md5|sha1|sha256|sha512)\(\s*(salt|password)\s*\+\s*(salt|password)\s*\)\s*(?::\s*(hex|base64)\s*)?$/;

/**
 * Parses a template such as `sha256(salt+password):hex` (encoding defaults to hex).
 *
 * @example
 * parseSaltedTemplate("md5(password + salt):base64")
 * // { algorithm: "md5", layout: "password+salt", encoding: "base64" }
 */
export function parseSaltedTemplate(text: string): SaltedTemplate {
  const m = TEMPLATE.exec(text.trim().toLowerCase());
  if (!m || m[2] === m[3]) {
    throw new InvalidHashTemplateError(
      `salted-digest template "${text.slice(0, 80)}" is not understood: expected ALGORITHM(salt+password) or ALGORITHM(password+salt), ` +
        "ALGORITHM one of md5, sha1, sha256, sha512, optionally followed by :hex or :base64",
    );
  }
  return { algorithm: m[1] as DigestName, layout: `${m[2]}+${m[3]}` as SaltedLayout, encoding: (m[4] ?? "hex") as SaltedTemplate["encoding"] };
}

/** The template in its text form, the census parameters of a salted digest. */
export function formatSaltedTemplate(t: SaltedTemplate): string {
  return `${t.algorithm}(${t.layout}):${t.encoding}`;
}

function decodeDigest(t: SaltedTemplate, text: string): Buffer {
  const bytes = t.encoding === "hex" ? decodeHex(text) : decodeB64Padded(text);
  if (bytes === null || bytes.length !== DIGEST_BYTES[t.algorithm]) {
    throw new UnsupportedHashError(`salted digest is not a ${DIGEST_BYTES[t.algorithm]}-byte ${t.algorithm} digest in ${t.encoding}`);
  }
  return bytes;
}

function checkSalt(salt: string, limits: HashLimits): void {
  const size = Buffer.byteLength(salt, "utf8");
  if (size < limits.minSaltBytes || size > limits.maxSaltBytes) {
    throw new UnsupportedHashError(`salt of ${size} bytes is outside ${limits.minSaltBytes}..${limits.maxSaltBytes}`);
  }
}

/**
 * Builds the self-describing stored form of a legacy salted digest declared at import.
 *
 * @example
 * saltedFromTemplate("sha256(salt+password):hex", "0123456789abcdef0123456789abcdef", "9f86d0…")
 * // "$salted-digest$a=sha256,l=salt+password,e=hex$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY$9f86d0…"
 */
export function saltedFromTemplate(template: SaltedTemplate | string, salt: string, digestText: string, limits: HashLimits = DEFAULT_HASH_LIMITS): string {
  const t = typeof template === "string" ? parseSaltedTemplate(template) : template;
  checkSalt(salt, limits);
  const bytes = decodeDigest(t, digestText.trim());
  const canonical = t.encoding === "hex" ? bytes.toString("hex") : bytes.toString("base64");
  return `${PREFIX}a=${t.algorithm},l=${t.layout},e=${t.encoding}$${Buffer.from(salt, "utf8").toString("base64url")}$${canonical}`;
}

function parseSettings(settings: string, limits: HashLimits): { template: SaltedTemplate; salt: string } {
  const m = SETTINGS.exec(settings);
  if (!m) throw new UnsupportedHashError("malformed salted-digest settings");
  const saltBytes = Buffer.from(m[4]!, "base64url");
  const salt = saltBytes.toString("utf8");
  // Refuse non-canonical base64url or non-UTF-8 salts: one stored form per salt.
  if (saltBytes.toString("base64url") !== m[4] || Buffer.from(salt, "utf8").toString("base64url") !== m[4]) {
    throw new UnsupportedHashError("salted-digest salt is not canonical base64url of UTF-8 text");
  }
  checkSalt(salt, limits);
  return { template: { algorithm: m[1] as DigestName, layout: m[2] as SaltedLayout, encoding: m[3] as SaltedTemplate["encoding"] }, salt };
}

/**
 * The salted-digest scheme.
 *
 * @example
 * const [salted] = saltedSchemes(DEFAULT_HASH_LIMITS);
 * await salted.verify("password", saltedFromTemplate("md5(password+salt)", "abc", "…"))
 */
export function saltedSchemes(limits: HashLimits): PasswordScheme[] {
  return [
    fastScheme({
      id: "salted-digest",
      identify: (hash) => hash.startsWith(PREFIX),
      split(hash) {
        const cut = hash.lastIndexOf("$");
        const settings = hash.slice(0, cut);
        const { template } = parseSettings(settings, limits);
        return { settings, result: decodeDigest(template, hash.slice(cut + 1)).toString("hex") };
      },
      async derive(password, settings) {
        const { template, salt } = parseSettings(settings, limits);
        const parts = template.layout === "salt+password" ? [salt, password] : [password, salt];
        return digest(template.algorithm, ...parts).toString("hex");
      },
      params: (settings) => formatSaltedTemplate(parseSettings(settings, limits).template),
    }),
  ];
}
