// The sender against a relay that takes its time over the end of the data (RFC 5321 §4.5.3.2.6 gives it 10 minutes),
// on SQLite and PostgreSQL: a delivery waiting for that reply holds its own slot and nothing else (mail queued
// meanwhile goes out in a free slot), the concurrency bound holds over overlapping batches, a stop still ends once
// the cut comes, and a delivery started late in a lease still gets its whole deadline.
import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { within } from "../../test/helpers/scratch.ts";
import { systemRandom } from "../lib/random.ts";
import { PRIORITY, type NewMessage, type OutboxMessage } from "./outbox.ts";
import { OutboxSender, type RunReport } from "./sender.ts";
import { notifyFixture } from "./test-setup.ts";
import type { DeliveryOutcome, MailTransport } from "./transport.ts";

const MINUTE = 60_000;

function message(n: number, extra: Partial<NewMessage> = {}): NewMessage {
  return { idempotencyKey: `slow-relay:${n}`, to: `user${n}@example.org`, subject: `Message ${n}`, text: `Body ${n}\n`, kind: "test.message", ...extra };
}

/** Waits until `condition` holds, checking every 5 ms; fails naming `what` after 10 s. */
async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await sleep(5);
  }
}

interface HoldingRelay {
  transport: MailTransport;
  /** Ids in the order their deliveries started, and ended. */
  started: string[];
  ended: string[];
  /** The most deliveries in flight at once. */
  maxInFlight(): number;
  /** Lets a held delivery have its 250. */
  answer(id: string): void;
}

/** A relay that answers at once, except for messages `holds` picks: those wait for `answer` (or the sender's abort). */
function holdingRelay(holds: (m: OutboxMessage) => boolean): HoldingRelay {
  const started: string[] = [];
  const ended: string[] = [];
  const waiting = new Map<string, () => void>();
  let inFlight = 0;
  let most = 0;
  return {
    started, ended,
    maxInFlight: () => most,
    answer: (id) => waiting.get(id)?.(),
    transport: {
      send: (m, options) => new Promise<DeliveryOutcome>((resolve) => {
        started.push(m.id);
        most = Math.max(most, ++inFlight);
        let over = false;
        const end = (outcome: DeliveryOutcome): void => {
          if (over) return;
          over = true;
          inFlight--;
          ended.push(m.id);
          resolve(outcome);
        };
        options?.signal?.addEventListener("abort", () => end({ ok: false, permanent: false, error: "delivery aborted while waiting for the final reply" }));
        if (holds(m)) waiting.set(m.id, () => end({ ok: true, providerMessageId: null }));
        else setImmediate(() => end({ ok: true, providerMessageId: null }));
      }),
      close: async () => {},
    },
  };
}

forEachDialect("outbox sender and a slow relay", (fx) => {
  it("a delivery waiting for its relay's final reply holds its slot, not a reset link queued meanwhile: the next batch goes out in a free slot (RFC 5321 §4.5.3.2.6)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const relay = holdingRelay((m) => m.to === "slow@example.org");
    const { id: slow } = await f.outbox.enqueue(message(1, { to: "slow@example.org", kind: "security.password-changed", priority: PRIORITY.security }));
    const reports: RunReport[] = [];
    const stop = new AbortController();
    // As `bulwark serve` builds it (src/http/mail-runner.ts): five slots, the rest by default.
    const sender = new OutboxSender({ outbox: f.outbox, transport: relay.transport, clock: f.clock, random: systemRandom }, { name: "serve", concurrency: 5 });
    const running = sender.run({ stop: stop.signal, idleMs: 5, onReport: (r) => reports.push(r) });
    t.after(async () => {
      stop.abort();
      relay.answer(slow);
      await running;
    });
    await until(() => relay.started.includes(slow), "the slow delivery started");

    const { id: reset } = await f.outbox.enqueue(message(2, { kind: "account.password-reset", priority: PRIORITY.link }));
    await until(async () => (await f.outbox.get(reset)).status === "sent", "the reset link queued while the relay held the first message was sent");
    assert.deepEqual(relay.ended, [reset], "the reset link went out while the first delivery still waited for its reply");
    assert.equal((await f.outbox.get(slow)).status, "sending");

    relay.answer(slow);
    await until(async () => (await f.outbox.get(slow)).status === "sent", "the slow delivery was recorded once answered");
    stop.abort();
    await running;
    const total = reports.reduce((sum, r) => ({ claimed: sum.claimed + r.claimed, sent: sum.sent + r.sent }), { claimed: 0, sent: 0 });
    assert.deepEqual(total, { claimed: 2, sent: 2 }, `each message claimed and sent once: ${JSON.stringify(reports)}`);
  });

  it("overlapping batches keep the sender's concurrency bound: with every slot held by a slow delivery, new mail waits for a slot to free", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const relay = holdingRelay((m) => m.to.startsWith("slow"));
    const slow: string[] = [];
    for (const n of [1, 2]) slow.push((await f.outbox.enqueue(message(n, { to: `slow${n}@example.org` }))).id);
    const stop = new AbortController();
    const sender = new OutboxSender({ outbox: f.outbox, transport: relay.transport, clock: f.clock, random: systemRandom }, { name: "serve", concurrency: 2 });
    const running = sender.run({ stop: stop.signal, idleMs: 5 });
    t.after(async () => {
      stop.abort();
      for (const id of slow) relay.answer(id);
      await running;
    });
    await until(() => relay.started.length === 2, "both slow deliveries started");
    const { id: next } = await f.outbox.enqueue(message(3));
    await sleep(100);
    assert.equal((await f.outbox.get(next)).status, "queued", "no third delivery, and no claim holding mail it cannot start");

    relay.answer(slow[0]!);
    await until(async () => (await f.outbox.get(next)).status === "sent", "the new message went out in the freed slot");
    assert.equal(relay.maxInFlight(), 2, "never more than `concurrency` deliveries at once");
    relay.answer(slow[1]!);
    await until(async () => (await f.outbox.get(slow[1]!)).status === "sent", "the second slow delivery was recorded");
  });

  it("a stop while a slow delivery waits starts nothing more, and ends once the cut comes: the delivery is handed back, its attempt not counted", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const relay = holdingRelay((m) => m.to === "slow@example.org");
    const { id: slow } = await f.outbox.enqueue(message(1, { to: "slow@example.org" }));
    const reports: RunReport[] = [];
    const stop = new AbortController();
    const cut = new AbortController();
    const sender = new OutboxSender({ outbox: f.outbox, transport: relay.transport, clock: f.clock, random: systemRandom }, { name: "serve", concurrency: 5 });
    const running = sender.run({ stop: stop.signal, cut: cut.signal, idleMs: 5, onReport: (r) => reports.push(r) });
    t.after(async () => {
      cut.abort();
      await running;
    });
    await until(() => relay.started.includes(slow), "the slow delivery started");
    stop.abort();
    const { id: later } = await f.outbox.enqueue(message(2));
    await sleep(50);
    assert.deepEqual(relay.started, [slow], "no delivery starts once stopping");

    // What the mail runner does once STOP_GRACE_MS is over.
    // The held delivery never answers on its own: a loop that ignored the cut would wait for it for ever (a net, not a
    // stopwatch: 30 s is far past anything the loop does once it heeds the cut).
    cut.abort();
    assert.notEqual(await within(running, 30_000), "timeout", "the loop did not end after the cut: it still waits for the held delivery");
    const row = await f.outbox.get(slow);
    assert.deepEqual([row.status, row.attempts, row.nextAttemptAt <= f.clock.now()], ["queued", 0, true], "handed back, due at once, no attempt charged");
    assert.deepEqual(relay.started, [slow]);
    // A poll's claim already on its way when the stop came may still take the later message (on PostgreSQL it can wait
    // for a pooled connection until after the insert): it is handed back at once, never left under a lease.
    assert.deepEqual([(await f.outbox.get(later)).status, (await f.outbox.get(later)).attempts], ["queued", 0]);
    assert.ok(reports.reduce((n, r) => n + r.released, 0) >= 1, JSON.stringify(reports));
  });

  it("a delivery started late in a batch's lease still has its whole deadline before the lease's margin: the lease is renewed first", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    // Lease left on the message as each delivery starts (its claim's end, next_attempt_at while it is sending).
    const leaseLeft: number[] = [];
    const transport: MailTransport = {
      async send(m): Promise<DeliveryOutcome> {
        leaseLeft.push((await f.outbox.get(m.id)).nextAttemptAt - f.clock.now());
        // Each delivery takes two minutes of the relay's time.
        f.clock.advance(2 * MINUTE);
        return { ok: true, providerMessageId: null };
      },
      close: async () => {},
    };
    await f.outbox.enqueueMany([1, 2, 3, 4, 5].map((n) => message(n)));
    const report = await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom }, { name: "serve", concurrency: 1 }).runOnce();
    assert.equal(report.sent, 5);
    // The defaults: an 11-minute deadline, ending a quarter of the 15-minute lease (3¾ minutes) before it.
    const needed = 11 * MINUTE + 15 * MINUTE / 4;
    assert.ok(leaseLeft.every((left) => left >= needed), `lease left at each start, in minutes: ${leaseLeft.map((l) => l / MINUTE).join(", ")}`);
  });
});
