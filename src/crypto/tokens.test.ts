// Ids: newId's 128 random bits, and newOrderedId's time order, which the audit log's and the outbox's indexes rely on.
import assert from "node:assert/strict";
import { it } from "node:test";
import { newId, newOrderedId } from "./tokens.ts";

const SHAPE = /^evt_[a-z2-7]{26}$/;

it("newOrderedId: an id made later sorts later byte for byte, also where a time digit steps from 'z' to '2' (was: RFC 4648's order put it before the ~200 ms of ids before it)", () => {
  // 2026-11-01T00:00:00.207Z → .208Z: the ninth character of the time part stepped from "z" to "2" there.
  const at = Date.UTC(2026, 10, 1, 0, 0, 0, 207);
  assert.ok(newOrderedId("evt", at) < newOrderedId("evt", at + 1), "a millisecond later sorts later at the step");
  // Every pair of times, near and far apart (a day, a year, the 48-bit range's ends): the ids compare as the times do.
  let seed = 12345;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 5000; i++) {
    const a = Math.floor(next() * 2 ** 47);
    const b = a + 1 + Math.floor(next() * [1, 1000, 86_400_000, 31_536_000_000][i % 4]!);
    const [x, y] = [newOrderedId("evt", a), newOrderedId("evt", b)];
    assert.ok(x < y, `${a} → ${x} does not sort before ${b} → ${y}`);
  }
  assert.ok(newOrderedId("evt", 0) < newOrderedId("evt", 2 ** 48 - 1));
});

it("newOrderedId keeps newId's shape, and ids of one millisecond are unique and unordered (80 random bits)", () => {
  const at = Date.UTC(2026, 11, 7);
  const ids = Array.from({ length: 2000 }, () => newOrderedId("evt", at));
  for (const id of ids) assert.match(id, SHAPE);
  assert.match(newId("evt"), SHAPE);
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(new Set(ids.map((id) => id.slice(0, 13))).size, 1, "one time prefix (the first 45 of its 48 bits) for one millisecond");
  assert.notDeepEqual(ids, [...ids].sort(), "the random part does not follow the order ids were made in");
});
