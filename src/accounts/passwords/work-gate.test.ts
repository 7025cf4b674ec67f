// The password-work gate's counting: capacity, the per-client share, release, and the once-a-minute report.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PasswordWorkGate } from "./work-gate.ts";

describe("PasswordWorkGate", () => {
  it("admits up to the capacity in all and the share per client, and admits again once a slot is released", () => {
    const gate = new PasswordWorkGate({ capacity: 4, perClient: 2 });
    const a1 = gate.tryEnter("a");
    const a2 = gate.tryEnter("a");
    assert.ok(a1 && a2);
    assert.equal(gate.tryEnter("a"), null, "a third from one client is past its share");
    const b1 = gate.tryEnter("b");
    const c1 = gate.tryEnter("c");
    assert.ok(b1 && c1);
    assert.equal(gate.inFlight, 4);
    assert.equal(gate.tryEnter("d"), null, "past the capacity, a new client too");
    a1();
    assert.equal(gate.inFlight, 3);
    assert.ok(gate.tryEnter("a"), "the client's share has room again");
  });

  it("a release called twice gives back one slot (a double release must not let more in than the capacity)", () => {
    const gate = new PasswordWorkGate({ capacity: 2 });
    const first = gate.tryEnter("a");
    assert.ok(first);
    first();
    first();
    assert.equal(gate.inFlight, 0);
    assert.ok(gate.tryEnter("x") && gate.tryEnter("y"));
    assert.equal(gate.tryEnter("z"), null);
  });

  it("the share defaults to a quarter of the capacity, at least one, never more than the capacity", () => {
    assert.equal(new PasswordWorkGate({ capacity: 32 }).perClient, 8);
    assert.equal(new PasswordWorkGate({ capacity: 3 }).perClient, 1);
    assert.equal(new PasswordWorkGate({ capacity: 2, perClient: 5 }).perClient, 2);
  });

  it("refuses a capacity or share that is not a whole number of at least 1", () => {
    for (const capacity of [0, -1, 1.5, Number.NaN]) assert.throws(() => new PasswordWorkGate({ capacity }), /capacity must be a whole number/);
    assert.throws(() => new PasswordWorkGate({ capacity: 4, perClient: 0 }), /perClient must be a whole number/);
  });

  it("reports the refusals at most once per period, each counted in exactly one report", () => {
    const gate = new PasswordWorkGate({ capacity: 1, reportEveryMs: 60_000 });
    assert.equal(gate.takeReport(0), null, "nothing refused, nothing to report");
    assert.ok(gate.tryEnter("a"));
    gate.tryEnter("b");
    assert.equal(gate.takeReport(1_000), 1);
    gate.tryEnter("c");
    gate.tryEnter("d");
    assert.equal(gate.takeReport(30_000), null, "within the period: counted, not reported");
    assert.equal(gate.takeReport(61_000), 2);
    assert.equal(gate.takeReport(200_000), null);
  });
});
