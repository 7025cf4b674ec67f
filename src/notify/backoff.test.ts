// Retry timing: grows exponentially, is capped, and is jittered within the upper half of each step.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { systemRandom, type RandomSource } from "../lib/random.ts";
import { DEFAULT_RETRY, retryBudget, retryDelay } from "./backoff.ts";

const fixed = (byte: number): RandomSource => ({ bytes: (n) => new Uint8Array(n).fill(byte) });
const HOUR = 3_600_000;

describe("retry backoff", () => {
  it("doubles the delay with each attempt until the cap", () => {
    const low = fixed(0);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 20].map((a) => retryDelay(a, DEFAULT_RETRY, low)), [30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000]);
  });

  it("gives a message at least 24 hours of retries before it is dead, and at most 48, as documented", () => {
    const waits = (random: RandomSource): number => Array.from({ length: DEFAULT_RETRY.maxAttempts - 1 }, (_, i) => retryDelay(i + 1, DEFAULT_RETRY, random)).reduce((a, b) => a + b, 0);
    const shortest = waits(fixed(0));
    const longest = waits(fixed(255));
    assert.ok(shortest >= 24 * HOUR, `all waits at their lowest add up to ${(shortest / HOUR).toFixed(1)} h`);
    assert.ok(longest <= 48.5 * HOUR, `all waits at their highest add up to ${(longest / HOUR).toFixed(1)} h`);
    assert.equal(retryBudget(DEFAULT_RETRY).minMs, shortest);
    assert.ok(Math.abs(retryBudget(DEFAULT_RETRY).maxMs - longest) < DEFAULT_RETRY.maxAttempts, "the computed budget matches the waits");
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
