// The shared bound on failures kept for keys logged out of time order (out-of-order.ts): a largest key gives up its
// oldest failure by stamp to a smaller one, checked against a plain model over random adds.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { prng as random } from "../../dev/seed.ts";
import { exactWindows, OutOfOrder, type OutOfOrderKey } from "./out-of-order.ts";

/** A key's failures as [stamp, file, line] sorted by stamp, file, line. */
function held(key: OutOfOrderKey): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < key.length; i++) out.push([key.data[3 * i] as number, key.data[3 * i + 1] as number, key.data[3 * i + 2] as number]);
  return out.sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number) || (a[2] as number) - (b[2] as number));
}

const empty = new Float64Array(10);
const open = (o: OutOfOrder, name: string): OutOfOrderKey => o.open(name, empty, 5, 0, 0, 0, 1, 1);

describe("OutOfOrder's fair bound", () => {
  // ASVS 16.3.1, 16.4.2: forged lines filling the bound must not take a smaller key's failures (red team 40b, 2).
  test("at the bound only a largest key gives up a failure, its oldest by stamp; held never passes the limit", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rnd = random(seed);
      const limit = 50 + Math.floor(rnd() * 100);
      const o = new OutOfOrder(limit);
      const keys: OutOfOrderKey[] = [];
      const model: number[][][] = [];
      for (let line = 1; line <= 3000; line++) {
        if (keys.length < 12 && rnd() < 0.01 + (keys.length === 0 ? 1 : 0)) {
          keys.push(open(o, `k${keys.length}`));
          model.push([]);
        }
        // Skewed: key 0 gets most lines, as a forged key would.
        const k = rnd() < 0.5 ? 0 : Math.floor(rnd() * keys.length);
        const key = keys[k] as OutOfOrderKey;
        const t = Math.floor(rnd() * 1000);
        const before = keys.map((x) => x.length);
        o.add(key, t, 1, line);
        const mine = model[k] as number[][];
        mine.push([t, 1, line]);
        const total = model.reduce((s, m) => s + m.length, 0);
        if (total > limit) {
          // Who gave one up: a key now holding fewer, or this key when it holds as many as before.
          let gave = keys.findIndex((x, i) => x.length < (before[i] as number));
          if (gave === -1) gave = k;
          const sizes = model.map((m, i) => (i === k ? m.length - 1 : m.length));
          const most = Math.max(...sizes);
          assert.equal(sizes[gave], most, `seed ${seed} line ${line}: a key not the largest gave a failure up`);
          if (gave !== k) assert.ok((sizes[k] as number) < most, "a largest key takes from itself");
          assert.ok(keys[gave]?.partial);
          const m = model[gave] as number[][];
          m.sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number) || (a[2] as number) - (b[2] as number));
          m.shift();
        }
        assert.ok(o.held <= limit);
        assert.equal(o.held, keys.reduce((s, x) => s + x.length, 0));
        assert.equal(o.held + o.unheld, line);
      }
      keys.forEach((key, i) => assert.deepEqual(held(key), [...(model[i] as number[][])].sort((a, b) => (a[0] as number) - (b[0] as number) || (a[2] as number) - (b[2] as number)), `seed ${seed} key ${i}`));
      assert.equal(o.keys, keys.length);
    }
  });

  // ASVS 16.3.1. The attack in small: one key fills the bound, a small one after it is held whole.
  test("a key smaller than the largest is held whole, however many failures the largest holds", () => {
    const o = new OutOfOrder(1000);
    const big = open(o, "forged");
    for (let i = 0; i < 5000; i++) o.add(big, 10_000 + i, 1, i + 1);
    const small = open(o, "attacker");
    for (let i = 0; i < 24; i++) o.add(small, 500 + i, 1, 6000 + i);
    assert.equal(small.length, 24);
    assert.equal(small.partial, false);
    assert.equal(big.partial, true);
    assert.equal(big.length, 976);
    // The forged key keeps its latest by stamp.
    assert.equal(held(big)[0]?.[0], 10_000 + 5000 - 976);
    assert.equal(o.held, 1000);
    assert.equal(o.unheld, 4000 + 24);
    assert.deepEqual(exactWindows(small, 5, 10).map((w) => w.ms), [504, 509, 514, 519]);
  });

  // ASVS 16.5.2 (bounded memory): lists halve when a key gave most of its failures up.
  test("a key that gave failures up shrinks its list: in all under four times the failures held", () => {
    const o = new OutOfOrder(4096);
    const keys = Array.from({ length: 8 }, (_, k) => open(o, `k${k}`));
    // Each key in turn grows to the largest, taking from the ones before it.
    for (const [k, key] of keys.entries()) for (let i = 0; i < 4096; i++) o.add(key, i, 1, k * 10_000 + i);
    const triples = keys.reduce((s, key) => s + key.data.length / 3, 0);
    assert.equal(o.held, 4096);
    assert.ok(triples < 4 * 4096, `${triples} triples allocated for 4096 held`);
    assert.ok(keys.every((key) => key.length >= 4096 / 8 - 1 && key.length <= 4096 / 8 + 1), keys.map((key) => key.length).join(" "));
  });

  test("exact windows break ties on stamp by file, then line (the order read)", () => {
    const o = new OutOfOrder(100);
    const key = open(o, "k");
    o.add(key, 5, 2, 1);
    o.add(key, 5, 1, 9);
    o.add(key, 5, 1, 3);
    assert.deepEqual(exactWindows(key, 3, 0), [{ ms: 5, file: 2, line: 1 }]);
  });
});
