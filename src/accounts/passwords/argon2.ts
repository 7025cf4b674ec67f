// argon2id and argon2i PHC strings ($argon2id$v=19$m=…,t=…,p=…$salt$hash), verified and created
// by @node-rs/argon2 (async, off the event loop). A PHC string reaches the library only after our
// strict parse has bounded m, t, p, salt and hash lengths: never an unchecked string.
import type { Algorithm } from "@node-rs/argon2";
import { hash as argon2Hash, verify as argon2Verify } from "@node-rs/argon2";
import { b64NoPadLength } from "./encoding.ts";
import { UnsupportedHashError } from "./errors.ts";
import { checkBound, parseDecimal, type HashLimits } from "./limits.ts";
import type { HashDescription, PasswordScheme, RehashPolicy } from "./scheme.ts";

export interface Argon2Params {
  /** Memory in KiB (`m=`). */
  memoryCost: number;
  /** Passes (`t=`). */
  timeCost: number;
  /** Lanes (`p=`). */
  parallelism: number;
}

/** The argon2 a verify runs: its parameters, variant and version (PHC `v=`: 19 is 1.3; 16 is 1.0, also when omitted). */
export interface Argon2Work extends Argon2Params {
  variant: "argon2id" | "argon2i";
  version: 16 | 19;
}

export interface ParsedArgon2 extends Argon2Work {
  /** Lengths in bytes of the salt and the tag (checked canonical; never decoded: nothing here needs the bytes). */
  saltBytes: number;
  hashBytes: number;
}

// Optional keyid/data fields of the PHC spec are refused: no system we import writes them.
const SHAPE = /^\$(argon2id|argon2i)\$(?:v=(16|19)\$)?m=([0-9]{1,16}),t=([0-9]{1,16}),p=([0-9]{1,16})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

// The numeric values of @node-rs/argon2's const enum (a const enum cannot be read under type stripping).
const ARGON2ID = 2 as Algorithm;

/**
 * Parses and bounds an argon2 PHC string. Throws UnsupportedHashError.
 *
 * @example
 * parseArgon2("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA...", DEFAULT_HASH_LIMITS).memoryCost // 19456
 */
export function parseArgon2(phc: string, limits: HashLimits): ParsedArgon2 {
  const m = SHAPE.exec(phc);
  if (!m) throw new UnsupportedHashError("malformed argon2 hash (expected $argon2id$v=19$m=…,t=…,p=…$salt$hash)");
  const memoryCost = parseDecimal("argon2 m", m[3]!);
  const timeCost = parseDecimal("argon2 t", m[4]!);
  const parallelism = parseDecimal("argon2 p", m[5]!);
  checkBound("argon2 p", parallelism, 1, limits.argon2MaxParallelism);
  // Memory is allocated up front: a hostile m (64 GiB) must be refused before the library runs.
  // Argon2 itself requires at least 8 KiB per lane (RFC 9106 §3.1).
  checkBound("argon2 m (KiB)", memoryCost, 8 * parallelism, limits.argon2MaxMemoryKiB);
  checkBound("argon2 t", timeCost, 1, limits.argon2MaxTime);
  const saltBytes = b64NoPadLength(m[6]!);
  const hashBytes = b64NoPadLength(m[7]!);
  if (saltBytes === null || hashBytes === null) throw new UnsupportedHashError("argon2 salt or hash is not canonical unpadded base64");
  // RFC 9106 §3.1: salts of at least 8 bytes.
  checkBound("argon2 salt length", saltBytes, Math.max(8, limits.minSaltBytes), limits.maxSaltBytes);
  checkBound("argon2 hash length", hashBytes, limits.minDigestBytes, limits.maxDigestBytes);
  return { variant: m[1] as ParsedArgon2["variant"], version: m[2] === "16" ? 16 : m[2] === "19" ? 19 : 16, memoryCost, timeCost, parallelism, saltBytes, hashBytes };
}

/**
 * Verifies `password` (a string, or the raw bytes of a wrapped legacy result) against a PHC
 * string, after parsing and bounding it.
 *
 * @example
 * await verifyArgon2(phc, "password", DEFAULT_HASH_LIMITS) // true or false
 */
export async function verifyArgon2(phc: string, password: string | Uint8Array, limits: HashLimits): Promise<boolean> {
  parseArgon2(phc, limits);
  return argon2Verify(phc, password);
}

/**
 * Hashes with argon2id (v=19) and the given salt, returning the PHC string.
 *
 * @example
 * await hashArgon2id("password", { memoryCost: 19456, timeCost: 2, parallelism: 1 }, random.bytes(16))
 */
export async function hashArgon2id(password: string | Uint8Array, params: Argon2Params, salt: Uint8Array): Promise<string> {
  return argon2Hash(password, { ...params, algorithm: ARGON2ID, outputLen: 32, salt });
}

/** True when argon2 work of these parameters costs less memory or fewer passes than the policy minimum. */
export function argon2CostBelowPolicy(p: Pick<Argon2Params, "memoryCost" | "timeCost">, policy: RehashPolicy): boolean {
  return p.memoryCost < policy.minimum.memoryCost || p.timeCost < policy.minimum.timeCost;
}

/**
 * True when argon2 work is cheaper to attack than the policy's: another variant than argon2id (argon2i with few
 * passes falls to time-memory tradeoffs), version 0x10 (later passes overwrite memory, the weakness 0x13 fixed by
 * XOR-ing), or less memory or fewer passes than the minimum. The judgement of argon2BelowPolicy that is about the work
 * a guess costs; also asked of a wrapped hash's outer layer (PasswordContext.belowMinimumCost: the census and
 * migrate-hashes call such a hash below its minimum, ASVS 11.4.2).
 */
export function argon2WorkBelowPolicy(p: Pick<Argon2Work, "variant" | "version" | "memoryCost" | "timeCost">, policy: RehashPolicy): boolean {
  return p.variant !== "argon2id" || p.version !== 19 || argon2CostBelowPolicy(p, policy);
}

/** True when an argon2id hash is weaker than the policy minimum (or an old version/variant, or a short salt or tag). */
export function argon2BelowPolicy(p: ParsedArgon2, policy: RehashPolicy): boolean {
  return argon2WorkBelowPolicy(p, policy) || p.saltBytes < 16 || p.hashBytes < 32;
}

function argon2Scheme(variant: "argon2id" | "argon2i", limits: HashLimits): PasswordScheme {
  const prefix = `$${variant}$`;
  const parse = (hash: string): ParsedArgon2 => {
    const p = parseArgon2(hash, limits);
    if (p.variant !== variant) throw new UnsupportedHashError(`not an ${variant} hash`);
    return p;
  };
  return {
    id: variant,
    identify: (hash: string): boolean => hash.startsWith(prefix),
    parse,
    async verify(password: string, hash: string): Promise<boolean> {
      parse(hash);
      return argon2Verify(hash, password);
    },
    needsRehash(hash: string, policy: RehashPolicy): boolean {
      const p = parse(hash);
      return policy.defaultScheme !== variant || argon2BelowPolicy(p, policy);
    },
    argon2Params(hash: string): Argon2Work {
      const { variant, version, memoryCost, timeCost, parallelism } = parse(hash);
      return { variant, version, memoryCost, timeCost, parallelism };
    },
    describe(hash: string): HashDescription {
      const p = parse(hash);
      return { scheme: variant, params: `m=${p.memoryCost},t=${p.timeCost},p=${p.parallelism}` };
    },
  } satisfies PasswordScheme;
}

/**
 * argon2id and argon2i.
 *
 * @example
 * const [argon2id] = argon2Schemes(DEFAULT_HASH_LIMITS);
 * argon2id.describe(phc) // { scheme: "argon2id", params: "m=19456,t=2,p=1" }
 */
export function argon2Schemes(limits: HashLimits): PasswordScheme[] {
  return [argon2Scheme("argon2id", limits), argon2Scheme("argon2i", limits)];
}
