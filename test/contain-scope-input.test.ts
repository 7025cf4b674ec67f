// Hostile --ids entries: a NUL (possible in an --ids file) or an unpaired surrogate cannot be stored as text by
// PostgreSQL, which failed the statement with a raw DatabaseError (CLI exit 3, API 500) while SQLite matched
// nobody. Each is refused up front as bad input naming the entry, the same on both dialects.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AuditLog } from "../src/audit/audit-log.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { InputError } from "../src/lib/errors.ts";
import { systemRandom } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { countScope, createContainJob, dryRunContain, parseIdsFile, type ContainDeps } from "../src/contain/index.ts";
import { validateScope } from "../src/contain/scope.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect, sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";

const NOW = Date.UTC(2026, 10, 20);

async function setup(database: Database): Promise<ContainDeps> {
  const clock = new ManualClock(NOW);
  assert.equal((await migrate(database, clock, MIGRATIONS)).error, undefined);
  await database.db.insertInto("users").values({
    id: "usr_0000", email: "user0@example.org", email_key: "user0@example.org", status: "active", password_hash: null, password_scheme: null,
    password_must_change: 0, created_at: NOW, updated_at: NOW, seeded: 1,
  }).execute();
  return {
    database, clock, random: systemRandom, keyring: null, notifier: null,
    audit: new AuditLog({ database, clock, random: systemRandom }),
    jobs: new JobStore({ database, clock, random: systemRandom }),
  };
}

const HOSTILE = [
  { entry: "usr_\u0000x", why: /--ids entry 2 contains a NUL character/ },
  { entry: "x\uD800@example.org", why: /--ids entry 2 contains an unpaired surrogate/ },
  { entry: "usr_\uDC00", why: /--ids entry 2 contains an unpaired surrogate/ },
];

// ASVS 2.2.1: input is validated against what it must be (text a database can hold) before it is used.
forEachDialect("contain scope: hostile --ids entries", (dfx) => {
  for (const { entry, why } of HOSTILE) {
    it(`refuses ${JSON.stringify(entry)} as bad input naming the entry, in a dry run, a count and a real run, before writing anything`, async () => {
      const deps = await setup(await dfx.fresh());
      const scope = { ids: ["usr_0000", entry] };
      const refused = { name: "InputError", code: "BULWARK_ERR_CONTAIN_SCOPE", message: why };
      await assert.rejects(dryRunContain(deps, { levers: ["lock-accounts"], scope, actor: "t" }), (e) => e instanceof InputError && assertMatches(e, refused));
      await assert.rejects(countScope(deps, scope), (e) => e instanceof InputError && assertMatches(e, refused));
      await assert.rejects(createContainJob(deps, { levers: ["lock-accounts"], scope, actor: "t" }), (e) => e instanceof InputError && assertMatches(e, refused));
      assert.equal((await deps.jobs.list({})).length, 0, "no job");
      assert.equal((await deps.audit.tail(10)).length, 0, "nothing audited, nothing done");
    });
  }

  it("still takes well-formed entries with letters beyond ASCII and emoji (a surrogate pair is one character)", async () => {
    const deps = await setup(await dfx.fresh());
    const report = await dryRunContain(deps, { levers: ["lock-accounts"], scope: { ids: ["usr_0000", "jörg@example.org", "usr_\u{1F600}"] }, actor: "t" });
    assert.equal(report.users, 1);
    assert.deepEqual(report.unmatchedIds, { count: 2, sample: ["usr_\u{1F600}", "jörg@example.org"] });
  });
});

function assertMatches(error: InputError, expected: { name: string; code: string; message: RegExp }): boolean {
  assert.equal(error.code, expected.code);
  assert.match(error.message, expected.message);
  return true;
}

describe("contain --ids file with a NUL", () => {
  it("names the line of the file (comments and blank lines counted), not a position in the parsed list", () => {
    const file = "# breached accounts\n\nusr_a\nusr_\u0000b\n";
    assert.throws(() => parseIdsFile(file), { code: "BULWARK_ERR_CONTAIN_SCOPE", message: /--ids file line 4 contains a NUL character/ });
    assert.deepEqual(parseIdsFile("# ok\nusr_a\r\njörg@example.org\n"), ["usr_a", "jörg@example.org"]);
  });

  it("attack: a `#` line that could be an address is an entry, not a comment — sign-up takes `#mallory@attacker.example`, which was silently left out of the containment it was listed for; a comment says something or holds no `@` (ASVS 2.2.3)", () => {
    const file = "# breached, from the abuse desk: ana@example.org\n#no-address-here\n#mallory@attacker.example\n  #eve@attacker.example  \nusr_a\n";
    assert.deepEqual(parseIdsFile(file), ["#mallory@attacker.example", "#eve@attacker.example", "usr_a"]);
    // Nothing left but comments is still its own mistake.
    assert.throws(() => validateScope({ ids: parseIdsFile("# a@b.example only a note\n#note\n") }), { code: "BULWARK_ERR_CONTAIN_SCOPE", message: /lists no user ids or emails/ });
  });

  let dir: string;
  const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent" });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-contain-ids-"));
    assert.equal((await bulwarkInProcess(["init"], env())).code, 0);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("`bulwark contain` refuses the file with exit 2 (usage), naming the line", async () => {
    const ids = join(dir, "ids.txt");
    writeFileSync(ids, "usr_a\nusr_\u0000b\n");
    for (const extra of [["--dry-run"], ["--yes"]]) {
      const r = await bulwarkInProcess(["contain", "lock-accounts", "--ids", ids, ...extra], env());
      assert.equal(r.code, 2, `${extra.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /--ids file line 2 contains a NUL character/);
    }
  });
});

// The HTTP API refuses such an entry in its request validation: 400, with the body its other validation errors use.
describe("POST /api/v1/contain/jobs with a hostile ids entry", () => {
  async function check(fx: APIFixture): Promise<void> {
    const admin = await fx.user(["admin"]);
    const token = await fx.token(admin.id, ["admin"]);
    const victim = await fx.user([]);
    for (const bad of ["usr_\uD800", "usr_\u0000"]) {
      for (const dryRun of [true, false]) {
        const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [victim.id, bad] }, dryRun } });
        assert.equal(res.statusCode, 400, `${JSON.stringify(bad)} dryRun=${dryRun}: ${res.body.slice(0, 300)}`);
        const body = res.json() as { error: { code: string; message: string; requestId: string } };
        assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "requestId"]);
        assert.equal(body.error.code, "BULWARK_ERR_VALIDATION");
        assert.match(body.error.message, /scope\/ids\/1 /, "names the entry");
      }
    }
    const jobs = await fx.call("GET", "/api/v1/contain/jobs", { token });
    assert.deepEqual((jobs.json() as { jobs: unknown[] }).jobs, [], "no job was created");
  }

  it("[sqlite] answers 400", async () => {
    const fx = await openAPIFixture();
    try {
      await check(fx);
    } finally {
      await fx.close();
    }
  });

  const unavailable = postgresUnavailable();
  it("[postgres] answers 400", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, async () => {
    const cluster = await sharedCluster();
    assert.ok(cluster, "PostgreSQL cluster did not start");
    const fx = await openAPIFixture({ databaseURL: await cluster.createDatabase(`contain_ids_${process.pid}`) });
    try {
      await check(fx);
    } finally {
      await fx.close();
    }
  });
});
