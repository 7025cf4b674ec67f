// scrypt in passlib's format `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` (unpadded base64),
// computed by node:crypto's async scrypt with `maxmem`. Slow by design, so never wrapped.
import { scrypt, timingSafeEqual } from "node:crypto";
import { decodeB64NoPad } from "./encoding.ts";
import { UnsupportedHashError } from "./errors.ts";
import { checkBound, parseDecimal, type HashLimits } from "./limits.ts";
import type { HashDescription, PasswordScheme, RehashPolicy } from "./scheme.ts";

const SHAPE = /^\$scrypt\$ln=([0-9]{1,16}),r=([0-9]{1,16}),p=([0-9]{1,16})\$([A-Za-z0-9+/]*)\$([A-Za-z0-9+/]+)$/;

interface ScryptParams {
  log2N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

function scryptAsync(password: string, salt: Buffer, size: number, options: { N: number; r: number; p: number; maxmem: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, size, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/**
 * The scrypt scheme.
 *
 * @example
 * const [scheme] = scryptSchemes(DEFAULT_HASH_LIMITS);
 * await scheme.verify("password", "$scrypt$ln=16,r=8,p=1$...$...") // true or false
 */
export function scryptSchemes(limits: HashLimits): PasswordScheme[] {
  const parse = (hash: string): ScryptParams => {
    const m = SHAPE.exec(hash);
    if (!m) throw new UnsupportedHashError("malformed scrypt hash (expected $scrypt$ln=…,r=…,p=…$salt$hash)");
    const log2N = parseDecimal("scrypt ln", m[1]!);
    const r = parseDecimal("scrypt r", m[2]!);
    const p = parseDecimal("scrypt p", m[3]!);
    checkBound("scrypt ln", log2N, 1, limits.scryptMaxLog2N);
    checkBound("scrypt r", r, 1, limits.scryptMaxR);
    checkBound("scrypt p", p, 1, limits.scryptMaxP);
    // RFC 7914 §2: N must be less than 2^(128·r/8) = 2^(16·r); node:crypto throws on verify otherwise.
    if (log2N >= 16 * r) throw new UnsupportedHashError(`scrypt ln ${log2N} must be below 16·r = ${16 * r} (RFC 7914: N < 2^(128·r/8))`);
    // scrypt allocates 128 · N · r bytes: the bound that keeps a hostile hash from taking gigabytes.
    checkBound("scrypt memory (128·N·r bytes)", 128 * 2 ** log2N * r, 0, limits.scryptMaxMemory);
    const salt = decodeB64NoPad(m[4]!);
    const key = decodeB64NoPad(m[5]!);
    if (salt === null || key === null) throw new UnsupportedHashError("scrypt salt or hash is not unpadded base64");
    checkBound("scrypt salt length", salt.length, limits.minSaltBytes, limits.maxSaltBytes);
    checkBound("scrypt hash length", key.length, limits.minDigestBytes, limits.maxDigestBytes);
    return { log2N, r, p, salt, hash: key };
  };
  return [
    {
      id: "scrypt",
      identify: (hash: string): boolean => hash.startsWith("$scrypt$"),
      parse,
      async verify(password: string, hash: string): Promise<boolean> {
        const s = parse(hash);
        const N = 2 ** s.log2N;
        let key: Buffer;
        try {
          // maxmem is node:crypto's own guard; give it our bound plus slack for its estimate.
          key = await scryptAsync(password, s.salt, s.hash.length, { N, r: s.r, p: s.p, maxmem: limits.scryptMaxMemory + 16 * 1024 * 1024 });
        } catch (error) {
          // A parameter rule we do not check (or a bound overridden past node's) is still a hash we
          // cannot verify: the documented UnsupportedHashError, never node's RangeError.
          throw new UnsupportedHashError("node:crypto refused the scrypt parameters", { cause: error });
        }
        return timingSafeEqual(key, s.hash);
      },
      needsRehash(hash: string, policy: RehashPolicy): boolean {
        parse(hash);
        return policy.defaultScheme !== "scrypt";
      },
      describe(hash: string): HashDescription {
        const s = parse(hash);
        return { scheme: "scrypt", params: `ln=${s.log2N},r=${s.r},p=${s.p}` };
      },
    } satisfies PasswordScheme,
  ];
}
