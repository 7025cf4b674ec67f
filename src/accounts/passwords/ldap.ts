// LDAP salted SHA digests ({SSHA}, {SSHA256}, {SSHA512}, RFC 2307 style): base64(H(password ‖ salt) ‖ salt).
// Wrapped settings keep the salt in clear as `{SSHA}<salt hex>`.
import { DIGEST_BYTES, decodeB64Padded, decodeHex, digest, type DigestName } from "./encoding.ts";
import { UnsupportedHashError } from "./errors.ts";
import type { HashLimits } from "./limits.ts";
import { fastScheme, type PasswordScheme } from "./scheme.ts";

const VARIANTS = [
  { id: "ssha", label: "{SSHA}", digest: "sha1" },
  { id: "ssha256", label: "{SSHA256}", digest: "sha256" },
  { id: "ssha512", label: "{SSHA512}", digest: "sha512" },
] as const satisfies readonly { id: string; label: string; digest: DigestName }[];

function ldapScheme(variant: (typeof VARIANTS)[number], limits: HashLimits): PasswordScheme {
  const size = DIGEST_BYTES[variant.digest];
  // The label is case-insensitive in OpenLDAP's slappasswd output readers; keep that leniency.
  const hasLabel = (text: string): boolean => text.slice(0, variant.label.length).toUpperCase() === variant.label;
  const checkSalt = (salt: Buffer): void => {
    if (salt.length < limits.minSaltBytes || salt.length > limits.maxSaltBytes) {
      throw new UnsupportedHashError(`${variant.label} salt of ${salt.length} bytes is outside ${limits.minSaltBytes}..${limits.maxSaltBytes}`);
    }
  };
  const parseSettings = (settings: string): Buffer => {
    const salt = hasLabel(settings) ? decodeHex(settings.slice(variant.label.length)) : null;
    if (salt === null) throw new UnsupportedHashError(`malformed ${variant.label} settings`);
    checkSalt(salt);
    return salt;
  };
  return fastScheme({
    id: variant.id,
    identify: hasLabel,
    split(hash) {
      const raw = hasLabel(hash) ? decodeB64Padded(hash.slice(variant.label.length)) : null;
      if (raw === null) throw new UnsupportedHashError(`${variant.label} payload is not valid base64`);
      const salt = raw.subarray(size);
      checkSalt(salt);
      return { settings: `${variant.label}${salt.toString("hex")}`, result: raw.subarray(0, size).toString("hex") };
    },
    async derive(password, settings) {
      return digest(variant.digest, password, parseSettings(settings)).toString("hex");
    },
    params: (settings) => `salt=${parseSettings(settings).length}`,
  });
}

/**
 * {SSHA}, {SSHA256} and {SSHA512}.
 *
 * @example
 * const [ssha] = ldapSchemes(DEFAULT_HASH_LIMITS);
 * ssha.identify("{SSHA}...") // true
 */
export function ldapSchemes(limits: HashLimits): PasswordScheme[] {
  return VARIANTS.map((v) => ldapScheme(v, limits));
}
