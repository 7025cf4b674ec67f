// Bounds on every cost parameter a stored or imported hash can carry (in the spirit of Ory Kratos'
// hash_limits.go). A hash outside them is refused as unsupported *before any hashing*, so a hostile
// import cannot make one login cost minutes of CPU or gigabytes of memory.
import { InvalidPasswordPolicyError, UnsupportedHashError } from "./errors.ts";

export interface HashLimits {
  /** Longest password verified or hashed, in UTF-8 bytes. */
  maxPasswordBytes: number;
  /** Longest password the legacy loops whose cost is rounds × length run on (phpass, Drupal 7, sha-crypt), in UTF-8 bytes. */
  legacyLoopMaxPasswordBytes: number;
  /** Longest hash string we look at, in characters. */
  maxHashLength: number;
  bcryptMinCost: number;
  bcryptMaxCost: number;
  phpassMinLog2: number;
  phpassMaxLog2: number;
  cryptMinRounds: number;
  cryptMaxRounds: number;
  pbkdf2MinIterations: number;
  pbkdf2MaxIterations: number;
  scryptMaxLog2N: number;
  scryptMaxR: number;
  scryptMaxP: number;
  /** Bytes scrypt may allocate (128 · N · r); also passed to node:crypto as `maxmem`. */
  scryptMaxMemory: number;
  argon2MaxMemoryKiB: number;
  argon2MaxTime: number;
  argon2MaxParallelism: number;
  minSaltBytes: number;
  maxSaltBytes: number;
  minDigestBytes: number;
  maxDigestBytes: number;
}

// Costs below are CPU time of one verify at the bound, measured with Node 24 on a 2-vCPU AMD EPYC
// (ranges over three runs on a loaded machine; docs/password-hashes.md has the table). "Event
// loop" costs run on the main thread in slices (the loops yield every 4096 rounds), so they delay
// every other request; "thread pool" costs run beside it. No bound makes a verify cheap: flood
// control (src/accounts/flood/) bounds how many an attacker can trigger.
export const DEFAULT_HASH_LIMITS: Readonly<HashLimits> = Object.freeze({
  // 4096 bytes is far above any typed or generated password (ASVS 6.2.9 asks for at least 64
  // characters) and bounds the schemes whose cost barely grows with the length (argon2, PBKDF2,
  // scrypt, digests, md5-crypt's fixed 1000 rounds: ≤ 0.04 s at 4096 bytes).
  maxPasswordBytes: 4096,
  // Legacy loops hash the password once per round (phpass/Drupal 7 2^log2 times, sha-crypt up to
  // twice per round), so their cost is rounds × length: the long-password DoS of Django's
  // CVE-2013-1443. At 4096 bytes one verify cost 6-9 s of event-loop CPU (sha512-crypt 10^6
  // rounds 8.9 s, phpass 2^20 7.3 s); at 512 bytes it is at most ~2.8 s. Drupal 7 itself refuses
  // passwords over 512 bytes (DRUPAL_HASH_MAX_LENGTH in _password_crypt). A longer password
  // against these schemes answers "no match" without running the loop.
  legacyLoopMaxPasswordBytes: 512,
  // The longest legitimate form is a wrapped sha512-crypt or a salted digest with a long salt
  // (~350 chars); anything much longer is junk or an attempt to make parsing itself expensive.
  maxHashLength: 512,
  // bcrypt's own range starts at 4. Each step doubles the work: cost 15 is ~1.7 s on the thread
  // pool, cost 31 would be ~30 hours per login. Real deployments use 10-13 (Sentry/Django: 12).
  bcryptMinCost: 4,
  bcryptMaxCost: 15,
  // phpass/Drupal 7 accept log2 7..30. Our loop is one node:crypto digest per iteration, so 2^20
  // is 1.3-2.0 s of event-loop CPU with a short password and 1.9-2.8 s at 512 bytes (the U$ form
  // loops over a 32-byte digest whatever the length: 1.1-2.0 s); Drupal 7 ships 15, WordPress 8.
  // 2^30 would be ~35 minutes per login, 2^37 three days.
  phpassMinLog2: 7,
  phpassMaxLog2: 20,
  // sha-crypt (Drepper's spec) clamps rounds to 1000..999,999,999; glibc never writes fewer than
  // 1000. passlib's defaults (535,000 / 656,000) must pass. Event-loop CPU at 10^6 rounds: 1.4-1.8 s
  // with a short password, 2.5-2.8 s (sha512) and 1.8-1.9 s (sha256) at 512 bytes; passlib's
  // sha512 default 656,000 at 512 bytes 1.7-1.9 s. 10^9 rounds would be 25-45 minutes.
  cryptMinRounds: 1000,
  cryptMaxRounds: 1_000_000,
  // PBKDF2: Django 6 writes 1,200,000 and OWASP asks 1,300,000 for SHA-1; 2,000,000 keeps a
  // margin while capping one verify at 0.3 s (SHA-1, SHA-256) to 1 s (SHA-512) on the thread pool.
  pbkdf2MinIterations: 1,
  pbkdf2MaxIterations: 2_000_000,
  // scrypt: passlib's default is ln=16,r=8,p=1 (64 MiB); Django's N=2^14. The memory bound is
  // what protects the process: 128 · N · r bytes are allocated per verify. p multiplies the time
  // (not the memory): p=4 at 128 MiB is ~1.3 s on the thread pool; nobody we import from uses p > 1.
  // RFC 7914's N < 2^(16·r) is checked in scrypt.ts (ln ≤ 20 needs r ≥ 2).
  scryptMaxLog2N: 20,
  scryptMaxR: 32,
  scryptMaxP: 4,
  scryptMaxMemory: 128 * 1024 * 1024,
  // argon2: OWASP's strongest listed profile is m=47104 KiB; 128 MiB leaves room for imports from
  // systems tuned higher while 64 GiB (a hostile m) is refused before allocation. m=128 MiB with
  // t=10 is ~1.1 s on the thread pool; p is capped by lanes real configurations use.
  argon2MaxMemoryKiB: 131_072,
  argon2MaxTime: 10,
  argon2MaxParallelism: 16,
  // Salts shorter than 1 byte are not salts; longer than 64 bytes exist in no format we know.
  minSaltBytes: 1,
  maxSaltBytes: 64,
  // 16 bytes is MD5's output and the shortest secure tag; 64 bytes is SHA-512's.
  minDigestBytes: 16,
  maxDigestBytes: 64,
});

/**
 * Throws UnsupportedHashError unless `min ≤ value ≤ max` and value is a safe integer.
 *
 * @example
 * checkBound("bcrypt cost", 31, 4, 15); // throws "bcrypt cost 31 is above the limit of 15"
 */
export function checkBound(what: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value)) throw new UnsupportedHashError(`${what} is not an integer`);
  if (value < min) throw new UnsupportedHashError(`${what} ${value} is below the minimum of ${min}`);
  if (value > max) throw new UnsupportedHashError(`${what} ${value} is above the limit of ${max}`);
}

/**
 * Parses a decimal parameter without leading zeros or signs, refusing digit strings so long they
 * could not be a bound-respecting value anyway (no big-number parsing of attacker input).
 *
 * @example
 * parseDecimal("bcrypt cost", "10"); // 10
 */
export function parseDecimal(what: string, text: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text)) throw new UnsupportedHashError(`${what} is not a plain decimal number`);
  return Number(text);
}

/** Refuses a hash string that is empty, too long, or contains whitespace or control characters. */
export function checkHashText(hash: string, limits: HashLimits): void {
  if (hash.length === 0) throw new UnsupportedHashError("the hash is empty");
  if (hash.length > limits.maxHashLength) {
    throw new UnsupportedHashError(`the hash is ${hash.length} characters long, above the limit of ${limits.maxHashLength}`);
  }
  // Printable ASCII only: every format we verify is ASCII, so anything else is junk or smuggling.
  if (!/^[\x21-\x7e]+$/.test(hash)) throw new UnsupportedHashError("the hash contains whitespace, control or non-ASCII characters");
}

/** Merges caller overrides onto the defaults, refusing non-integer or inverted bounds. */
export function resolveLimits(overrides: Partial<HashLimits> = {}): HashLimits {
  const merged = { ...DEFAULT_HASH_LIMITS, ...overrides };
  for (const [key, value] of Object.entries(merged)) {
    if (!Number.isSafeInteger(value) || value < 0) throw new InvalidPasswordPolicyError(`hash limit ${key} must be a non-negative integer`);
  }
  return merged;
}
