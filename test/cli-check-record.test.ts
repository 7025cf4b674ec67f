// End-to-end: `--record` stores every check's run and findings for history (checks that have no
// test of it in their own file: files and downloads), and the stored count matches the JSON output.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { diskTmpdir } from "./helpers/scratch.ts";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { bulwark } from "./helpers/cli.ts";

describe("bulwark check … --record", () => {
  const root = realpathSync(mkdtempSync(join(diskTmpdir(), "bulwark-cli-record-")));
  const env = { BULWARK_DATA_DIR: join(root, "data") };
  after(() => rmSync(root, { recursive: true, force: true }));
  before(async () => {
    const init = await bulwark(["init"], { env });
    assert.equal(init.code, 0, init.stderr);
  });

  function runs(): Array<{ check_name: string; findings: number }> {
    const db = new DatabaseSync(join(root, "data", "bulwark.db"), { readOnly: true });
    try {
      return (db.prepare("SELECT check_name, findings FROM check_runs").all() as Array<{ check_name: string; findings: number }>).map((r) => ({ ...r }));
    } finally {
      db.close();
    }
  }

  test("files: a baseline, then a compare with a changed file, are both stored", async () => {
    const tree = join(root, "tree");
    mkdirSync(tree);
    writeFileSync(join(tree, "app.conf"), "debug=false\n");
    const baseline = join(root, "tree.baseline");
    const made = await bulwark(["check", "files", "--baseline", baseline, tree, "--record"], { env });
    assert.equal(made.code, 0, made.stderr);
    writeFileSync(join(tree, "app.conf"), "debug=true\n");
    const cmp = await bulwark(["check", "files", "--compare", baseline, "--record", "--json", "--fail-on", "none"], { env });
    assert.equal(cmp.code, 0, cmp.stderr);
    const printed = (JSON.parse(cmp.stdout) as { findings: Array<{ id: string }> }).findings;
    assert.ok(printed.some((f) => f.id === "files.changed"));
    const stored = runs().filter((r) => r.check_name === "files");
    assert.ok(stored.some((r) => r.findings === printed.length), JSON.stringify(stored));
  });

  test("downloads: a mismatching artifact is stored with its finding, exit 1", async () => {
    const dir = join(root, "release");
    mkdirSync(dir);
    writeFileSync(join(dir, "app.tar.gz"), "tampered\n");
    writeFileSync(join(dir, "SHA256SUMS"), `${createHash("sha256").update("app\n").digest("hex")}  app.tar.gz\n`);
    const r = await bulwark(["check", "downloads", join(dir, "SHA256SUMS"), "--record"], { env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /\[CRITICAL\] downloads\./);
    assert.deepEqual(runs().filter((x) => x.check_name === "downloads"), [{ check_name: "downloads", findings: 1 }]);
  });

  test("--record without an initialised Bulwark exits 2 saying to run init, and creates nothing", async () => {
    const r = await bulwark(["check", "downloads", join(root, "release", "SHA256SUMS"), "--record"], { env: { BULWARK_DATA_DIR: join(root, "absent", "nested") } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no Bulwark database at .*absent\/nested; run `bulwark init` first/);
    assert.equal(existsSync(join(root, "absent")), false);
  });
});
