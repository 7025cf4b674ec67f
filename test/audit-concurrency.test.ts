// The audit chain under concurrent appends from two processes: one linear chain, nothing lost.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { AuditLog } from "../src/audit/audit-log.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { migrate } from "../src/store/migrator.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const worker = fileURLToPath(new URL("./helpers/append-worker.ts", import.meta.url));

function run(target: string, count: number, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", worker, target, String(count), label], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`worker ${label} exited ${code}: ${err}`))));
  });
}

forEachDialect("audit chain under two concurrent processes", (fx) => {
  it("keeps one linear, verifiable chain with every event from both writers", async () => {
    const db = await fx.fresh();
    await migrate(db, new ManualClock());
    const t = fx.lastTarget();
    const target = (t.sqlitePath ?? t.databaseURL) as string;
    await Promise.all([run(target, 300, "A"), run(target, 300, "B")]);
    const audit = new AuditLog({ database: db, clock: new ManualClock(), random: systemRandom });
    const report = await audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
    assert.equal(report.events, 600);
    const byActor = { A: 0, B: 0 } as Record<string, number>;
    const seen = new Set<string>();
    for await (const e of audit.events()) {
      byActor[e.actor] = (byActor[e.actor] ?? 0) + 1;
      seen.add(`${e.actor}:${(e.data as { i: number }).i}`);
    }
    assert.deepEqual(byActor, { A: 300, B: 300 });
    assert.equal(seen.size, 600, "no event duplicated or lost");
  });
});
