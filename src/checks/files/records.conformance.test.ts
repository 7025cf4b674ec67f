// records.ts on both dialects: each baseline written is an audit event keyed by its tree, and a compare asks whether a
// later record supersedes its baseline (red teams 36 and 37: a replayed older baseline). ASVS 16.5.3.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { BASELINE_FORMAT, BASELINE_VERSION, type BaselineHeader } from "./baseline-format.ts";
import { BASELINE_RECORDED, recordBaseline, supersedingRecord, treeKey } from "./records.ts";

const T0 = Date.UTC(2026, 11, 7, 10);
const header = (createdAt: number, over: Partial<BaselineHeader> = {}): BaselineHeader => ({
  format: BASELINE_FORMAT, version: BASELINE_VERSION, createdAt: new Date(createdAt).toISOString(),
  roots: ["/etc", "/usr"], exclude: ["/usr/share/doc"], oneFileSystem: true, algorithm: "sha256", ...over,
});
const digest = (c: string): string => c.repeat(64);
const P = "/var/lib/bulwark/sys.baseline";

forEachDialect("baseline records", (fx) => {
  const setUp = async () => {
    const database = await fx.fresh();
    const audit = new AuditLog({ database, clock: new ManualClock(T0), random: systemRandom });
    const record = (h: BaselineHeader, d: string, path = P) => recordBaseline(audit, "cli:root", h, { digest: digest(d), path, entries: 10, keyId: "sk_1" });
    const newer = (h: BaselineHeader, d: string, path: string | string[] = P) => supersedingRecord(database.db, { header: h, digest: digest(d), paths: typeof path === "string" ? [path] : path });
    return { database, audit, record, newer };
  };

  it("a recorded baseline is superseded by a later record of its tree, by the log's order: not by an earlier one, nor another tree's", async () => {
    const { audit, record, newer } = await setUp();
    assert.equal(await newer(header(T0), "a"), null, "nothing recorded yet");
    await record(header(T0), "a");
    assert.equal(await newer(header(T0), "a"), null, "the newest is itself");
    // Recorded next, though dated an hour earlier (the clock was set back after "a"): "a" is superseded all the same.
    await record(header(T0 - 3_600_000), "b");
    assert.deepEqual(await newer(header(T0), "a"), { digest: digest("b"), createdAt: new Date(T0 - 3_600_000).toISOString(), path: P });
    assert.equal(await newer(header(T0 - 3_600_000), "b"), null);
    // Other trees (exclusions, -xdev, roots) at other paths neither supersede "b" nor are superseded by it.
    await record(header(T0 + 2000, { exclude: [] }), "c", "/var/lib/bulwark/all.baseline");
    await record(header(T0 + 3000, { oneFileSystem: false }), "d", "/var/lib/bulwark/x.baseline");
    assert.equal(await newer(header(T0 - 3_600_000), "b"), null);
    assert.equal(await newer(header(T0 + 2000, { exclude: [] }), "c", "/var/lib/bulwark/all.baseline"), null);
    assert.equal((await audit.verify()).ok, true, "the events are part of the chain");
  });

  it("a later record at the same path supersedes a baseline of a narrower tree; one never recorded is judged by dates", async () => {
    const { record, newer } = await setUp();
    const narrow = header(T0, { roots: ["/etc/ssh"], exclude: [] });
    await record(narrow, "a");
    await record(header(T0 + 1000), "b"); // the whole tree, written over the same file
    assert.equal((await newer(narrow, "a"))?.digest, digest("b"), "put back at P, the narrow one is superseded");
    // A copy elsewhere too: "a" was written at P, and P has been written over since (red team 38b: whatever the names
    // of the file compared lead to now, its own record says where it was written).
    assert.equal((await newer(narrow, "a", "/elsewhere/copy.baseline"))?.digest, digest("b"), "a copy elsewhere of a baseline written over since is superseded");
    // Asked with every name of the file compared (a symlink at P leading to the copy): P counts.
    assert.equal((await newer(narrow, "a", ["/elsewhere/copy.baseline", P]))?.digest, digest("b"), "any of the names given");
    // Never recorded (the library, another data dir): a record of its tree or path dated after it supersedes it.
    assert.equal((await newer(header(T0 + 500), "z"))?.digest, digest("b"));
    assert.equal(await newer(header(T0 + 5000), "z"), null, "dated after every record");
  });

  it("asks by tree, path and digest, however many other trees were recorded since; a path is matched exactly, not as a pattern", async () => {
    const { record, newer } = await setUp();
    await record(header(T0), "a");
    for (let i = 0; i < 300; i++) await record(header(T0 + i, { roots: [`/srv/site${i}`] }), "c", `/var/lib/bulwark/site${i}.baseline`);
    await record(header(T0 + 1000), "b");
    assert.equal((await newer(header(T0), "a"))?.digest, digest("b"), "found past 300 records of other trees");
    // Paths holding LIKE's wildcards, its escape, a quote, and another case of the same letters.
    const odd = "/var/lib/bulwark/50%_off\\\"x\".baseline";
    const narrow = header(T0, { roots: ["/etc/ssh"], exclude: [] });
    await record(narrow, "d", odd);
    await record(header(T0 + 2000, { roots: ["/opt"] }), "e", odd.toUpperCase());
    await record(header(T0 + 3000, { roots: ["/opt"] }), "f", "/var/lib/bulwark/50xxoff\\\"x\".baseline");
    assert.equal(await newer(narrow, "d", odd), null, "neither another case of the path nor what its % and _ would match");
    await record(header(T0 + 4000, { roots: ["/opt"] }), "9", odd);
    assert.equal((await newer(narrow, "d", odd))?.digest, digest("9"), "the same path, exactly");
  });

  it("an event whose data was altered out of shape is passed over (the log's verify reports it), never read as a record", async () => {
    const { database, audit, record, newer } = await setUp();
    await record(header(T0), "a");
    await record(header(T0 + 1000), "b");
    await database.db.updateTable("audit_events").set({ data: '{"createdAt":"x","digest":"not hex","path":"/b"}' })
      .where("type", "=", BASELINE_RECORDED).where("subject", "=", treeKey(header(T0))).where("data", "like", `%${digest("b")}%`).execute();
    assert.equal(await newer(header(T0), "a"), null);
    assert.equal((await audit.verify()).ok, false);
  });
});
