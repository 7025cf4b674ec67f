// What makes an import predictable, on SQLite and PostgreSQL: the verdict on a row depends on the row and the
// stored accounts, never on which rows share its batch; a dry run predicts the real run; a resumed run ends
// where an uninterrupted one does; an update changes only what the file supplied with a value.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { JobStore } from "../../jobs/job-store.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { createPasswordContext } from "../passwords/index.ts";
import { createUserStore } from "../users/user-store.ts";
import { importUsers, type ImportDeps, type ImportOptions, type ImportReport } from "./importer.ts";
import { checkHeader, resolveMap } from "./mapping.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });

async function setup(db: Database): Promise<ImportDeps> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  return {
    database: db, clock, passwords, users: createUserStore({ database: db, clock, random: systemRandom }), audit: new AuditLog({ database: db, clock, random: systemRandom }),
    jobs: new JobStore({ database: db, clock, random: systemRandom }),
  };
}

type Extra = Partial<Omit<ImportOptions, "rules" | "open">> & { source?: string };

function run(deps: ImportDeps, csv: string, extra: Extra = {}): Promise<ImportReport> {
  const { source, ...rest } = extra;
  const map = resolveMap({ preset: null, map: {} });
  return importUsers(deps, {
    format: "csv", onConflict: "fail", batchSize: 500, dryRun: false, skipBad: false, actor: "test", file: "test.csv",
    onHeader: (h: string[]) => checkHeader(h, map, {}),
    ...rest,
    rules: { map, preset: null, source: source ?? "test.csv", salted: null },
    open: async function* () {
      yield csv;
    },
  });
}

/** What a report says was (or would be) done, without the parts that differ between a dry and a real run. */
const outcome = (r: ImportReport): unknown => ({ created: r.created, updated: r.updated, skipped: r.skipped, bad: r.bad });

async function accounts(deps: ImportDeps): Promise<unknown[]> {
  return deps.database.db.selectFrom("users").select(["email", "username", "display_name", "status", "external_source", "external_id"]).orderBy("email").execute();
}

forEachDialect("users import consistency", (fx) => {
  it("an external id of another source, on an account found by its email, does not clash: same verdict at every batch size, dry or real", async () => {
    // Was: zed (site1:7), fetched because row 2 names its email, counted as site2's owner of id 7, so row 4 (a new
    // account with site2:7) was refused when it shared zed's batch: the dry run passed it, the real run failed.
    const csv = "email,username,external_id\nzed@example.org,,3\nc@example.org,taken,4\nnew@example.org,,7\n";
    for (const batchSize of [1, 2, 3]) {
      const deps = await setup(await fx.fresh());
      await deps.users.create({ email: "zed@example.org", username: "zed", externalSource: "site1", externalId: "7" });
      await deps.users.create({ email: "who@example.org", username: "taken" });
      const options: Extra = { source: "site2", onConflict: "skip", skipBad: true, batchSize };
      const dry = await run(deps, csv, { ...options, dryRun: true });
      assert.deepEqual(outcome(dry), { created: 1, updated: 0, skipped: 1, bad: [{ line: 3, reason: "the username belongs to another account" }] }, `dry run, batch ${batchSize}`);
      const real = await run(deps, csv, options);
      assert.deepEqual(outcome(real), outcome(dry), `the real run does what the dry run said, batch ${batchSize}`);
      const created = await deps.users.findByIdentifier("new@example.org");
      assert.deepEqual([created?.externalSource, created?.externalId], ["site2", "7"]);
      const zed = await deps.users.findByIdentifier("zed@example.org");
      assert.deepEqual([zed?.externalSource, zed?.externalId], ["site1", "7"], "skip leaves zed's own link alone");
    }
  });

  it("an update never moves an account's existing legacy link to another source or id: the row is bad, the link stays", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "zed@example.org", displayName: "Zed", externalSource: "site1", externalId: "7" });
    await deps.users.create({ email: "una@example.org", displayName: "Una" });
    await deps.users.create({ email: "sam@example.org", displayName: "Sam", externalSource: "site2", externalId: "5" });
    const csv = "email,display_name,external_id\nzed@example.org,Zed B.,3\nuna@example.org,Una B.,4\nsam@example.org,Sam B.,5\n";
    const options: Extra = { source: "site2", onConflict: "update", skipBad: true };
    const dry = await run(deps, csv, { ...options, dryRun: true });
    assert.deepEqual(outcome(dry), {
      created: 0, updated: 2, skipped: 0,
      bad: [{ line: 2, reason: "the account is already linked to external id site1:7; an update does not relink it to site2:3" }],
    });
    const real = await run(deps, csv, options);
    assert.deepEqual(outcome(real), outcome(dry), "the real run does what the dry run said");
    const links = Object.fromEntries((await deps.database.db.selectFrom("users").select(["email", "external_source", "external_id", "display_name"]).execute())
      .map((r) => [r.email, [r.external_source, r.external_id, r.display_name]]));
    assert.deepEqual(links, {
      "zed@example.org": ["site1", "7", "Zed"], "una@example.org": ["site2", "4", "Una B."], "sam@example.org": ["site2", "5", "Sam B."],
    }, "zed keeps its link (and its row is not touched); una gets its first link; sam's same link is kept");
  });

  it("still refuses an external id that this source already gave another account, whichever batch finds it", async () => {
    for (const batchSize of [1, 2]) {
      const deps = await setup(await fx.fresh());
      await deps.users.create({ email: "owner@example.org", externalSource: "site2", externalId: "7" });
      await deps.users.create({ email: "zed@example.org", externalSource: "site1", externalId: "3" });
      const dry = await run(deps, "email,external_id\nzed@example.org,3\nnew@example.org,7\n", { source: "site2", onConflict: "skip", batchSize, dryRun: true });
      assert.deepEqual(dry.bad, [{ line: 3, reason: "external id site2:7 belongs to another account" }], `batch ${batchSize}`);
    }
  });

  it("a resumed run ends where an uninterrupted one does: a later duplicate of a written row is still a duplicate", async () => {
    // Was: rows up to the cursor were skipped before the duplicate check recorded them, so line 4 (line 2's
    // email again) passed as new on resume and, with --on-conflict update, overwrote Alice with MALLORY.
    const csv = "email,display_name\na@example.org,Alice\nb@example.org,Bob\na@example.org,MALLORY\n";
    const options: Extra = { onConflict: "update", skipBad: true, batchSize: 1 };
    const duplicate = [{ line: 4, reason: "duplicate of line 2 (same email, username or external id)" }];

    const whole = await setup(await fx.fresh());
    const uninterrupted = await run(whole, csv, options);
    assert.deepEqual(uninterrupted.bad, duplicate);

    const deps = await setup(await fx.fresh());
    // Dies while reading line 4 in the write pass: lines 2 and 3 are written (batch 1), the cursor is at line 3.
    await assert.rejects(run(deps, csv, { ...options, onProgress: (n, phase) => {
      if (phase === "write" && n === 3) throw new Error("the process died");
    } }), /the process died/);
    const dry = await run(deps, csv, { ...options, dryRun: true });
    assert.deepEqual([dry.resumedAfterLine, dry.alreadyImported, dry.bad, dry.updated], [3, 2, duplicate, 0], "the dry run predicts the resumed run");
    const resumed = await run(deps, csv, options);
    assert.deepEqual([resumed.resumedAfterLine, resumed.bad, resumed.updated, resumed.created], [3, duplicate, 0, 0]);
    assert.deepEqual(await accounts(deps), await accounts(whole), "the same accounts as the uninterrupted run");
    assert.equal((await deps.users.findByIdentifier("a@example.org"))?.displayName, "Alice");
  });

  it("an update with an empty status cell keeps a disabled account disabled; a new account is active", async () => {
    // Was: "" counted as a supplied status and read as "active": a re-import to fix display names re-enabled accounts.
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "alice@example.org", username: "alice", status: "disabled" });
    const csv = "email,display_name,status\nalice@example.org,Alice A.,\nnew@example.org,New, \n";
    const dry = await run(deps, csv, { onConflict: "update", dryRun: true });
    assert.deepEqual(outcome(dry), { created: 1, updated: 1, skipped: 0, bad: [] });
    const real = await run(deps, csv, { onConflict: "update" });
    assert.deepEqual(outcome(real), outcome(dry));
    const alice = await deps.users.findByIdentifier("alice@example.org");
    assert.deepEqual([alice?.displayName, alice?.status, alice?.username], ["Alice A.", "disabled", "alice"], "only the non-empty fields changed");
    assert.equal((await deps.users.findByIdentifier("new@example.org"))?.status, "active");
    // A status that is supplied still updates.
    await run(deps, "email,status\nalice@example.org,active\n", { onConflict: "update" });
    assert.equal((await deps.users.findByIdentifier("alice@example.org"))?.status, "active");
  });
});
