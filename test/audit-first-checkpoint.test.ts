// The audit log's first checkpoint and the running server's routine ones, written as attacks that must fail: an
// intruder who can write the database (every table) but holds neither the master key nor the signing key rewrites the
// log of a store whole, its checkpoints deleted, so that it passes for a young log no checkpoint covers yet; or rewrites
// the events since the newest checkpoint and waits for a routine checkpoint to vouch for them. `bulwark init` signs a
// checkpoint at once; a log with events and none is taken as young only for its signing key's first hour; routine
// signing (a maintenance pass, a server stop, an append on the schedule) refuses to vouch for such a log; every
// maintenance pass signs the head, so a rewrite of the newest events has one pass to go unseen (ASVS 16.4.2, 16.4.3).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventHash } from "../src/audit/chain.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { initStore, rewriteWhole } from "./helpers/audit-tamper.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

const HOUR = 3_600_000;
/** The stores' time: a month before the CLI's real clock, so that the CLI sees keys over an hour old. */
const PAST = Date.now() - 30 * 24 * HOUR;
let root: string;
let n = 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-first-checkpoint-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A store made by init at the clock's time in a fresh directory (initStore). */
function store(clock: ManualClock): ReturnType<typeof initStore> {
  return initStore(join(root, `d${++n}`), clock);
}


describe("the audit log's first checkpoint", () => {
  it("init signs a checkpoint at once, and the fresh store verifies with it", async () => {
    const { app } = await store(new ManualClock(PAST));
    try {
      const checkpoints = await app.audit.checkpoints();
      assert.equal(checkpoints.length, 1);
      const head = (await app.audit.tail(1))[0]!;
      assert.equal(checkpoints[0]!.seq, head.seq, "it signs init's last event");
      const report = await app.audit.verify();
      assert.equal(report.ok, true, report.problem?.problem);
      assert.equal(report.checkpointsChecked, 1);
    } finally {
      await app.close();
    }
  });

  it("attack: a log rewritten whole with its checkpoints deleted does not pass for a young one once its key is an hour old, and no routine checkpoint vouches for it", async () => {
    const clock = new ManualClock(PAST);
    const { app, env, reopen } = await store(clock);
    await app.audit.append({ type: "auth.login.succeeded", actor: "usr_a", subject: "usr_a" });
    await app.close();
    clock.advance(2 * HOUR);
    const later = await reopen();
    try {
      await rewriteWhole(later.db);
      const report = await later.audit.verify();
      assert.equal(report.ok, false);
      assert.match(report.problem?.problem ?? "", /holds events but no checkpoint.*more than an hour ago/);
      // Routine signing refuses: a maintenance pass (the step fails, loudly), a stop's checkpoint, an append on the schedule.
      await assert.rejects(later.audit.checkpoint(), /no checkpoint/);
      const maintenance = startMaintenance(later, { firstPassDelayMs: 60 * 60_000 });
      const pass = await maintenance.runOnce();
      await maintenance.stop();
      assert.equal(pass["auditCheckpoint"], -1, "the maintenance step failed rather than sign");
      assert.deepEqual(await later.audit.checkpoints(), [], "nothing was signed");
      // The CLI says what is wrong, and signs only on the operator's explicit --first.
      const cli = await bulwarkInProcess(["audit", "verify"], env);
      assert.equal(cli.code, 1, cli.stdout + cli.stderr);
      assert.match(cli.stdout, /audit checkpoint --first/);
    } finally {
      await later.close();
    }
  });

  it("a store from a Bulwark that signed no checkpoint at init is signed on the operator's --first, and verifies after", async () => {
    const clock = new ManualClock(PAST);
    const { app, env } = await store(clock);
    // As an older init left it: events, keys, no checkpoint.
    await app.db.db.deleteFrom("audit_checkpoints").execute();
    await app.close();
    const refused = await bulwarkInProcess(["audit", "checkpoint"], env);
    // The key is a month old by the CLI's clock: a plain checkpoint is refused and names --first.
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(refused.stderr, /--first/);
    const signed = await bulwarkInProcess(["audit", "checkpoint", "--first", "--json"], env);
    assert.equal(signed.code, 0, signed.stderr);
    const verify = await bulwarkInProcess(["audit", "verify"], env);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  it("a log with no checkpoint is young within its keys' first hour: verify passes and a routine checkpoint signs it", async () => {
    const clock = new ManualClock(PAST);
    const { app: first, reopen } = await store(clock);
    // As an older init left it (no checkpoint), seen by a process that never saw one stored.
    await first.db.db.deleteFrom("audit_checkpoints").execute();
    await first.close();
    const app = await reopen();
    try {
      clock.advance(30 * 60_000);
      const report = await app.audit.verify();
      assert.equal(report.ok, true, report.problem?.problem);
      assert.ok(await app.audit.checkpoint(), "signed");
    } finally {
      await app.close();
    }
  });

  it("attack: a rewrite of the newest events is caught by the next maintenance pass's checkpoint, not only a schedule of 1,000 events later", async () => {
    const clock = new ManualClock(PAST);
    const { app } = await store(clock);
    try {
      for (let i = 0; i < 3; i++) await app.audit.append({ type: "demo.event", actor: "usr_a", subject: `s${i}`, data: { i } });
      const maintenance = startMaintenance(app, { firstPassDelayMs: 60 * 60_000 });
      const pass = await maintenance.runOnce();
      await maintenance.stop();
      assert.equal(pass["auditCheckpoint"], 0);
      const head = (await app.audit.tail(1))[0]!;
      assert.equal((await app.audit.checkpoints()).at(-1)?.seq, head.seq, "the pass signed the head");
      // Now the intruder rewrites the newest event (relinked, head moved): the pass's checkpoint covers it.
      const row = await app.db.db.selectFrom("audit_events").selectAll().where("seq", "=", head.seq).executeTakeFirstOrThrow();
      const data = JSON.stringify({ i: "rewritten" });
      const hash = eventHash({ seq: head.seq, id: row.id, type: row.type, actor: row.actor, subject: row.subject, at: Number(row.at), requestId: row.request_id, prevHash: row.prev_hash, data });
      await app.db.db.updateTable("audit_events").set({ data, hash }).where("seq", "=", head.seq).execute();
      await app.db.db.updateTable("audit_head").set({ hash }).where("id", "=", 1).execute();
      const report = await app.audit.verify();
      assert.equal(report.ok, false);
      assert.match(report.problem?.problem ?? "", /differs from the signed checkpoint/);
    } finally {
      await app.close();
    }
  });
});
