// What makes an import predictable, on SQLite and PostgreSQL: the verdict on a row depends on the row and the
// stored accounts, never on which rows share its batch; a dry run predicts the real run; a resumed run ends
// where an uninterrupted one does, under the same source; an update changes only what the file supplied with a
// value; what the database refuses as a duplicate is refused by line, as validation would have.
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
import { ImportRefusedError } from "./errors.ts";
import { importUsers, type ImportDeps, type ImportOptions, type ImportReport } from "./importer.ts";
import { checkHeader, resolveMap, type FieldMap } from "./mapping.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });

async function setup(db: Database): Promise<ImportDeps> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  return {
    database: db, clock, passwords, users: createUserStore({ database: db, clock, random: systemRandom }), audit: new AuditLog({ database: db, clock, random: systemRandom }),
    jobs: new JobStore({ database: db, clock, random: systemRandom }),
    notices: null,
  };
}

type Extra = Partial<Omit<ImportOptions, "rules" | "open">> & { source?: string; map?: FieldMap };

function run(deps: ImportDeps, csv: string, extra: Extra = {}): Promise<ImportReport> {
  const { source, map: explicit, ...rest } = extra;
  const map = resolveMap({ preset: null, map: explicit ?? {} });
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

  it("keys that differ only in escaped lone surrogates are bad rows in the dry run and the real run, not one account", async () => {
    // Was: the dry run said "would create" them all; the database stored U+FFFD for every lone surrogate, so
    // "7\udce9" and "7\udce8" became one external id (and "jos\udce9@" one address with "jos\udce8@"): the real run
    // died on the unique index with an internal error (exit 3) and left a failed job.
    const deps = await setup(await fx.fresh());
    const jsonl = [
      '{"email":"a@example.org","external_id":"7\\udce9"}',
      '{"email":"b@example.org","external_id":"7\\udce8"}',
      '{"email":"jos\\udce9@example.org"}',
      '{"email":"ok@example.org","external_id":"8"}',
    ].join("\n");
    const options: Extra = { format: "jsonl", batchSize: 1 };
    const dry = await run(deps, jsonl, { ...options, dryRun: true });
    assert.deepEqual([dry.created, dry.bad.map((b) => b.line)], [1, [1, 2, 3]]);
    const why = (field: string, unit: string): string => `the value of "${field}" holds the lone surrogate \\u${unit} (half of a UTF-16 pair), which is not a character; write the character itself, as UTF-8`;
    assert.deepEqual(dry.bad.map((b) => b.reason), [why("external_id", "dce9"), why("external_id", "dce8"), why("email", "dce9")]);
    await assert.rejects(run(deps, jsonl, options), (e: unknown) => e instanceof ImportRefusedError && /^3 bad row\(s\), nothing imported .*line 1: the value of "external_id" holds/.test(e.message));
    const real = await run(deps, jsonl, { ...options, skipBad: true });
    assert.deepEqual(outcome(real), outcome(dry), "the real run does what the dry run said");
    assert.deepEqual((await accounts(deps)).map((a) => (a as { email: string }).email), ["ok@example.org"]);
    assert.deepEqual((await deps.jobs.list({ kind: "users-import", limit: 10 })).map((j) => j.status), ["done"], "no failed job");
  });

  it("a row the database's unique index refuses, though validation passed it, is the importer's refusal naming its line", async () => {
    // Was: the driver's error escaped as an internal error (exit 3). Staged with a store whose unique index compares
    // emails more coarsely than the importer (as it did lone surrogates, both stored as U+FFFD): "taken+2@" is stored
    // under the key of the existing "taken@".
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "taken@example.org" });
    const { prepare } = deps.users;
    const coarse: ImportDeps = {
      ...deps,
      users: { ...deps.users, prepare: (user) => ({ ...prepare(user), ...(user.email === "taken+2@example.org" ? { email_key: "taken@example.org" } : {}) }) },
    };
    const csv = "email\nfirst@example.org\ntaken+2@example.org\nlast@example.org\n";
    const dry = await run(coarse, csv, { batchSize: 2, dryRun: true });
    assert.deepEqual(outcome(dry), { created: 3, updated: 0, skipped: 0, bad: [] }, "validation cannot see it: only the store can");
    await assert.rejects(run(coarse, csv, { batchSize: 2 }), (e: unknown) => e instanceof ImportRefusedError
      && /^line 3: the database refused it as a duplicate of a stored account \(.*(UNIQUE constraint failed: users\.email_key|duplicate key value).*\); batch 1 was rolled back/.test(e.message));
    assert.deepEqual((await accounts(deps)).map((a) => (a as { email: string }).email), ["taken@example.org"], "the whole batch rolled back");
    const [job] = await deps.jobs.list({ kind: "users-import", limit: 10 });
    assert.deepEqual([job?.status, job?.cursor], ["failed", null], "a failed job that the same file resumes from its start");
  });

  it("a resumed run keeps the source its job recorded: another one is refused naming both, dry or real", async () => {
    // Was: the resume took the new run's source, which the CLI derives from the file name, so a renamed copy of the
    // file ("users (1).csv") linked the rest of the accounts to another source, and the next update of the file
    // found them "already linked to external id users (1).csv:…".
    const csv = "email,external_id\na@example.org,1\nb@example.org,2\nc@example.org,3\n";
    const deps = await setup(await fx.fresh());
    // Dies while reading line 4 in the write pass: lines 2 and 3 are written, the cursor is at line 3.
    await assert.rejects(run(deps, csv, { source: "users.csv", batchSize: 1, onProgress: (n, phase) => {
      if (phase === "write" && n === 3) throw new Error("the process died");
    } }), /the process died/);
    for (const dryRun of [true, false]) {
      await assert.rejects(run(deps, csv, { source: "users (1).csv", dryRun }), (e: unknown) => e instanceof ImportRefusedError
        && /^this file's import was interrupted \(job job_\w+, written through line 3\) under the source "users\.csv", but this run's source is "users \(1\)\.csv" .*resume with --source "users\.csv"$/.test(e.message), `dry run: ${dryRun}`);
    }
    assert.equal(await deps.users.count(), 2, "the refused run wrote nothing");
    const resumed = await run(deps, csv, { source: "users.csv" });
    assert.deepEqual([resumed.source, resumed.resumedAfterLine, resumed.created, resumed.bad], ["users.csv", 3, 1, []]);
    const links = (await accounts(deps)).map((a) => { const r = a as { external_source: string; external_id: string }; return `${r.external_source}:${r.external_id}`; });
    assert.deepEqual(links, ["users.csv:1", "users.csv:2", "users.csv:3"]);
  });

  it("a resumed run keeps the settings its job recorded: others are refused naming each difference, dry or real", async () => {
    // Was: only the source was checked, so a resume with --on-conflict update overwrote the accounts the first run
    // had been told to skip, and one file ended up imported under two sets of rules.
    const csv = "email,display_name\nold@example.org,Olga\na@example.org,Ada\nb@example.org,Bo\nold2@example.org,Otto\n";
    const deps = await setup(await fx.fresh());
    for (const email of ["old@example.org", "old2@example.org"]) await deps.users.create({ email, displayName: "kept" });
    // Dies while reading line 4 in the write pass: lines 2 and 3 are dealt with, the cursor is at line 3.
    await assert.rejects(run(deps, csv, { onConflict: "skip", batchSize: 1, onProgress: (n, phase) => {
      if (phase === "write" && n === 3) throw new Error("the process died");
    } }), /the process died/);
    const refused = (pattern: RegExp) => (e: unknown): boolean => {
      assert.ok(e instanceof ImportRefusedError, String(e));
      assert.match(e.message, pattern);
      return true;
    };
    for (const dryRun of [true, false]) {
      await assert.rejects(run(deps, csv, { onConflict: "update", replacePasswords: true, dryRun }), refused(
        /^this file's import was interrupted \(job job_\w+, written through line 3\) under other settings: --on-conflict skip then, --on-conflict update now; no --replace-passwords then, --replace-passwords now\. .*resume with --on-conflict skip, no --replace-passwords; once it is done/,
      ), `dry run: ${dryRun}`);
    }
    await assert.rejects(run(deps, csv, { onConflict: "skip", map: { display_name: "name" } }), refused(/under other settings: columns .*display_name=display_name.* then, columns .*display_name=name.* now/));
    assert.deepEqual((await accounts(deps)).map((a) => (a as { display_name: string | null }).display_name), ["Ada", "kept", "kept"], "the refused runs wrote nothing");
    const resumed = await run(deps, csv, { onConflict: "skip" });
    assert.deepEqual([resumed.resumedAfterLine, resumed.alreadyImported, resumed.created, resumed.skipped], [3, 2, 1, 1]);
    assert.deepEqual((await accounts(deps)).map((a) => (a as { display_name: string | null }).display_name), ["Ada", "Bo", "kept", "kept"], "both existing accounts skipped, as the first run said");
    // Done: the next run of the same file is a new import, under whatever settings it is given.
    const again = await run(deps, csv, { onConflict: "update", dryRun: true });
    assert.equal(again.resumedAfterLine, null);
  });
});
