// readMasterKeyFile names what is wrong with the key file instead of letting a raw Node error through: a directory
// where the file belongs is bad input (exit 2). Permission denied is covered end to end, as another user, in
// test/env-errors.test.ts (as root, chmod proves nothing in-process).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { systemRandom } from "../lib/random.ts";
import { createMasterKeyFile, readMasterKeyFile } from "./master-key.ts";
import { testMasterKey } from "../../test/helpers/master-key.ts";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-master-key-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe("readMasterKeyFile", () => {
  it("returns null when there is no key file, and reads a 0600 one", () => {
    assert.equal(readMasterKeyFile(join(root, "absent.key")), null);
    const path = join(root, "good.key");
    writeFileSync(path, `${testMasterKey(7)}\n`, { mode: 0o600 });
    assert.deepEqual(readMasterKeyFile(path), new Uint8Array(Buffer.from(testMasterKey(7), "base64")));
  });

  it("attack: a placeholder key — 32 zero bytes, 32 × 0xff, a word repeated — is refused by name, without showing it (ASVS 11.5.1)", () => {
    for (const [label, bytes] of [["zeros", Buffer.alloc(32)], ["ones", Buffer.alloc(32, 0xff)], ["changeme", Buffer.from("changeme".repeat(4))]] as const) {
      const path = join(root, `placeholder-${label}.key`);
      const text = bytes.toString("base64");
      writeFileSync(path, `${text}\n`, { mode: 0o600 });
      assert.throws(() => readMasterKeyFile(path), (error: Error & { code?: string }) => {
        assert.equal(error.code, "BULWARK_ERR_MASTER_KEY_INVALID");
        assert.match(error.message, /distinct byte values: a placeholder, not a random key; generate one with: openssl rand -base64 32/);
        assert.ok(!error.message.includes(text), "the key is not shown");
        return true;
      }, label);
    }
  });

  it("names a directory where the key file belongs (input, exit 2; was: EISDIR, internal error)", () => {
    const path = join(root, "master.key");
    mkdirSync(path, { mode: 0o700 });
    assert.throws(() => readMasterKeyFile(path), (error: Error & { code?: string; kind?: string }) => {
      assert.equal(error.code, "BULWARK_ERR_MASTER_KEY_INVALID");
      assert.equal(error.kind, "input");
      assert.ok(error.message.includes(`${path} is a directory`), error.message);
      assert.doesNotMatch(error.message, /EISDIR/);
      return true;
    });
  });
});

describe("createMasterKeyFile", () => {
  it("creates a 0600 key file, and a second process initialising the same dir adopts it instead of failing (EEXIST) or overwriting it", () => {
    const path = join(root, "race", "master.key");
    mkdirSync(join(root, "race"), { mode: 0o700 });
    const first = createMasterKeyFile(path, systemRandom);
    assert.equal(first.created, true);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    // The loser of the race: the name exists by the time it links its own key into place.
    const second = createMasterKeyFile(path, systemRandom);
    assert.equal(second.created, false);
    assert.deepEqual(second.key, first.key, "both use the one key on disk");
    assert.deepEqual(readMasterKeyFile(path), first.key, "never overwritten");
    assert.deepEqual(readdirSync(join(root, "race")), ["master.key"], "no temporary file is left behind");
  });
});
