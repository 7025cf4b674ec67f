// End-to-end: `bulwark check bucket` as a user runs it on AWS CLI output (spawned CLI).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { bulwark as spawnCLI, type CLIResult } from "./helpers/cli.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIX = "src/checks/bucket/fixtures/";

/** Runs the CLI in a child from the repository's root (the fixtures' paths are relative to it). */
const bulwark = (args: string[], env: Record<string, string> = {}): Promise<CLIResult> => spawnCLI(args, { env, cwd: ROOT });

describe("bulwark check bucket", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-bucket-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("Sentry's bucket (seed 004): any-AWS-account read, exit 1, JSON with the access summary", async () => {
    const run = await bulwark(["check", "bucket", "--policy", `${FIX}sentry-policy.json`, "--acl", `${FIX}sentry-acl.json`, "--owner-account", "111122223333", "--json"]);
    assert.equal(run.code, 1, run.stderr);
    const out = JSON.parse(run.stdout) as { access: Record<string, unknown>; findings: { id: string; severity: string }[] };
    assert.deepEqual(out.findings.map((f) => f.id), ["bucket.any-aws-account-read", "bucket.conflicting-statements", "bucket.no-secure-transport"]);
    assert.deepEqual(out.access["anyAwsAccount"], { read: true, write: false });
    assert.deepEqual(out.access["anonymous"], { read: false, write: false });
    assert.equal(out.access["bucket"], "sentry-backups");
  });

  test("human output shows who can do what, then the findings", async () => {
    const run = await bulwark(["check", "bucket", "--acl", `${FIX}sentry-acl.json`]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /any AWS account: read yes, write no/);
    assert.match(run.stdout, /\[CRITICAL\] bucket\.any-aws-account-read:/);
  });

  test("a public Allow cancelled by an explicit Deny: no findings, exit 0 (Prowler reports it)", async () => {
    const run = await bulwark(["check", "bucket", "--policy", `${FIX}public-cancelled-policy.json`, "--owner-account", "111122223333"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /bucket: no findings/);
    assert.match(run.stdout, /Allows cancelled for outside callers by explicit Denies: "PublicRead" \(#0\)/);
  });

  test("Block Public Access with every setting on turns a public-read policy into no exposure", async () => {
    const run = await bulwark(["check", "bucket", "--policy", `${FIX}public-read-policy.json`, "--public-access-block", `${FIX}public-access-block-all.json`, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { access: Record<string, unknown>; findings: unknown[] };
    assert.deepEqual(out.findings, []);
    assert.equal(out.access["restrictPublicBucketsApplied"], true);
  });

  test("--fail-on decides the exit code", async () => {
    const args = ["check", "bucket", "--policy", `${FIX}public-read-policy.json`];
    assert.equal((await bulwark([...args, "--fail-on", "none"])).code, 0);
    assert.equal((await bulwark([...args, "--fail-on", "critical"])).code, 1);
  });

  test("exits 2 when no input is given", async () => {
    const run = await bulwark(["check", "bucket"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /at least one of --policy, --acl, --public-access-block/);
  });

  test("exits 2 naming the file and the problem for malformed or wrongly shaped input", async () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{ not json");
    let run = await bulwark(["check", "bucket", "--policy", bad]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: not valid JSON`));
    const shape = join(dir, "shape.json");
    writeFileSync(shape, JSON.stringify({ Grants: [{ Grantee: { Type: "Group", URI: "x" }, Permission: "EVERYTHING" }] }));
    run = await bulwark(["check", "bucket", "--acl", shape]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /shape\.json: Grants\[0\]\.Permission must be one of/);
    run = await bulwark(["check", "bucket", "--acl", join(dir, "missing.json")]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /missing\.json: cannot be read \(ENOENT\)/);
  });

  test("exits 2 for an owner account that is not 12 digits", async () => {
    const run = await bulwark(["check", "bucket", "--acl", `${FIX}sentry-acl.json`, "--owner-account", "12345"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--owner-account must be a 12-digit AWS account id/);
  });

  test("--record stores the run in the database", async () => {
    const env = { BULWARK_DATA_DIR: join(dir, "data") };
    const init = await bulwark(["init"], env);
    assert.equal(init.code, 0, init.stderr);
    const run = await bulwark(["check", "bucket", "--acl", `${FIX}sentry-acl.json`, "--record", "--fail-on", "none", "--json"], env);
    assert.equal(run.code, 0, run.stderr);
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(join(dir, "data", "bulwark.db"), { readOnly: true });
    const row = db.prepare("SELECT check_name, findings FROM check_runs").get() as { check_name: string; findings: number };
    db.close();
    assert.deepEqual({ ...row }, { check_name: "bucket", findings: 1 });
  });
});
