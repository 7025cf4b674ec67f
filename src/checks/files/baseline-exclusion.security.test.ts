// A baseline stored inside the tree it records leaves out only itself and the temporary file this run writes.
// Attack that must fail: hiding a planted setuid file from --compare by naming it like one of our temporary
// files (".NAME.anything.tmp" beside the baseline used to be left out of every scan, compare included).
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ManualClock } from "../../lib/clock.ts";
import { compareBaseline, createBaseline } from "./check.ts";
import { tempDir, testSigner } from "./test-helpers.ts";

describe("what a baseline inside the scanned tree leaves out", () => {
  let root: string;
  let store: string;
  let baseline: string;
  const signer = testSigner();
  const clock = new ManualClock();
  const recorded = (): string[] =>
    readFileSync(baseline, "utf8")
      .split("\n")
      .filter((l) => l.startsWith('{"path":'))
      .map((l) => (JSON.parse(l) as { path: string }).path);

  before(async () => {
    root = tempDir("bulwark-files-own-");
    store = join(root, "var/lib/bulwark");
    mkdirSync(store, { recursive: true });
    mkdirSync(join(root, "usr/bin"), { recursive: true });
    writeFileSync(join(root, "usr/bin/tool"), "ok\n", { mode: 0o755 });
    // Present before the baseline run, named like a temporary file of ours: it is a file like any other.
    writeFileSync(join(store, ".root.baseline.123.456.tmp"), "leftover\n");
    baseline = join(store, "root.baseline");
    await createBaseline({ paths: [root], out: baseline, signer, clock });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("records neither itself nor its temporary file, but records a look-alike that was already there", () => {
    const paths = recorded();
    assert.ok(paths.includes(join(root, "usr/bin/tool")), "the tree is recorded");
    assert.ok(!paths.includes(baseline), "not the baseline itself");
    assert.deepEqual(paths.filter((p) => p.startsWith(join(store, ".root.baseline."))), [join(store, ".root.baseline.123.456.tmp")], "only the look-alike");
  });

  it("reports a setuid file planted beside it under a temporary-looking name (was: hidden from --compare)", async () => {
    const planted = join(store, ".root.baseline.backdoor.tmp");
    writeFileSync(planted, "#!/bin/sh\n");
    chmodSync(planted, 0o4755);
    try {
      const r = await compareBaseline({ baseline, signer });
      const added = r.findings.filter((f) => f.id === "files.added");
      const paths = added.flatMap((f) => (f.evidence["entries"] as Array<{ path: string }>).map((e) => e.path));
      assert.deepEqual(paths, [planted]);
      assert.equal(added[0]?.severity, "high", "a new setuid file");
      assert.equal(r.totals.removed, 0, "the recorded look-alike is still there");
    } finally {
      rmSync(planted);
    }
  });

  it("leaves out the name the caller publishes the baseline under (publishAs) as well", async () => {
    const out = join(store, ".root.baseline.2.new.tmp");
    const published = join(store, "root.baseline.2");
    writeFileSync(published, "appeared during the scan\n");
    try {
      await createBaseline({ paths: [root], out, publishAs: published, signer, clock });
      const lines = readFileSync(out, "utf8");
      assert.ok(!lines.includes(JSON.stringify(published)), "the published name is not recorded");
      assert.ok(!lines.includes(JSON.stringify(out)), "nor the file written");
      assert.ok(lines.includes(JSON.stringify(baseline)), "the first baseline is a file like any other here");
    } finally {
      rmSync(out, { force: true });
      rmSync(published, { force: true });
    }
  });
});
