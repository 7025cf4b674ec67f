// records.ts on both dialects: each baseline written is an audit event keyed by its tree, and the newest one of a
// tree is what a compare holds its baseline to (red team 36, finding 9: a replayed older baseline). ASVS 16.5.3.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { BASELINE_FORMAT, BASELINE_VERSION, type BaselineHeader } from "./baseline-format.ts";
import { BASELINE_RECORDED, newestRecorded, recordBaseline, treeKey } from "./records.ts";

const T0 = Date.UTC(2026, 11, 7, 10);
const header = (createdAt: number, over: Partial<BaselineHeader> = {}): BaselineHeader => ({
  format: BASELINE_FORMAT, version: BASELINE_VERSION, createdAt: new Date(createdAt).toISOString(),
  roots: ["/etc", "/usr"], exclude: ["/usr/share/doc"], oneFileSystem: true, algorithm: "sha256", ...over,
});
const digest = (c: string): string => c.repeat(64);

forEachDialect("baseline records", (fx) => {
  it("keeps the newest baseline of each tree: another root set, exclusion or -xdev is another tree", async () => {
    const database = await fx.fresh();
    const audit = new AuditLog({ database, clock: new ManualClock(T0), random: systemRandom });
    const written = (d: string, path: string) => ({ digest: digest(d), path, entries: 10, keyId: "sk_1" });
    assert.equal(await newestRecorded(database.db, header(T0)), null, "nothing recorded yet");
    await recordBaseline(audit, "cli:root", header(T0), written("a", "/var/lib/bulwark/sys.baseline"));
    await recordBaseline(audit, "cli:root", header(T0 + 1000), written("b", "/var/lib/bulwark/sys.baseline"));
    await recordBaseline(audit, "cli:root", header(T0 + 2000, { exclude: [] }), written("c", "/var/lib/bulwark/all.baseline"));
    await recordBaseline(audit, "cli:root", header(T0 + 3000, { oneFileSystem: false }), written("d", "/var/lib/bulwark/x.baseline"));
    assert.deepEqual(await newestRecorded(database.db, header(T0)), { digest: digest("b"), createdAt: new Date(T0 + 1000).toISOString(), path: "/var/lib/bulwark/sys.baseline" });
    assert.equal((await newestRecorded(database.db, header(T0, { exclude: [] })))?.digest, digest("c"));
    assert.equal((await newestRecorded(database.db, header(T0, { oneFileSystem: false })))?.digest, digest("d"));
    assert.equal(await newestRecorded(database.db, header(T0, { roots: ["/etc"] })), null);
    assert.equal((await audit.verify()).ok, true, "the events are part of the chain");
  });

  it("an event whose data was altered out of shape is passed over (the log's verify reports it), never read as a record", async () => {
    const database = await fx.fresh();
    const audit = new AuditLog({ database, clock: new ManualClock(T0), random: systemRandom });
    await recordBaseline(audit, "cli:root", header(T0), { digest: digest("a"), path: "/b", entries: 1, keyId: "sk_1" });
    await database.db.updateTable("audit_events").set({ data: '{"createdAt":"x","digest":"not hex","path":"/b"}' })
      .where("type", "=", BASELINE_RECORDED).where("subject", "=", treeKey(header(T0))).execute();
    assert.equal(await newestRecorded(database.db, header(T0)), null);
    assert.equal((await audit.verify()).ok, false);
  });
});
