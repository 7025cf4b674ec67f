// time-window.ts: fail2ban's window over the last n failures read, or over the latest n by stamp, as the analyzer
// judges each address, /64 and user.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { newRing, NOT_KEPT, pushByStamp, pushReadOrder, ringFor, withinWindowByStamp } from "./time-window.ts";

const W = 600_000;

/** Pushes `times` in order into a window of `n` (both halves, as the analyzer; or `only` one); for each, whether it was met. */
function run(n: number, times: readonly number[], window = W, only?: "read" | "stamp"): boolean[] {
  const ring = new Float64Array(2 * n);
  let read = 0;
  let byStamp = 0;
  return times.map((t) => {
    const c = pushByStamp(ring, n, byStamp, t);
    if (c !== NOT_KEPT) byStamp = c;
    const inRead = pushReadOrder(ring, n, read++, t, window);
    const inStamp = c !== NOT_KEPT && withinWindowByStamp(ring, n, c, window);
    return only === "read" ? inRead : only === "stamp" ? inStamp : inRead || inStamp;
  });
}

test("in time order it is fail2ban's window: the n-th failure within the window meets it", () => {
  assert.deepEqual(run(3, [0, 1000, 2000, 700_000, 701_000, 702_000]), [false, false, true, false, false, true]);
  assert.deepEqual(run(3, [0, 400_000, 800_000, 1_200_000]), [false, false, false, false]);
});

// ASVS 16.3.1. Red team 38, finding 5: taken in read order, failures stamped two years back, four after every four
// real ones, kept every run of five read apart in time.
test("failures stamped long before, read between the real ones, do not hide them", () => {
  const old = -2 * 365 * 86_400_000;
  const times: number[] = [];
  for (let i = 0; i < 12; i++) {
    times.push(i * 1000);
    if (i % 4 === 3) times.push(old, old + 1, old + 2, old + 3);
  }
  assert.ok(run(5, times).some(Boolean), "the twelve real failures in 12 s meet the window");
  assert.ok(!run(5, times, W, "read").some(Boolean), "fail2ban's read order alone misses them");
  assert.deepEqual(run(5, [0, 1000, 2000, 3000, -W * 10, 4000]), [false, false, false, false, false, true]);
});

test("a failure read late but stamped inside the burst counts in it", () => {
  const times = [900_000, 900_100, 0, 1, 900_200];
  assert.deepEqual(run(3, times), [false, false, false, false, true]);
  assert.deepEqual(run(3, times, W, "read"), [false, false, false, false, false], "fail2ban's read order alone misses it");
});

// Keeping the latest n by stamp alone, one failure stamped after a burst (RFC 5424 lets a sender write any year)
// stayed among the n and kept every later window of the burst too wide: the read-order half still sees the burst.
test("one failure stamped after the burst, read before it, does not hide it", () => {
  const times = [10 * 365 * 86_400_000, 0, 1000, 2000, 3000, 4000];
  assert.deepEqual(run(5, times), [false, false, false, false, false, true]);
  assert.deepEqual(run(5, times, W, "stamp"), [false, false, false, false, false, false], "by stamp alone it would");
});

test("with n = 1 every failure meets the window, an old one too", () => {
  assert.deepEqual(run(1, [5000, 1000], W, "stamp"), [true, true]);
});

test("failures stamped before the real ones, read anywhere among them, never hide a window fail2ban meets on the real ones", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 3_000_000 }), { maxLength: 40 }), fc.array(fc.integer({ min: -10_000_000, max: 0 }), { maxLength: 40 }), (real, forged) => {
      const sorted = [...real].sort((a, b) => a - b);
      const met = run(5, sorted, W, "read").some(Boolean);
      // Older forged failures mixed in anywhere: what the real ones met, they still meet.
      const mixed: number[] = [];
      sorted.forEach((t, i) => mixed.push(t, ...(forged[i] === undefined ? [] : [forged[i] as number])));
      return !met || run(5, mixed).some(Boolean);
    }),
  );
});

test("keeps the n latest by stamp, sorted, whatever the order", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 30 }), (times) => {
      const n = 4;
      const ring = new Float64Array(2 * n);
      let count = 0;
      for (const t of times) {
        const c = pushByStamp(ring, n, count, t);
        if (c !== NOT_KEPT) count = c;
      }
      const held = Math.min(count, n);
      const start = count >= n ? count % n : 0;
      const kept = Array.from({ length: held }, (_, k) => ring[n + ((start + k) % n)]);
      return JSON.stringify(kept) === JSON.stringify([...times].sort((a, b) => a - b).slice(-held));
    }),
  );
});

// Red team 38b, finding 6: a ring of 2n numbers made at a key's first failure cost 16 KB a one-off address at n = 1000.
/** As `run`, both halves, restarting the counts when the window is met (as an address's at a ban) if `restart`. */
function judge(n: number, times: readonly number[], restart: boolean, grow: boolean): { met: boolean[]; sizes: number[] } {
  let ring = grow ? newRing(n) : new Float64Array(2 * n);
  let read = 0;
  let byStamp = 0;
  const sizes: number[] = [];
  const met = times.map((t) => {
    if (grow) ring = ringFor(ring, n, read);
    sizes.push(ring.length);
    const c = pushByStamp(ring, n, byStamp, t);
    if (c !== NOT_KEPT) byStamp = c;
    const hit = pushReadOrder(ring, n, read++, t, W) || (c !== NOT_KEPT && withinWindowByStamp(ring, n, c, W));
    if (hit && restart) read = byStamp = 0;
    return hit;
  });
  return { met, sizes };
}

test("a ring made small and grown as failures come judges every failure as a full-size one", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.integer({ min: -2_000_000, max: 2_000_000 }), { maxLength: 120 }), fc.boolean(), (n, times, restart) => {
      assert.deepEqual(judge(n, times, restart, true).met, judge(n, times, restart, false).met);
    }),
    { numRuns: 2000 },
  );
});

test("a ring starts at 8 numbers (fewer for n < 4), doubles when full, and stops at 2n", () => {
  assert.equal(newRing(1000).length, 8);
  assert.equal(newRing(1).length, 2);
  assert.equal(newRing(3).length, 6);
  const { sizes } = judge(20, Array.from({ length: 30 }, (_, i) => i * W), false, true);
  assert.deepEqual([...new Set(sizes)], [8, 16, 32, 40]);
  assert.equal(sizes.indexOf(16), 4, "grown for the fifth failure");
});
