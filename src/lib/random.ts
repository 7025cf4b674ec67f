// Randomness as a dependency: domain code receives a RandomSource so tests can make it
// deterministic where they must, while production always uses the CSPRNG.
import { randomBytes } from "node:crypto";

export interface RandomSource {
  /** Fills and returns `size` cryptographically secure random bytes. */
  bytes(size: number): Uint8Array;
}

export const systemRandom: RandomSource = {
  bytes: (size: number): Uint8Array => new Uint8Array(randomBytes(size)),
};
