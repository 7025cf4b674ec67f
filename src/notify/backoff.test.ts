// Retry timing: grows exponentially, is capped, and is jittered within the upper half of each step.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { systemRandom, type RandomSource } from "../lib/random.ts";
import { DEFAULT_RETRY, retryDelay } from "./backoff.ts";

const fixed = (byte: number): RandomSource => ({ bytes: (n) => new Uint8Array(n).fill(byte) });

describe("retry backoff", () => {
  it("doubles the delay with each attempt until the cap", () => {
    const low = fixed(0);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 20].map((a) => retryDelay(a, DEFAULT_RETRY, low)), [30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_800_000, 1_800_000, 1_800_000]);
  });

  it("keeps every delay between half and all of its step (property)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 10_000 }), (attempts) => {
      const step = Math.min(DEFAULT_RETRY.maxDelayMs, DEFAULT_RETRY.baseDelayMs * 2 ** Math.min(attempts - 1, 30));
      const d = retryDelay(attempts, DEFAULT_RETRY, systemRandom);
      assert.ok(d >= step / 2 && d <= step, `${d} for attempt ${attempts}`);
    }), { numRuns: 300 });
  });

  it("spreads retries of messages that failed together", () => {
    const delays = new Set(Array.from({ length: 50 }, () => retryDelay(4, DEFAULT_RETRY, systemRandom)));
    assert.ok(delays.size > 40, `${delays.size} distinct delays out of 50`);
  });
});
