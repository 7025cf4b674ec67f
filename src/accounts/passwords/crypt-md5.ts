// md5-crypt ($1$, Poul-Henning Kamp's FreeBSD crypt), as glibc and `openssl passwd -1` write it.
// The encoding and the 1000-round loop follow the reference algorithm; MD5 itself is node:crypto's.
import { cryptEncode, digest } from "./encoding.ts";
import { UnsupportedHashError } from "./errors.ts";
import type { HashLimits } from "./limits.ts";
import { fastScheme, type PasswordScheme } from "./scheme.ts";

// Salts are at most 8 characters of the crypt alphabet; the checksum is 22 characters.
const SETTINGS = /^\$1\$([./0-9A-Za-z]{0,8})$/;
const HASH = /^(\$1\$[./0-9A-Za-z]{0,8})\$([./0-9A-Za-z]{22})$/;
const GROUPS = [[0, 6, 12, 4], [1, 7, 13, 4], [2, 8, 14, 4], [3, 9, 15, 4], [4, 10, 5, 4], [-1, -1, 11, 2]] as const;

/** The md5-crypt checksum of `password` with `salt` (22 characters). */
export function md5CryptChecksum(password: string, salt: string): string {
  const pw = Buffer.from(password, "utf8");
  const s = Buffer.from(salt, "latin1");
  const alternate = digest("md5", pw, s, pw);
  const parts: Buffer[] = [pw, Buffer.from("$1$"), s];
  for (let left = pw.length; left > 0; left -= 16) parts.push(alternate.subarray(0, Math.min(16, left)));
  // For each bit of the length: a NUL byte when set, else the first password byte (historical quirk).
  for (let i = pw.length; i > 0; i >>= 1) parts.push(i & 1 ? Buffer.alloc(1) : pw.subarray(0, 1));
  let final = digest("md5", Buffer.concat(parts));
  for (let i = 0; i < 1000; i++) {
    const round: Buffer[] = [i & 1 ? pw : final];
    if (i % 3) round.push(s);
    if (i % 7) round.push(pw);
    round.push(i & 1 ? final : pw);
    final = digest("md5", Buffer.concat(round));
  }
  return cryptEncode(final, GROUPS);
}

/**
 * The md5-crypt scheme.
 *
 * @example
 * const [md5crypt] = md5CryptSchemes(DEFAULT_HASH_LIMITS);
 * await md5crypt.verify("password", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/") // true
 */
export function md5CryptSchemes(_limits: HashLimits): PasswordScheme[] {
  const salt = (settings: string): string => {
    const m = SETTINGS.exec(settings);
    if (!m) throw new UnsupportedHashError("malformed md5-crypt settings (expected $1$ and a salt of up to 8 characters)");
    return m[1]!;
  };
  return [
    fastScheme({
      id: "md5-crypt",
      identify: (hash) => hash.startsWith("$1$"),
      split(hash) {
        const m = HASH.exec(hash);
        if (!m) throw new UnsupportedHashError("malformed md5-crypt hash (expected $1$salt$ and a 22-character checksum)");
        return { settings: m[1]!, result: m[2]! };
      },
      derive: async (password, settings) => md5CryptChecksum(password, salt(settings)),
      params: (settings) => (salt(settings), ""),
    }),
  ];
}
