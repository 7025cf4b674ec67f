// A containment job that was interrupted (here: created, never run — as after a crash before its first batch)
// resumes by itself when the server starts, finishes in the background, and is audited as resumed.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { containDeps, createContainJob } from "../src/contain/index.ts";
import { seedUsers } from "../src/dev/seed.ts";
import { runServer } from "../src/http/run-server.ts";

let root: string;
let app: OpenedApp;
const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent", PORT: "0", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });

before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-resume-"));
  app = await openApp({ env: env(), mode: "init" });
});
after(() => rmSync(root, { recursive: true, force: true }));

describe("server start", () => {
  it("resumes an unfinished containment job in the background and finishes it", async () => {
    await seedUsers({ database: app.db, clock: app.clock, random: app.random, passwords: app.accounts.passwords }, { users: 500, legacyShare: 0 });
    const job = await createContainJob(containDeps(app), { levers: ["lock-accounts"], scope: { all: true }, actor: "test", batchSize: 50 });
    assert.equal((await app.accounts.jobs.get(job.id)).status, "pending");
    await app.close();

    // A new process (here: a new app over the same data dir) starts the server.
    const restarted = await openApp({ env: env(), mode: "open" });
    const running = await runServer(restarted);
    try {
      let status = "";
      for (let i = 0; i < 400 && status !== "done"; i++) {
        status = (await restarted.accounts.jobs.get(job.id)).status;
        if (status !== "done") await sleep(25);
      }
      assert.equal(status, "done", "the job finished without anyone resuming it by hand");
      const locked = await restarted.db.db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).where("locked_at", "is not", null).executeTakeFirstOrThrow();
      assert.equal(Number(locked.n), 500);
      const res = await running.server.inject({ method: "GET", url: "/healthz" });
      assert.equal(res.statusCode, 200, "the server answered while and after the job ran");
      const resumed = await restarted.db.db.selectFrom("audit_events").select(["subject", "data"]).where("type", "=", "contain.job.resumed").execute();
      assert.equal(resumed.length, 1);
      assert.equal(resumed[0]?.subject, job.id);
      assert.match(resumed[0]?.data ?? "", /server-start/);
    } finally {
      await running.close();
    }
  });

  it("hands WAL checkpoints to its worker while it runs, and closes the database whole", async () => {
    const opened = await openApp({ env: env(), mode: "open" });
    const running = await runServer(opened);
    const threshold = (): number => Number((opened.db.sqlite!.prepare("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint);
    try {
      assert.ok(threshold() > 1000, "the server's connection keeps only a backstop checkpoint");
      const res = await running.server.inject({ method: "GET", url: "/healthz" });
      assert.equal(res.statusCode, 200);
    } finally {
      await running.close();
    }
    assert.equal(opened.db.sqlite!.isOpen, false);
    assert.equal(existsSync(join(root, "data", "bulwark.db-wal")), false, "the checkpointer stopped before the database closed: no WAL left behind");
  });
});
