import assert from "node:assert/strict";
import { test } from "node:test";
import { ExpiringTable } from "./expiring-table.ts";

interface Rec {
  seen: number;
  pinned: boolean;
}

function table(capacity: number, windowMs = 50): ExpiringTable<string, Rec> {
  return new ExpiringTable<string, Rec>({ capacity, windowMs, lastSeen: (r) => r.seen, pinned: (r) => r.pinned });
}

test("adds without evicting while there is room", () => {
  const t = table(3);
  assert.equal(t.add("a", { seen: 0, pinned: false }, 0), true);
  assert.equal(t.add("b", { seen: 0, pinned: false }, 1000), true);
  assert.equal(t.size, 2);
  assert.equal(t.evicted, 0);
});

test("when full, evicts the records idle for longer than the window, and only those", () => {
  const t = table(2);
  const a = { seen: 0, pinned: false };
  t.add("a", a, 0);
  t.add("b", { seen: 0, pinned: false }, 0);
  a.seen = 100; // a is seen again; its heap entry is now stale
  assert.equal(t.add("c", { seen: 120, pinned: false }, 120), true);
  assert.deepEqual([t.get("a") === a, t.get("b"), t.evicted], [true, undefined, 1]);
});

test("refuses a new record when every record is inside the window", () => {
  const t = table(2);
  t.add("a", { seen: 100, pinned: false }, 100);
  t.add("b", { seen: 120, pinned: false }, 120);
  assert.equal(t.makeRoom(130), false);
  assert.equal(t.add("c", { seen: 130, pinned: false }, 130), false);
  assert.equal(t.get("c"), undefined);
  assert.equal(t.size, 2);
  // Later, both are idle: both go, the new one comes in.
  assert.equal(t.add("d", { seen: 1000, pinned: false }, 1000), true);
  assert.deepEqual([t.size, t.evicted], [1, 2]);
});

test("never evicts a pinned record, however old", () => {
  const t = table(2);
  const old = { seen: 0, pinned: false };
  t.add("offender", old, 0);
  t.add("b", { seen: 0, pinned: false }, 0);
  old.pinned = true;
  assert.equal(t.add("c", { seen: 10_000, pinned: false }, 10_000), true);
  assert.equal(t.get("offender"), old);
  assert.equal(t.get("b"), undefined);
  assert.equal(t.add("d", { seen: 10_010, pinned: false }, 10_010), false, "the offender and a recent record fill it");
});

test("a record with a NaN time is evicted rather than looping", () => {
  const t = table(1);
  t.add("a", { seen: Number.NaN, pinned: false }, 0);
  assert.equal(t.add("b", { seen: 5, pinned: false }, 5), true);
  assert.equal(t.get("a"), undefined);
});

test("evicts oldest first across many records with random refreshes (against a brute-force model)", () => {
  let x = 12345;
  const rand = (n: number): number => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % n;
  };
  const t = table(50, 100);
  const model = new Map<string, Rec>();
  for (let now = 0; now < 5000; now++) {
    const key = `k${rand(200)}`;
    const rec = t.get(key);
    if (rec !== undefined) {
      rec.seen = now;
      continue;
    }
    const full = model.size >= 50;
    if (full) for (const [k, r] of model) if (now - r.seen > 100) model.delete(k);
    const fresh = { seen: now, pinned: false };
    const room = model.size < 50;
    if (room) model.set(key, fresh);
    assert.equal(t.add(key, fresh, now), room, `at ${now}`);
    assert.deepEqual(new Set([...t.values()]), new Set(model.values()), `at ${now}`);
  }
});
