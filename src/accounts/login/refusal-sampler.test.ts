// The sampler that bounds the audit rows of throttled attempts: one per key and window, the rest counted on the next
// recorded one, a global budget per window, and a bounded memory of keys.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RefusalSampler } from "./refusal-sampler.ts";

describe("RefusalSampler (ASVS 16.3.1 counts kept, 2.4.1 rows bounded)", () => {
  it("records the first refusal of a key in a window and counts the rest on the key's next recorded one", () => {
    const s = new RefusalSampler({ windowMs: 1000 });
    assert.deepEqual(s.take("ip:a", 0), { record: true, suppressed: 0, suppressedElsewhere: 0 });
    for (let i = 0; i < 5; i++) assert.deepEqual(s.take("ip:a", 10 + i), { record: false });
    assert.deepEqual(s.take("ip:b", 20), { record: true, suppressed: 0, suppressedElsewhere: 0 }, "another key has its own window");
    assert.deepEqual(s.take("ip:a", 1000), { record: true, suppressed: 5, suppressedElsewhere: 0 }, "the next window's first carries the count");
  });

  it("records at most `budget` events a window across keys; what the budget leaves out is counted on the next recorded event", () => {
    const s = new RefusalSampler({ windowMs: 1000, budget: 3 });
    const recorded = Array.from({ length: 10 }, (_, i) => s.take(`ip:${i}`, 5)).filter((v) => v.record).length;
    assert.equal(recorded, 3);
    assert.deepEqual(s.take("ip:new", 1000), { record: true, suppressed: 0, suppressedElsewhere: 7 });
  });

  it("remembers at most `maxKeys` keys, forgetting the least recently recorded first, its count kept as the others'", () => {
    const s = new RefusalSampler({ windowMs: 1000, maxKeys: 2 });
    s.take("k1", 0);
    s.take("k1", 1); // one unrecorded for k1
    s.take("k2", 0);
    // k1 forgotten: its count is not lost, it rides on the event recorded now as the others'.
    assert.deepEqual(s.take("k3", 0), { record: true, suppressed: 0, suppressedElsewhere: 1 });
    assert.equal(s.take("k1", 1).record, true, "a forgotten key is recorded again: memory stays bounded, rows stay bounded by the budget");
    assert.equal(s.take("k3", 2).record, false);
  });

  it("drain hands out the counts no event carried: per key once its window has ended (every key at shutdown), and the others'", () => {
    const s = new RefusalSampler({ windowMs: 1000, budget: 1 });
    s.take("a", 0);
    s.take("a", 1);
    s.take("a", 2);
    s.take("b", 3); // over the budget: an other
    assert.deepEqual(s.drain(500), { keys: [], others: 1 }, "a's window has not ended");
    assert.deepEqual(s.drain(1000), { keys: [{ key: "a", unrecorded: 2 }], others: 0 });
    assert.deepEqual(s.drain(1001), { keys: [], others: 0 }, "handed out once");
    s.take("a", 1500);
    s.take("a", 1501);
    assert.deepEqual(s.drain(1502, { all: true }), { keys: [{ key: "a", unrecorded: 1 }], others: 0 }, "at shutdown, the current window too");
  });
});
