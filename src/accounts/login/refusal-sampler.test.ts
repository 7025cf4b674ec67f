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

  it("remembers at most `maxKeys` keys, forgetting the least recently recorded first", () => {
    const s = new RefusalSampler({ windowMs: 1000, maxKeys: 2 });
    s.take("k1", 0);
    s.take("k2", 0);
    s.take("k3", 0); // k1 forgotten
    assert.equal(s.take("k1", 1).record, true, "a forgotten key is recorded again: memory stays bounded, rows stay bounded by the budget");
    assert.equal(s.take("k3", 2).record, false);
  });
});
