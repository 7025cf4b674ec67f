// The foundation's end-to-end promises on PostgreSQL: init, audit verify, and tamper detection through the
// CLI with BULWARK_DATABASE_URL, against a private cluster (skipped loudly when PostgreSQL is not installed).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { bulwark } from "./helpers/cli.ts";
import { postgresUnavailable, startPostgres, type PgCluster } from "./helpers/postgres.ts";
import { testMasterKey } from "./helpers/master-key.ts";

const unavailable = postgresUnavailable();

describe("bulwark on PostgreSQL", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  let cluster: PgCluster | null = null;
  let dir: string;
  before(async () => {
    cluster = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), "bulwark-clipg-"));
  });
  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function sql(url: string, text: string): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  }

  it("initialises, verifies, and names an altered, deleted or reordered event", async () => {
    const url = await cluster!.createDatabase("cli_pg");
    const env = { BULWARK_DATA_DIR: join(dir, "data"), BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: testMasterKey(3) };
    const init = await bulwark(["init", "--json"], { env });
    assert.equal(init.code, 0, init.stderr);
    const report = JSON.parse(init.stdout);
    assert.equal(report.dialect, "postgres");
    assert.deepEqual(report.migrationsApplied, MIGRATIONS.map((m) => m.version));
    assert.equal((await bulwark(["init"], { env })).code, 0, "init is idempotent on PostgreSQL too");
    assert.equal((await bulwark(["audit", "verify"], { env })).code, 0);

    await sql(url, "UPDATE audit_events SET subject = 'forged' WHERE seq = 3");
    let r = await bulwark(["audit", "verify"], { env });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /BROKEN at event #3/);

    const fresh = await cluster!.createDatabase("cli_pg2");
    const env2 = { ...env, BULWARK_DATABASE_URL: fresh };
    assert.equal((await bulwark(["init"], { env: env2 })).code, 0);
    await sql(fresh, "DELETE FROM audit_events WHERE seq = 2");
    r = await bulwark(["audit", "verify"], { env: env2 });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /#2 is missing/);

    const third = await cluster!.createDatabase("cli_pg3");
    const env3 = { ...env, BULWARK_DATABASE_URL: third };
    assert.equal((await bulwark(["init"], { env: env3 })).code, 0);
    await sql(third, "UPDATE audit_events SET seq = 100 WHERE seq = 2; UPDATE audit_events SET seq = 2 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = 100");
    r = await bulwark(["audit", "verify"], { env: env3 });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /BROKEN at event #2/);
  });

  it("refuses to start with the wrong master key and names the problem", async () => {
    const url = await cluster!.createDatabase("cli_pg_key");
    const env = { BULWARK_DATA_DIR: join(dir, "data2"), BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: testMasterKey(5) };
    assert.equal((await bulwark(["init"], { env })).code, 0);
    const wrong = await bulwark(["audit", "verify"], { env: { ...env, BULWARK_MASTER_KEY: testMasterKey(6) } });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /master key/);
  });
});
