// Bare, unsalted hex digests (md5, sha1, sha256, sha512) as SourceLair-era systems stored them.
// Identified by length alone; the fastest and weakest formats we accept, first in line to be wrapped.
import { DIGEST_BYTES, digest, type DigestName } from "./encoding.ts";
import { UnsupportedHashError } from "./errors.ts";
import type { HashLimits } from "./limits.ts";
import { fastScheme, type PasswordScheme } from "./scheme.ts";

function bareDigestScheme(name: DigestName): PasswordScheme {
  const shape = new RegExp(`^[0-9a-fA-F]{${DIGEST_BYTES[name] * 2}}$`);
  return fastScheme({
    id: name,
    identify: (hash) => shape.test(hash),
    split(hash) {
      if (!shape.test(hash)) throw new UnsupportedHashError(`not a ${DIGEST_BYTES[name] * 2}-digit hex ${name} digest`);
      // Old systems compared hex in either case; we compare the canonical lower-case form.
      return { settings: "", result: hash.toLowerCase() };
    },
    async derive(password, settings) {
      if (settings !== "") throw new UnsupportedHashError(`a bare ${name} digest has no settings`);
      return digest(name, password).toString("hex");
    },
    params: (settings) => {
      if (settings !== "") throw new UnsupportedHashError(`a bare ${name} digest has no settings`);
      return "";
    },
  });
}

/**
 * The four bare digest schemes, identified by hex length (32, 40, 64, 128).
 *
 * @example
 * const [md5] = digestSchemes(DEFAULT_HASH_LIMITS);
 * await md5.verify("password", "5f4dcc3b5aa765d61d8327deb882cf99"); // true
 */
export function digestSchemes(_limits: HashLimits): PasswordScheme[] {
  return (["md5", "sha1", "sha256", "sha512"] as const).map(bareDigestScheme);
}
