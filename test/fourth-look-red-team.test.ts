// Fourth-look red-team round: a second look at two fixes of the last hour, for what they missed.
// - 6c0b7ee (server runners): the stopping mail sender (runOnce({ stop, cut }), OutboxStore.release), i.e. what a
//   shutdown does to the messages in a batch. The attacker is whoever can make a server stop while its sender works:
//   a deploy, a crash loop the attacker provokes, or an account thief who wants the owner's "your password was
//   changed" notice (ASVS 6.3.7) lost or held back while the server goes down.
// - 24a35e0 (multi-node): the audit signer fetched again through a caller's transaction once older than 1 s. The
//   attacker is the same worker's own schedule: a checkpoint falling due inside a transaction on SQLite, where any
//   read outside that transaction waits for it for ever.
// Each test asserts the secure behaviour; "attack: … (was: …)" failed on the day it was written, before its fix.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { Outbox, PRIORITY } from "../src/notify/outbox.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { notifyFixture } from "../src/notify/test-setup.ts";
import type { DeliveryOutcome, MailTransport } from "../src/notify/transport.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { testDir, within } from "./helpers/scratch.ts";

const CHEAP = { BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
const BASE_ENV = { BULWARK_LOG_LEVEL: "silent", PORT: "0", HOST: "127.0.0.1", ...CHEAP };

/** A transport whose every delivery waits until its signal aborts (a relay that accepts the connection and stalls). */
function stallingTransport(): MailTransport & { started: number } {
  const transport = {
    started: 0,
    send(_message: unknown, options: { signal?: AbortSignal } = {}): Promise<DeliveryOutcome> {
      transport.started++;
      return new Promise<DeliveryOutcome>((resolve) => {
        const end = (): void => resolve({ ok: false, permanent: false, error: "delivery aborted: its deadline passed before the server accepted the message" });
        if (options.signal?.aborted) return end();
        options.signal?.addEventListener("abort", end, { once: true });
      });
    },
    close: async () => {},
  };
  return transport;
}

forEachDialect("a stopping mail sender", (fx) => {
  it("attack: a shutdown that arrives while the sender reads the queue between two deliveries starts no further delivery: the message stays unstarted and is handed back with no attempt spent (was: the next delivery started, held the shutdown until the grace cut it, and spent an attempt)", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const stop = new AbortController();
    const cut = new AbortController();
    // SIGTERM lands while a worker asks the queue whether anything more urgent is due: a database round trip made
    // before every delivery of a normal-priority batch (claimUrgent), so a stop often lands in one.
    let stoppedDuringRead = false;
    class StopDuringRead extends Outbox {
      override async hasDueBelow(priority: number): Promise<boolean> {
        const due = await super.hasDueBelow(priority);
        if (!stop.signal.aborted) {
          stop.abort();
          stoppedDuringRead = true;
        }
        return due;
      }
    }
    const outbox = new StopDuringRead({ database: db, clock: f.clock, random: systemRandom, linkCipher: f.keyring });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await outbox.enqueue({ idempotencyKey: `rt4-stop:${i}`, to: `user${i}@example.org`, subject: "Bulwark: your password was changed", text: `Notice ${i}\n`, kind: "security.password-changed", priority: PRIORITY.normal })).id);
    }
    const transport = stallingTransport();
    const sender = new OutboxSender({ outbox, transport, clock: f.clock, random: systemRandom }, { name: "node-a", concurrency: 1 });
    // The runner's grace: deliveries still in flight are cut a moment later.
    const run = sender.runOnce({ stop: stop.signal, cut: cut.signal });
    const grace = setTimeout(() => cut.abort(new Error("the server is stopping")), 300);
    t.after(() => clearTimeout(grace));
    await run;
    assert.ok(stoppedDuringRead, "the stop landed during the read");
    const rows = await Promise.all(ids.map((id) => outbox.get(id)));
    assert.equal(transport.started, 0, `no delivery starts once the sender is told to stop; ${transport.started} started after it`);
    assert.deepEqual(rows.map((m) => m.attempts), [0, 0, 0], "no attempt is spent on a delivery the stop should have prevented");
  });

  it("attack: a delivery cut by a stopping server on a message's last allowed attempt is handed back, its attempt not charged, never dead: the owner's security notice is delivered later (ASVS 6.3.7) (was: the message went dead, dropped for good because the server was restarted)", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue({ idempotencyKey: "rt4-cut:1", to: "owner@example.org", subject: "Bulwark: your password was changed", text: "Your password was changed.\n", kind: "security.password-changed", priority: PRIORITY.security });
    const retry = { maxAttempts: 2, baseDelayMs: 60_000, maxDelayMs: 60_000 };
    // Attempt 1: the relay defers it (a 4xx), as during an outage.
    const deferring: MailTransport = { send: async (): Promise<DeliveryOutcome> => ({ ok: false, permanent: false, error: "421 4.3.2 try again later" }), close: async () => {} };
    await new OutboxSender({ outbox: f.outbox, transport: deferring, clock: f.clock, random: systemRandom }, { name: "node-a", retry }).runOnce();
    const deferred = await f.outbox.get(id);
    assert.equal(deferred.status, "failed");
    f.clock.set(deferred.nextAttemptAt);
    // Attempt 2 is under way when the server is told to stop; past the grace it is cut.
    const transport = stallingTransport();
    const stop = new AbortController();
    const cut = new AbortController();
    const run = new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom }, { name: "node-b", retry }).runOnce({ stop: stop.signal, cut: cut.signal });
    while (transport.started === 0) await new Promise((resolve) => setImmediate(resolve));
    stop.abort();
    cut.abort(new Error("the server is stopping"));
    await run;
    const after = await f.outbox.get(id);
    assert.notEqual(after.status, "dead", `the notice was given up on (${after.lastError ?? ""}) because the server stopped mid-delivery`);
    assert.ok(after.status === "queued" || after.status === "failed", `due again for any sender (status ${after.status})`);
  });

  it("attack: a stopping sender cannot hand back a message whose lease ran out and which another sender now holds: release is fenced by the claim, so the new holder's delivery is neither duplicated nor its outcome overwritten", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue({ idempotencyKey: "rt4-fence:1", to: "owner@example.org", subject: "Reset your password", text: "https://example.org/reset#secret\n", kind: "account.password-reset", priority: PRIORITY.security });
    const old = await f.outbox.claim({ claimer: "node-a/clm_old", limit: 10, leaseMs: 1_000 });
    assert.deepEqual(old.map((m) => m.id), [id]);
    f.clock.advance(1_001); // node A froze past its lease
    const taken = await f.outbox.claim({ claimer: "node-b/clm_new", limit: 10, leaseMs: 60_000 });
    assert.deepEqual(taken.map((m) => m.id), [id], "node B takes the message over");
    // Node A wakes up, is stopping, and hands back what it thinks is its unstarted batch.
    assert.equal(await f.outbox.release({ claimer: "node-a/clm_old", ids: [id] }), 0);
    const row = await f.outbox.get(id);
    assert.equal(row.status, "sending", "still node B's");
    assert.equal((await f.outbox.claim({ claimer: "node-c/clm_third", limit: 10, leaseMs: 60_000 })).length, 0, "no third sender can claim it meanwhile (it would be mailed twice)");
    assert.equal(await f.outbox.markSent({ id, claimer: "node-b/clm_new", providerMessageId: null }), true, "node B records its delivery");
  });
});

describe("the audit signer fetched again inside a caller's transaction [sqlite]", () => {
  it("attack: a checkpoint falling due inside a transaction on SQLite while the remembered signer is stale (a containment batch after a quiet second) is signed without the process waiting on itself: the key table is read through that transaction, never through the one connection the transaction holds (ASVS 16.4.2)", { timeout: 60_000 }, async (t) => {
    const dir = testDir(t, "bulwark-fourth-rt-");
    const clock = new ManualClock(Date.now());
    const app = await openApp({ env: { ...BASE_ENV, BULWARK_DATA_DIR: join(dir, "data") }, mode: "init", clock });
    t.after(() => app.close());
    const head = async (): Promise<number> => Number((await app.db.db.selectFrom("audit_head").select("seq").where("id", "=", 1).executeTakeFirst())?.seq ?? 0);
    const newestCheckpoint = async (): Promise<number> => Number((await app.db.db.selectFrom("audit_checkpoints").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst())?.seq ?? 0);
    // Plain appends up to one short of the schedule (every 1000 events), each with a fresh signer.
    const due = (await newestCheckpoint()) + 1000;
    while ((await head()) < due - 1) await app.audit.append({ type: "rt4.filler", actor: "system" });
    clock.advance(5_000); // the remembered signer (and the keyring's view) is stale now
    const appended = app.db.transaction(async (trx) => {
      await trx.updateTable("bulwark_meta").set({ value: "x" }).where("name", "=", "rt4-none").execute();
      return app.audit.appendIn(trx, { type: "contain.job.batch", actor: "system", subject: "job_rt4" });
    });
    const event = await within(appended, 10_000);
    if (event === "timeout") assert.fail("the append inside the transaction waited for its own transaction to end");
    assert.equal(event.seq, due);
    const cp = await app.db.db.selectFrom("audit_checkpoints").selectAll().where("seq", "=", due).executeTakeFirst();
    assert.ok(cp, "the checkpoint due there is taken in the same transaction");
    const current = await app.db.db.selectFrom("keyring_keys").select("id").where("purpose", "=", "signing").where("status", "=", "current").executeTakeFirstOrThrow();
    assert.equal(cp.key_id, current.id, "signed by the current signing key");
  });
});
