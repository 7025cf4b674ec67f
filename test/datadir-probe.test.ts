// The data dir's writability probe never writes through a link and never writes outside the data dir. It used to
// write `.bulwark-probe-<pid>` with writeFileSync (O_CREAT|O_TRUNC, follows symlinks) in the data dir, or, when the
// data dir did not exist yet, in its nearest existing ancestor (/srv, /tmp…): whoever could write there planted a
// symlink under that predictable name and `bulwark init` truncated its target with Bulwark's rights.
// Meaningful as root or not: the victim is a file this process owns either way.
import assert from "node:assert/strict";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-datadir-probe-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

const VICTIM_TEXT = "IMPORTANT CONTENT\n";

function victim(name: string): string {
  const path = join(root, name);
  writeFileSync(path, VICTIM_TEXT);
  return path;
}

/** Plants links under every name the old probe used (this process's pid, and a few around it). */
function plantProbeLinks(dir: string, target: string): string[] {
  const names = [process.pid - 1, process.pid, process.pid + 1].map((pid) => `.bulwark-probe-${pid}`);
  for (const name of names) symlinkSync(target, join(dir, name));
  return names;
}

async function init(dataDir: string): Promise<void> {
  const app = await openApp({ env: { BULWARK_DATA_DIR: dataDir, BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" }, mode: "init" });
  await app.close();
}

describe("the data dir's writability probe", () => {
  it("attack: a symlink planted in the shared parent of a data dir that does not exist yet is not followed, and nothing is written in the parent", async () => {
    const target = victim("victim-parent.conf");
    const shared = join(root, "shared"); // e.g. /srv or /tmp: writable by someone else
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const planted = plantProbeLinks(shared, target);
    const dataDir = join(shared, "bulwark-data");
    await init(dataDir);
    assert.equal(readFileSync(target, "utf8"), VICTIM_TEXT, "init truncated a file outside the data dir through the probe symlink");
    assert.deepEqual(readdirSync(shared).sort(), ["bulwark-data", ...planted].sort(), "init wrote (or removed) something in the parent directory");
    for (const name of planted) assert.ok(lstatSync(join(shared, name)).isSymbolicLink());
    assert.equal(statSync(dataDir).mode & 0o777, 0o700, "the data dir is created private");
  });

  it("attack: a symlink planted in an existing data dir under the old probe name is not followed", async () => {
    const target = victim("victim-existing.conf");
    const dataDir = join(root, "existing");
    mkdirSync(dataDir, { mode: 0o700 });
    const planted = plantProbeLinks(dataDir, target);
    await init(dataDir);
    assert.equal(readFileSync(target, "utf8"), VICTIM_TEXT, "init truncated a file outside the data dir through the probe symlink");
    for (const name of planted) assert.ok(lstatSync(join(dataDir, name)).isSymbolicLink(), "the planted link was neither replaced nor followed");
  });

  it("leaves nothing behind in the data dir", async () => {
    const dataDir = join(root, "clean");
    mkdirSync(dataDir, { mode: 0o700 });
    await init(dataDir);
    await init(dataDir); // an existing data dir is probed on every init
    assert.deepEqual(readdirSync(dataDir).filter((name) => !["bulwark.db", "bulwark.db-wal", "bulwark.db-shm", "master.key"].includes(name)), []);
  });
});
