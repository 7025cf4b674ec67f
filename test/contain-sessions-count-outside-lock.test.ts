// An --all revoke-sessions job on SQLite ends every session in one step that rebuilds the sessions table, in one
// transaction that holds the database's write lock (docs/decisions/0005-bulk-containment-on-sqlite.md): every login
// and session write waits for it. Counting the sessions it ends and their distinct users is a read of rows the job's
// stamps already refuse, so it runs before that transaction (at a million users it took 3 to 7 s inside it).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { createSessionManager } from "../src/accounts/sessions/session-manager.ts";
import { createContainJob, jobView, runJob } from "../src/contain/index.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite } from "../src/store/database.ts";
import { openContainFixture, seedContainUsers } from "./helpers/contain-fixture.ts";
import { statementsDuring } from "./helpers/statements.ts";

const NOW = Date.UTC(2026, 11, 7, 12);
const dir = mkdtempSync(join(tmpdir(), "bulwark-sessions-count-"));
after(() => rmSync(dir, { recursive: true, force: true }));

it("the --all step counts the sessions it ends outside its write transaction, and reports the same counts", async () => {
  const database = openSQLite(join(dir, "bulwark.db"), { create: true });
  try {
    const fx = await openContainFixture(database, { now: NOW });
    const ids = await seedContainUsers(fx, NOW, 6);
    const sessions = createSessionManager({ database, clock: fx.clock, random: systemRandom });
    // Two open sessions for each of the first four users, none for the last two, and one already past its idle limit.
    for (const id of ids.slice(0, 4)) for (let k = 0; k < 2; k++) await sessions.createSession(id, { aal: 1 });
    fx.clock.advance(-3 * 3_600_000);
    await sessions.createSession(ids[5] as string, { aal: 1 });
    fx.clock.set(NOW + 1000);

    const job = await createContainJob(fx, { levers: ["revoke-sessions"], scope: { all: true }, actor: "t" });
    let done: Awaited<ReturnType<typeof runJob>> | undefined;
    const statements = await statementsDuring(async () => {
      done = await runJob(fx, job.id);
    });
    assert.equal(done?.status, "done");
    assert.deepEqual(jobView(done as NonNullable<typeof done>).counts["revoke-sessions"], { users: 4, sessions: 8 });
    assert.equal(Number((await database.db.selectFrom("sessions").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n), 0);

    // Where each statement ran: inside a transaction from BEGIN to its COMMIT or ROLLBACK.
    let depth = 0;
    const counted: boolean[] = [];
    let rebuiltInside = false;
    for (const s of statements) {
      if (s.startsWith("begin")) depth++;
      else if (s === "commit" || s === "rollback") depth--;
      else if (s.includes("count(distinct")) counted.push(depth > 0);
      else if (s.startsWith("drop table") && s.includes("sessions")) rebuiltInside = depth > 0;
    }
    assert.ok(rebuiltInside, "the rebuild runs in the step's transaction");
    assert.deepEqual(counted, [false], "the sessions' users are counted once, outside any transaction (was: inside the step's)");
  } finally {
    await database.close();
  }
});
