// Red team of today's changes (7d0de57..HEAD): the build's dist/ guard (scripts/build.ts), containment notices queued
// per batch (enqueueNotices, commit 10265c4) and the CLI tests converted to in-process runs (bulwarkHere, runHere,
// initSite { here: true }). A test named "FINDING: …" shows a real defect and fails until it is dealt with; every
// other test is an attack the code withstands (or a fact the report relies on) and passes.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import ts from "typescript";
import type { Kysely } from "kysely";
import { rewriteDynamicImports, specifierProblems } from "../scripts/build.ts";
import { queueNotices, type LeverContext, type NoticeDue, type ResetNotifier } from "../src/contain/lever.ts";
import { resetNotifierFor } from "../src/contain/service.ts";
import type { App } from "../src/app/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { NotifyInputError } from "../src/notify/errors.ts";
import { Outbox } from "../src/notify/outbox.ts";
import type { SecurityEvent } from "../src/notify/index.ts";
import type { Database } from "../src/store/database.ts";
import type { Schema } from "../src/store/schema.ts";
import { bulwark, bulwarkHere, bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { scratchRoot } from "./helpers/scratch.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const { root, fresh } = scratchRoot("bulwark-rt31-");

// ---------------------------------------------------------------------------------------------------------------------
// 1. scripts/build.ts: what survives tsc into dist/, and what the guard sees of it.
// ---------------------------------------------------------------------------------------------------------------------

/** `source` as tsc emits it for this repository's modules (tsconfig.json: nodenext, rewriteRelativeImportExtensions). */
function emitted(source: string): string {
  return ts.transpileModule(source, {
    fileName: join(ROOT, "src", "rt-probe.ts"),
    compilerOptions: {
      module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2023,
      rewriteRelativeImportExtensions: true, allowImportingTsExtensions: true, verbatimModuleSyntax: true, resolveJsonModule: true,
    },
  }).outputText;
}

describe("build guard (scripts/build.ts)", () => {
  // Attack: the shapes the guard promises to refuse, written the ways a module can write them — `export * from`, a
  // side-effect import, a dynamic import split over lines, an import into test/, node:test and a devDependency by
  // `export … from` — each must be named, and the split dynamic import must be rewritten to .js.
  it("refuses every relative .ts, test/ and dev-only specifier shape it claims, and rewrites a dynamic import split over lines", () => {
    const cases: Array<[string, RegExp]> = [
      [`export * from "./x.ts";`, /imports \.\/x\.ts \(a \.ts file/],
      [`import "../side.ts";`, /imports \.\.\/side\.ts/],
      [`const m = await import(\n  "./split.ts"\n);`, /imports \.\/split\.ts/],
      [`export { a } from '../../test/helpers/scratch.js';`, /test support is not part/],
      [`import { test } from "node:test";`, /node:test \(test or development only/],
      [`export { fc } from "fast-check";`, /fast-check \(test or development only/],
      [`const s = await import("smtp-server/lib/x.js");`, /smtp-server\/lib\/x\.js/],
    ];
    for (const [source, expected] of cases) {
      const problems = specifierProblems(source, ["fast-check", "smtp-server"]);
      assert.equal(problems.length, 1, `${source}: ${problems.join("; ")}`);
      assert.match(problems[0]!, expected, source);
    }
    const split = rewriteDynamicImports(`const m = await import(\n  "./split.ts"\n);`);
    assert.equal(split.rewritten, 1);
    assert.deepEqual(specifierProblems(split.text), []);
    // node:fs and a dependency are not dev-only; "node" (a devDependency name) is not matched by node:fs.
    assert.deepEqual(specifierProblems(`import { readFileSync } from "node:fs"; import pino from "pino";`, ["node", "fast-check"]), []);
  });

  // Attack: shapes tsc leaves in dist/ untouched that break where the package is installed, and that the guard does not
  // see — a template-literal import() of a .ts file, createRequire(import.meta.url)("./x.ts"), a devDependency
  // required through createRequire — plus its false alarm on a comment or message quoting `from "./x.ts"` (tsc keeps
  // comments). Not a defect of today's dist/ (src/ holds none of them: next test); reported as the guard's blind spots,
  // not pinned (a stricter guard must not break this test).
  it("the guard's blind spots survive tsc's emit (documented, not pinned)", (t) => {
    const out = emitted([
      `import { createRequire } from "node:module";`,
      "export const a = await import(`./tpl.ts`);",
      `export const b = createRequire(import.meta.url)("./req.ts");`,
      `export const c = createRequire(import.meta.url)("fast-check");`,
      `// moved here from "./old.ts"`,
      `export const d = 'write it as import("./plugin.ts")';`,
    ].join("\n"));
    assert.match(out, /import\(`\.\/tpl\.ts`\)/, "tsc leaves a template literal as written");
    assert.match(out, /\("\.\/req\.ts"\)/, "tsc leaves a createRequire path as written");
    assert.match(out, /from "\.\/old\.ts"/, "tsc keeps comments");
    const problems = specifierProblems(out, ["fast-check"]);
    const rewritten = rewriteDynamicImports(out);
    t.diagnostic(`guard on the emitted probe: ${JSON.stringify(problems)}; messages rewritten: ${rewritten.rewritten}`);
    // Known limits, pinned: a comment quoting a .ts import fails the build (a false alarm the build names, mended by
    // rewording), and a createRequire of a .ts path or a template-literal import() is not seen (src/ holds none: next test).
    assert.ok(problems.some((p) => p.includes("./old.ts")), JSON.stringify(problems));
    assert.ok(!problems.some((p) => p.includes("./req.ts") || p.includes("./tpl.ts")), JSON.stringify(problems));
  });

  // Attack: does src/ (what the build compiles) hold a shape the guard cannot see? A template-literal import()/require,
  // createRequire of anything but ../../package.json, a relative .mts/.cts specifier, or an asset located through
  // new URL("./…", import.meta.url) that tsc does not copy (only src/cli/program.ts's ./commands/ directory, which
  // holds compiled modules). Passes today: the built package's commands all ran in the red team's build (report).
  it("src/ holds no specifier shape the guard is blind to, and no asset read beside a module that tsc would not copy", () => {
    const files = (readdirSync(join(ROOT, "src"), { recursive: true }) as string[])
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.includes("testing/") && !/test-(setup|helpers|client)\.ts$|smtp-test-server\.ts$/.test(f));
    const found: string[] = [];
    for (const f of files) {
      const text = readFileSync(join(ROOT, "src", f), "utf8");
      for (const m of text.matchAll(/\b(?:import|require)\(\s*`[^`]*`/g)) found.push(`${f}: ${m[0]}`);
      for (const m of text.matchAll(/createRequire\([^)]*\)\(\s*["'`]([^"'`]+)/g)) if (m[1] !== "../../package.json") found.push(`${f}: createRequire ${m[1]}`);
      for (const m of text.matchAll(/["']\.\.?\/[^"'\n]*\.[mc]ts["']/g)) found.push(`${f}: ${m[0]}`);
      for (const m of text.matchAll(/new URL\(\s*["'`](\.\.?\/[^"'`]*)["'`]\s*,\s*import\.meta\.url/g)) if (!(f === join("cli", "program.ts") && m[1] === "./commands/")) found.push(`${f}: new URL ${m[1]}`);
    }
    assert.deepEqual(found, []);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// 2. Containment notices queued per batch (enqueueNotices) against the per-notice path it replaced.
// ---------------------------------------------------------------------------------------------------------------------

const NOW = Date.UTC(2026, 11, 6, 12);

/** The real notifier (resetNotifierFor) over `database`, and the same without enqueueNotices: the per-notice path. */
function notifiers(database: Database, serviceName = "Bulwark"): { batch: ResetNotifier; single: ResetNotifier } {
  const clock = new ManualClock(NOW);
  const outbox = new Outbox({ database, clock, random: systemRandom });
  const app = { accounts: { outbox, resetMailer: {} }, config: { serviceName, http: { publicURL: "https://bulwark.test" } }, clock } as unknown as App;
  const batch = resetNotifierFor(app);
  const { enqueueNotices: _dropped, ...single } = batch;
  return { batch, single };
}

function ctxFor(notifier: ResetNotifier, dialect: Database["dialect"], jobId = "job_rt31"): LeverContext {
  return { jobId, dialect, at: NOW, now: NOW, notifier } as unknown as LeverContext;
}

async function outboxRows(database: Database): Promise<Array<Record<string, unknown>>> {
  const rows = await database.db.selectFrom("outbox_messages")
    .select(["idempotency_key", "to_address", "kind", "account_id", "subject", "body_text", "priority", "status", "attempts", "next_attempt_at", "created_at"])
    .orderBy("idempotency_key").execute();
  return rows.map((r) => ({ ...r, priority: Number(r.priority), attempts: Number(r.attempts), next_attempt_at: Number(r.next_attempt_at), created_at: Number(r.created_at) }));
}

const PERMS = ["accounts.read", "admin"];
/** What the levers owe: several factors for one user (require-mfa-reenrolment), an undo's given/received pair
 * (demote-inactive-admins), a plain notice, two refused addresses, a user owing nothing, and a user listed twice. */
const DUE: NoticeDue[] = [
  { id: "usr_a", email: "a@example.org", events: (["totp", "webauthn", "recovery-codes"] as const).map((factor) => ({ type: "mfa-factor-removed", factor })) },
  { id: "usr_b", email: "jörg@example.org", events: [{ type: "password-expired" }] },
  { id: "usr_c", email: "C@Example.org", events: [{ type: "administrative-role-received", role: "ops", permissions: PERMS }, { type: "administrative-role-received", role: "root-ish", permissions: PERMS }] },
  { id: "usr_admin", email: "admin@example.org", events: [{ type: "administrative-role-given", role: "ops", permissions: PERMS, grantee: "usr_c" }, { type: "administrative-role-given", role: "root-ish", permissions: PERMS, grantee: "usr_c" }] },
  { id: "usr_d", email: "ops@intranet", events: [{ type: "mfa-factor-removed", factor: "totp" }] },
  { id: "usr_e", email: "e@example.org", events: [] },
  { id: "usr_f", email: "f@example.org", events: [{ type: "password-expired" }] },
  { id: "usr_f", email: "f@example.org", events: [{ type: "password-expired" }] },
];

forEachDialect("red team 31: a batch's notices in multi-row inserts", (dfx) => {
  // Attack: the batch path must queue exactly what the per-notice path queued — same keys, recipients, kinds, account
  // ids, texts — for the levers owing several notices per user, with refused addresses mixed in and a user listed twice;
  // a resumed batch (the same notices again, as after a kill before commit or a second run) queues nothing more.
  it("queues the same rows as one notice at a time, counts and audits the same, and a resumed batch queues nothing twice", async () => {
    const [one, many] = [await dfx.fresh(), await dfx.fresh()];
    const single = notifiers(one).single;
    const batch = notifiers(many).batch;
    assert.equal(single.enqueueNotices, undefined);
    const first = {
      single: await one.transaction((trx) => queueNotices(trx as unknown as Kysely<Schema>, ctxFor(single, one.dialect), DUE)),
      batch: await many.transaction((trx) => queueNotices(trx as unknown as Kysely<Schema>, ctxFor(batch, many.dialect), DUE)),
    };
    assert.deepEqual(first.batch, first.single);
    assert.equal(first.batch.queued, 3 + 2 + 2 + 2);
    assert.equal(first.batch.refused, 2);
    const rows = await outboxRows(many);
    assert.deepEqual(rows, await outboxRows(one));
    assert.equal(rows.length, 8, "the duplicate user's notice is one row");
    assert.deepEqual(rows.filter((r) => r["to_address"] === "a@example.org").map((r) => String(r["idempotency_key"]).split(":").slice(0, 2).join(":")).sort(),
      ["security.mfa-removed:job_rt31.usr_a.recovery-codes", "security.mfa-removed:job_rt31.usr_a.totp", "security.mfa-removed:job_rt31.usr_a.webauthn"]);
    assert.ok(rows.every((r) => r["account_id"] === DUE.find((u) => u.email === r["to_address"])?.id), "each notice is bound to its account");
    // Resumed / run again: nothing more in either path.
    for (const [database, notifier] of [[one, single], [many, batch]] as const) {
      await database.transaction((trx) => queueNotices(trx as unknown as Kysely<Schema>, ctxFor(notifier, database.dialect), DUE));
      assert.equal((await outboxRows(database)).length, 8);
    }
  });

  // Attack: a PostgreSQL batch is 5,000 users; require-mfa-reenrolment owes up to three notices each: 15,000 messages
  // in one transaction must not exceed a statement's 65,535 parameters (the outbox splits them into 500-row inserts),
  // and a second run of the batch adds none.
  it("5,000 users owing three notices each queue in one transaction, within the parameter limit, and once", async () => {
    const database = await dfx.fresh();
    const { batch } = notifiers(database);
    const due: NoticeDue[] = Array.from({ length: 5_000 }, (_, i) => ({
      id: `usr_${String(i).padStart(5, "0")}`, email: `u${i}@example.org`,
      events: (["totp", "webauthn", "recovery-codes"] as const).map((factor): SecurityEvent => ({ type: "mfa-factor-removed", factor })),
    }));
    for (let run = 0; run < 2; run++) {
      const told = await database.transaction((trx) => queueNotices(trx as unknown as Kysely<Schema>, ctxFor(batch, database.dialect, "job_big"), due));
      assert.equal(told.queued, 15_000);
      const n = await database.db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
      assert.equal(Number(n.n), 15_000, `after run ${run + 1}`);
    }
  });

  // Attack: a notice the outbox refuses as input (an over-long subject: a service name the configuration caps at 100
  // characters could not make one, a caller of resetNotifierFor can) fails the batch as the per-notice path did, and
  // leaves nothing queued. The error's code differs (per notice: the subject's BULWARK_ERR_MAIL_SUBJECT; per batch:
  // enqueueMany's BULWARK_ERR_MAIL_MESSAGE naming the message's key): noted in the report, not reachable from the CLI.
  it("a notice the outbox refuses fails the batch in both paths and queues nothing", async (t) => {
    const codes: string[] = [];
    for (const path of ["single", "batch"] as const) {
      const database = await dfx.fresh();
      const notifier = notifiers(database, "N".repeat(240))[path];
      await assert.rejects(
        database.transaction((trx) => queueNotices(trx as unknown as Kysely<Schema>, ctxFor(notifier, database.dialect), [DUE[0]!, DUE[6]!])),
        (error: Error & { code?: string }) => {
          assert.ok(error instanceof NotifyInputError, String(error));
          codes.push(String(error.code));
          return true;
        },
      );
      assert.equal((await outboxRows(database)).length, 0);
    }
    assert.equal(codes.length, 2);
    t.diagnostic(`refusal codes: per notice ${codes[0]}, per batch ${codes[1]}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// 3. CLI checks converted to in-process runs.
// ---------------------------------------------------------------------------------------------------------------------

/**
 * A product defect injected without touching src/: the CLI's logger destination (program.ts: pino.destination(2), made
 * before the configuration is read) first writes a log line holding BULWARK_MASTER_KEY, as a startup "config" log
 * would. Spawned: loaded with --import; in process: applied to this process's pino for the run.
 */
/**
 * A data dir whose master key rotation committed but whose key file was not moved into place (the process stopped in
 * between): master.key is the old key again and master.key.pending the new one. The next command that opens the
 * keyring moves it and says so through the logger (a warning), not through the command's own output.
 */
async function rotatedButNotMoved(dataDir: string, spawn: boolean): Promise<void> {
  const env = { BULWARK_DATA_DIR: dataDir, BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
  const run = (args: string[]): Promise<{ code: number | null; stderr: string }> => (spawn ? bulwark(args, { env }) : bulwarkHere(args, { env }));
  assert.equal((await run(["init"])).code, 0);
  const old = readFileSync(join(dataDir, "master.key"));
  const rotated = await run(["keys", "rotate-master", "--yes"]);
  assert.equal(rotated.code, 0, rotated.stderr);
  renameSync(join(dataDir, "master.key"), join(dataDir, "master.key.pending"));
  writeFileSync(join(dataDir, "master.key"), old, { mode: 0o600 });
}

describe("red team 31: CLI checks run in the test's process", () => {
  // Attack: a check converted today (ef87ddc, e.g. test/cli-foundation.test.ts "a master key of the wrong length or
  // not base64 … is not echoed") reads the result's stderr. A spawned run's stderr is fd 2 of the command, where its
  // logger writes; in process the logger wrote to the TEST's fd 2, so a secret or a message in a log line never reached
  // the stderr the check reads, and the check passed without looking (was: shown by a key written to the log, caught
  // spawned and passed in process). runCLI now sends the log lines to the streams its caller hands it.
  it("a log line reaches the result's stderr in process as it does spawned (was: only spawned; in process it went to the test's own stderr)", async () => {
    const seen: Record<string, string> = {};
    for (const spawn of [true, false]) {
      const dataDir = join(fresh(spawn ? "spawned" : "here"), "data");
      await rotatedButNotMoved(dataDir, spawn);
      const env = { BULWARK_DATA_DIR: dataDir, BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
      const r = spawn ? await bulwark(["audit", "verify"], { env }) : await bulwarkHere(["audit", "verify"], { env });
      assert.equal(r.code, 0, r.stderr);
      seen[spawn ? "spawned" : "here"] = r.stderr;
    }
    for (const [how, stderr] of Object.entries(seen)) {
      assert.match(stderr, /had committed but its key file was not moved into place/, `${how}: the recovery's warning is in stderr: ${JSON.stringify(stderr)}`);
    }
  });

  // Attack: the shell that runs the suite has a store of its own (a developer's BULWARK_DATABASE_URL, data dir or
  // master key). A spawned run never sees them (bulwark() clears them); an in-process run took them from process.env
  // whenever its test gave only some (was: bulwarkInProcess(["init"], { BULWARK_DATA_DIR }) followed the shell's URL).
  it("an in-process run does not take the shell's database URL, master key or data dir (was: it did, unless the test set them)", async () => {
    const saved = { url: process.env["BULWARK_DATABASE_URL"], key: process.env["BULWARK_MASTER_KEY"] };
    const dir = fresh("shell-env");
    process.env["BULWARK_DATABASE_URL"] = "postgres://developer@192.0.2.1:5432/production";
    process.env["BULWARK_MASTER_KEY"] = Buffer.alloc(16, 3).toString("base64");
    try {
      const r = await bulwarkInProcess(["init"], { BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });
      assert.equal(r.code, 0, `init used the test's data dir alone: ${r.stderr}`);
      assert.ok(readdirSync(join(dir, "data")).includes("bulwark.db"), "the embedded database, not the shell's URL");
      assert.ok(readdirSync(join(dir, "data")).includes("master.key"), "a key file, not the shell's master key");
    } finally {
      for (const [k, v] of [["BULWARK_DATABASE_URL", saved.url], ["BULWARK_MASTER_KEY", saved.key]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  // Control: the in-process and spawned refusals are the same text.
  it("init's refusal of a short master key reads the same in process and spawned", async () => {
    const key = Buffer.alloc(16, 9).toString("base64");
    const dir = fresh("control");
    const spawned = await bulwark(["init"], { env: { BULWARK_DATA_DIR: join(dir, "s"), BULWARK_MASTER_KEY: key } });
    const here = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: join(dir, "h"), BULWARK_MASTER_KEY: key } });
    assert.equal(here.code, spawned.code);
    assert.equal(here.stderr.replaceAll(join(dir, "h"), "D"), spawned.stderr.replaceAll(join(dir, "s"), "D"));
    assert.ok(relative(root, dir).length > 0);
  });
});
