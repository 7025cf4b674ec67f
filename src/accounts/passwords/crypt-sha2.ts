// sha256-crypt ($5$) and sha512-crypt ($6$), Ulrich Drepper's "Unix crypt using SHA-256 and
// SHA-512" specification, with the optional `rounds=N$` parameter. Digests are node:crypto's.
import { createHash } from "node:crypto";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { cryptEncode, digest, type DigestName } from "./encoding.ts";
import { UnsupportedHashError } from "./errors.ts";
import { checkBound, parseDecimal, type HashLimits } from "./limits.ts";
import { fastScheme, type PasswordScheme } from "./scheme.ts";

type Group = readonly [number, number, number, number];

// The byte permutation of the final digest, from the specification's b64_from_24bit calls.
const SHA256_GROUPS: readonly Group[] = [
  [0, 10, 20, 4], [21, 1, 11, 4], [12, 22, 2, 4], [3, 13, 23, 4], [24, 4, 14, 4],
  [15, 25, 5, 4], [6, 16, 26, 4], [27, 7, 17, 4], [18, 28, 8, 4], [9, 19, 29, 4], [-1, 31, 30, 3],
];
const SHA512_GROUPS: readonly Group[] = [
  [0, 21, 42, 4], [22, 43, 1, 4], [44, 2, 23, 4], [3, 24, 45, 4], [25, 46, 4, 4], [47, 5, 26, 4],
  [6, 27, 48, 4], [28, 49, 7, 4], [50, 8, 29, 4], [9, 30, 51, 4], [31, 52, 10, 4], [53, 11, 32, 4],
  [12, 33, 54, 4], [34, 55, 13, 4], [56, 14, 35, 4], [15, 36, 57, 4], [37, 58, 16, 4], [59, 17, 38, 4],
  [18, 39, 60, 4], [40, 61, 19, 4], [62, 20, 41, 4], [-1, -1, 63, 2],
];
const VARIANTS = [
  { id: "sha256-crypt", tag: "5", algorithm: "sha256", size: 32, checksum: 43, groups: SHA256_GROUPS },
  { id: "sha512-crypt", tag: "6", algorithm: "sha512", size: 64, checksum: 86, groups: SHA512_GROUPS },
] as const satisfies readonly { id: string; tag: string; algorithm: DigestName; size: number; checksum: number; groups: readonly Group[] }[];

// The specification's default when `rounds=` is absent.
const DEFAULT_ROUNDS = 5000;

/** `bytes` repeated to exactly `length` bytes (the P and S sequences of the specification). */
function repeatTo(bytes: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let o = 0; o < length; o += bytes.length) bytes.copy(out, o, 0, Math.min(bytes.length, length - o));
  return out;
}

/** The sha-crypt checksum (steps 1-22 of Drepper's specification). */
export async function shaCryptChecksum(variant: (typeof VARIANTS)[number], password: string, salt: string, rounds: number): Promise<string> {
  const { algorithm, size } = variant;
  const pw = Buffer.from(password, "utf8");
  const s = Buffer.from(salt, "latin1");
  const b = digest(algorithm, pw, s, pw);
  const a: Buffer[] = [pw, s, repeatTo(b, pw.length)];
  for (let i = pw.length; i > 0; i >>= 1) a.push(i & 1 ? b : pw);
  let c = digest(algorithm, Buffer.concat(a));
  // DP = H(P repeated len(P) times), streamed: concatenating first would need len(P)^2 bytes.
  const dp = createHash(algorithm);
  for (let i = 0; i < pw.length; i++) dp.update(pw);
  const p = repeatTo(dp.digest(), pw.length);
  const ds = createHash(algorithm);
  for (let i = 0; i < 16 + c[0]!; i++) ds.update(s);
  const sDigest = ds.digest();
  const sBytes = sDigest.subarray(0, s.length);
  // The 8 shapes a round input can take (odd/even, i % 3, i % 7) are laid out once; each round
  // only copies the previous digest C into its slot, keeping the loop free of allocations.
  const layouts = Array.from({ length: 8 }, (_, key) => {
    const odd = (key & 1) === 1;
    const middle = Buffer.concat([...(key & 2 ? [sBytes] : []), ...(key & 4 ? [p] : [])]);
    const buffer = Buffer.concat(odd ? [p, middle, Buffer.alloc(size)] : [Buffer.alloc(size), middle, p]);
    return { buffer, at: odd ? buffer.length - size : 0 };
  });
  for (let i = 0; i < rounds; i++) {
    // Up to 10^6 rounds (seconds, see limits.ts): give other requests the event loop every 4096 rounds.
    if ((i & 0xfff) === 0xfff) await yieldToEventLoop();
    const layout = layouts[(i & 1) | (i % 3 ? 2 : 0) | (i % 7 ? 4 : 0)]!;
    c.copy(layout.buffer, layout.at);
    c = digest(algorithm, layout.buffer);
  }
  return cryptEncode(c, variant.groups);
}

function shaCryptScheme(variant: (typeof VARIANTS)[number], limits: HashLimits): PasswordScheme {
  const prefix = `$${variant.tag}$`;
  const settingsShape = new RegExp(`^\\$${variant.tag}\\$(?:rounds=([0-9]{1,16})\\$)?([./0-9A-Za-z]{0,16})$`);
  const parseSettings = (settings: string): { rounds: number; salt: string } => {
    const m = settingsShape.exec(settings);
    if (!m) throw new UnsupportedHashError(`malformed ${variant.id} settings (expected ${prefix}[rounds=N$]salt, salt up to 16 characters)`);
    if (m[1] === undefined) return { rounds: DEFAULT_ROUNDS, salt: m[2]! };
    const rounds = parseDecimal(`${variant.id} rounds`, m[1]);
    // Rounds are the cost an attacker controls; glibc never writes fewer than 1000.
    checkBound(`${variant.id} rounds`, rounds, limits.cryptMinRounds, limits.cryptMaxRounds);
    return { rounds, salt: m[2]! };
  };
  return fastScheme({
    id: variant.id,
    identify: (hash) => hash.startsWith(prefix),
    split(hash) {
      const cut = hash.lastIndexOf("$");
      const settings = hash.slice(0, cut);
      const result = hash.slice(cut + 1);
      parseSettings(settings);
      if (result.length !== variant.checksum || !/^[./0-9A-Za-z]+$/.test(result)) {
        throw new UnsupportedHashError(`${variant.id} checksum must be ${variant.checksum} characters of ./0-9A-Za-z`);
      }
      return { settings, result };
    },
    async derive(password, settings) {
      const { rounds, salt } = parseSettings(settings);
      return shaCryptChecksum(variant, password, salt, rounds);
    },
    params: (settings) => `rounds=${parseSettings(settings).rounds}`,
    // Each round hashes the password once or twice: cost is rounds × length (see limits.ts).
    maxPasswordBytes: limits.legacyLoopMaxPasswordBytes,
  });
}

/**
 * sha256-crypt and sha512-crypt.
 *
 * @example
 * const [, sha512crypt] = shaCryptSchemes(DEFAULT_HASH_LIMITS);
 * await sha512crypt.verify("password", "$6$rounds=5000$salt$...") // true or false
 */
export function shaCryptSchemes(limits: HashLimits): PasswordScheme[] {
  return VARIANTS.map((v) => shaCryptScheme(v, limits));
}
