// The audit log's tolerance for a store's keys dated ahead of the judging clock, as the app and the CLI apply it: derived
// from BULWARK_MAX_CLOCK_SKEW_SECONDS (datedAheadToleranceFor, twice the skew two nodes may each have), like sessions'
// and links'. A log with events and no checkpoint is young only while its keys are neither over an hour old nor dated
// ahead by more than that (firstCheckpointProblem). Before, it was the library's default, 60 s, whatever the setting:
// with 120 s allowed, keys a healthy node made 90 s ahead of another were a problem to the other's verify and
// maintenance (a false alarm, and the first checkpoint refused); with 5 s allowed, keys 30 s ahead passed. The
// library's AuditLog keeps its 60 s default for callers that give none (ASVS 16.4.2).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AuditLog } from "../src/audit/audit-log.ts";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { bulwarkInProcess, fixtureCliEnv } from "./helpers/cli.ts";

const SECOND = 1000;
let root: string;
let n = 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-audit-skew-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * A store made by init at `clock`'s time, with BULWARK_MAX_CLOCK_SKEW_SECONDS `skewSeconds`, left as a Bulwark that
 * signed no checkpoint at init left it (events, keys, no checkpoint); `open` opens it again in a process that never saw
 * a checkpoint stored, on the same clock and setting.
 */
async function youngStoreWithoutCheckpoint(clock: ManualClock, skewSeconds: number): Promise<{ env: Record<string, string>; open: () => Promise<OpenedApp> }> {
  const dataDir = join(root, `d${++n}`, "data");
  const env = { ...fixtureCliEnv(dataDir), BULWARK_MAX_CLOCK_SKEW_SECONDS: String(skewSeconds) } as Record<string, string>;
  const app = await openApp({ env, mode: "init", clock });
  await app.db.db.deleteFrom("audit_checkpoints").execute();
  await app.close();
  return { env, open: () => openApp({ env, mode: "open", clock }) };
}

describe("the audit log's dated-ahead tolerance follows BULWARK_MAX_CLOCK_SKEW_SECONDS", () => {
  it("with 120 s of skew allowed, a young store whose keys another healthy node made 90 s ahead of this node's clock verifies, and this node's maintenance pass signs its first checkpoint (was: the fixed 60 s tolerance reported the keys as dated ahead and refused to sign)", async () => {
    const made = Date.UTC(2026, 10, 2, 9);
    const clock = new ManualClock(made);
    const { open } = await youngStoreWithoutCheckpoint(clock, 120);
    const app = await open();
    try {
      // This node's clock is 90 s behind the one that made the keys: both within 120 s of the database server's.
      clock.set(made - 90 * SECOND);
      const report = await app.audit.verify();
      assert.equal(report.ok, true, `verify reported a problem: ${report.problem?.problem}`);
      const maintenance = startMaintenance(app, { firstPassDelayMs: 60 * 60_000 });
      const pass = await maintenance.runOnce();
      await maintenance.stop();
      assert.equal(pass["auditCheckpoint"], 0, "the maintenance pass's checkpoint step failed");
      assert.equal((await app.audit.checkpoints()).length, 1, "the pass signed the first checkpoint");
      assert.equal((await app.audit.verify()).ok, true, "verify passes after");
    } finally {
      await app.close();
    }
  });

  it("attack: an intruder deletes every checkpoint of a store whose keys were made 30 s ahead of the judging clock, where only 5 s of skew is allowed — verify fails naming keys dated ahead, and the maintenance pass does not sign (ASVS 16.4.2) (was: the fixed 60 s tolerance took the store as young)", async () => {
    const made = Date.UTC(2026, 10, 2, 9);
    const clock = new ManualClock(made);
    const { open } = await youngStoreWithoutCheckpoint(clock, 5);
    const app = await open();
    try {
      clock.set(made - 30 * SECOND);
      const report = await app.audit.verify();
      assert.equal(report.ok, false, "verify took keys dated 30 s ahead as young, beyond twice the 5 s allowed");
      assert.match(report.problem?.problem ?? "", /keys, the signing keys among them, are dated ahead of this clock .*30 seconds ahead/);
      const maintenance = startMaintenance(app, { firstPassDelayMs: 60 * 60_000 });
      const pass = await maintenance.runOnce();
      await maintenance.stop();
      assert.equal(pass["auditCheckpoint"], -1, "the maintenance pass's checkpoint step signed the log");
      assert.deepEqual(await app.audit.checkpoints(), [], "nothing was signed");
      // Within twice the 5 s allowed, the store is young.
      clock.set(made - 10 * SECOND);
      assert.equal((await app.audit.verify()).ok, true, "keys dated 10 s ahead are within the tolerance");
    } finally {
      await app.close();
    }
  });

  it("`bulwark audit verify` with 120 s of skew allowed passes on a young store whose keys were made 90 s ahead of its clock (was: failed, naming keys dated ahead)", async () => {
    // The CLI reads the real clock: the keys are dated 90 s ahead of it.
    const { env } = await youngStoreWithoutCheckpoint(new ManualClock(Date.now() + 90 * SECOND), 120);
    const verify = await bulwarkInProcess(["audit", "verify"], env);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  it("attack: an intruder deletes every checkpoint of a store whose keys were made 30 s ahead of the clock, where only 5 s of skew is allowed — `bulwark audit verify` fails naming keys dated ahead (ASVS 16.4.2) (was: passed)", async () => {
    const { env } = await youngStoreWithoutCheckpoint(new ManualClock(Date.now() + 30 * SECOND), 5);
    const verify = await bulwarkInProcess(["audit", "verify"], env);
    assert.notEqual(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout + verify.stderr, /dated ahead of this clock/);
  });

  it("with the skew limit off (0: only warn) the tolerance is the default limit's, 60 s", async () => {
    const made = Date.UTC(2026, 10, 2, 9);
    const clock = new ManualClock(made);
    const { open } = await youngStoreWithoutCheckpoint(clock, 0);
    const app = await open();
    try {
      clock.set(made - 50 * SECOND);
      assert.equal((await app.audit.verify()).ok, true, "keys dated 50 s ahead are within 60 s");
      clock.set(made - 70 * SECOND);
      assert.match((await app.audit.verify()).problem?.problem ?? "", /dated ahead of this clock/);
    } finally {
      await app.close();
    }
  });

  it("an AuditLog built without a tolerance keeps the library's default, 60 s, and refuses a tolerance that is not a whole number of milliseconds, 0 or more", async () => {
    const made = Date.UTC(2026, 10, 2, 9);
    const clock = new ManualClock(made);
    const { open } = await youngStoreWithoutCheckpoint(clock, 120);
    const app = await open();
    try {
      const library = (options: { aheadToleranceMs?: number } = {}): AuditLog =>
        new AuditLog({ database: app.db, clock, random: app.random, signer: () => app.keyring.signer(), ...options });
      clock.set(made - 50 * SECOND);
      assert.equal((await library().verify()).ok, true, "keys dated 50 s ahead are within the default 60 s");
      clock.set(made - 90 * SECOND);
      assert.match((await library().verify()).problem?.problem ?? "", /dated ahead of this clock/, "keys dated 90 s ahead are beyond the default");
      assert.equal((await library({ aheadToleranceMs: 240 * SECOND }).verify()).ok, true, "a tolerance given is the one applied");
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        assert.throws(() => library({ aheadToleranceMs: bad }), (e: unknown) => e instanceof RangeError && /aheadToleranceMs/.test(e.message), String(bad));
      }
    } finally {
      await app.close();
    }
  });
});
