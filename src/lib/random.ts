// Randomness as a dependency: domain code receives a RandomSource so tests can make it
// deterministic where they must, while production always uses the CSPRNG.
import { randomBytes } from "node:crypto";

export interface RandomSource {
  /** Fills and returns `size` cryptographically secure random bytes. */
  bytes(size: number): Uint8Array;
}

// Small requests (ids, salts, nonces) are served from a pooled CSPRNG buffer: one getrandom call per
// 4 KiB instead of one per id. Bytes are handed out once and the pool is refilled, never reused.
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let offset = 0;

export const systemRandom: RandomSource = {
  bytes: (size: number): Uint8Array => {
    if (size > 256) return new Uint8Array(randomBytes(size));
    if (offset + size > POOL_SIZE) {
      pool = randomBytes(POOL_SIZE);
      offset = 0;
    }
    const out = new Uint8Array(pool.subarray(offset, offset + size));
    pool.fill(0, offset, offset + size);
    offset += size;
    return out;
  },
};
