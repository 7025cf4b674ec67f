// An undo job interrupted before or during its run is resumed by a fresh process (`bulwark contain resume`, or
// the server at start-up), which may never have run a containment job itself: it must find the levers the undo
// names. Was: "Cannot read properties of undefined (reading 'name')" on every resume, accounts left locked.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { containDeps, createUndoJob } from "../src/contain/index.ts";
import { bulwark } from "./helpers/cli.ts";

let dir: string;
const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-undo-resume-"));
  assert.equal((await bulwark(["init"], { env: env() })).code, 0);
});
after(() => rmSync(dir, { recursive: true, force: true }));

it("a fresh process resumes an undo job that a crash left unrun, and restores every account", async () => {
  assert.equal((await bulwark(["dev", "seed", "--users", "40"], { env: env() })).code, 0);
  const locked = await bulwark(["contain", "lock-accounts", "expire-passwords", "--all", "--json"], { env: env() });
  assert.equal(locked.code, 0, locked.stderr);
  const jobId = (JSON.parse(locked.stdout) as { id: string }).id;
  // What `contain undo` leaves when killed right after creating its job: the job row, nothing run.
  const app = await openApp({ env: env() });
  let undoId: string;
  try {
    undoId = (await createUndoJob(containDeps(app), jobId, "test")).id;
    const before = await app.db.db.selectFrom("users").select("id").where("locked_at", "is not", null).execute();
    assert.equal(before.length, 40, "still locked");
  } finally {
    await app.close();
  }
  const resumed = await bulwark(["contain", "resume", undoId, "--json"], { env: env() });
  assert.equal(resumed.code, 0, resumed.stderr);
  const job = JSON.parse(resumed.stdout) as { status: string; counts: Record<string, Record<string, number>> };
  assert.equal(job.status, "done");
  assert.deepEqual(job.counts["lock-accounts"], { restored: 40, skipped: 0 });
  assert.deepEqual(job.counts["expire-passwords"], { restored: 40, skipped: 0 });
  const check = await openApp({ env: env() });
  try {
    const still = await check.db.db.selectFrom("users").select("id").where((eb) => eb.or([eb("locked_at", "is not", null), eb("password_must_change", "=", 1)])).execute();
    assert.equal(still.length, 0, "every account unlocked and its password no longer expired");
  } finally {
    await check.close();
  }
  assert.equal((await bulwark(["audit", "verify"], { env: env() })).code, 0);
});
