// The breached-password lookups as an operator turns them on (ASVS 6.2.12): BULWARK_BREACH_RANGE_URL (a
// k-anonymity range API, here a local server speaking its format) and BULWARK_BREACH_FILE (a sorted SHA-1
// file). Before, neither could be configured: the running app checked only the bundled common list.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfig } from "../src/app/config.ts";
import { openApp } from "../src/app/index.ts";

const BREACHED = "correct horse battery staple of old";
const CLEAN = "violet kettle drums at dawn quietly";
const sha1 = (text: string): string => createHash("sha1").update(text, "utf8").digest("hex").toUpperCase();

let root: string;
let server: Server;
let base: string;
let down = false;
const asked: string[] = [];
before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-breach-"));
  const hash = sha1(BREACHED);
  server = createServer((req, res) => {
    asked.push(req.url ?? "");
    if (down) return void res.writeHead(503).end();
    // Another suffix of the same prefix, the breached one, and padding (count 0), as the real API answers.
    const body = req.url === `/range/${hash.slice(0, 5)}` ? `${"0".repeat(35)}:2\r\n${hash.slice(5)}:3861493\r\n${"F".repeat(35)}:0` : `${"1".repeat(35)}:1`;
    res.writeHead(200, { "content-type": "text/plain" }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
async function appWith(env: Record<string, string>) {
  return openApp({ env: { BULWARK_DATA_DIR: join(root, `d${++n}`), BULWARK_LOG_LEVEL: "silent", ...env }, mode: "init" });
}

describe("breached-password lookups from the configuration", () => {
  it("refuses a password the range API knows, sending only the 5-digit prefix; accepts a clean one", async () => {
    const app = await appWith({ BULWARK_BREACH_RANGE_URL: base });
    try {
      asked.length = 0;
      const refused = await app.accounts.policy.check(BREACHED);
      assert.equal(refused.ok, false);
      assert.deepEqual(!refused.ok && refused.reasons.map((r) => r.code), ["breached"]);
      assert.deepEqual(asked, [`/range/${sha1(BREACHED).slice(0, 5)}`], "only the prefix left the process");
      assert.deepEqual(await app.accounts.policy.check(CLEAN), { ok: true });
      // Unanswered: refused by default (fail-closed), accepted with BULWARK_BREACH_ON_FAILURE=open.
      down = true;
      const closed = await app.accounts.policy.check(CLEAN);
      assert.deepEqual(!closed.ok && closed.reasons.map((r) => r.code), ["breach-check-unavailable"]);
    } finally {
      down = false;
      await app.close();
    }
    const open = await appWith({ BULWARK_BREACH_RANGE_URL: base, BULWARK_BREACH_ON_FAILURE: "open" });
    try {
      down = true;
      assert.deepEqual(await open.accounts.policy.check(CLEAN), { ok: true });
    } finally {
      down = false;
      await open.close();
    }
  });

  it("refuses a password listed in the offline SHA-1 file", async () => {
    const file = join(root, "pwned-sha1-ordered-by-hash.txt");
    const lines = [sha1(BREACHED), sha1("another breached one here"), "0".repeat(40)].sort().map((h) => `${h}:12`);
    writeFileSync(file, `${lines.join("\r\n")}\r\n`);
    const app = await appWith({ BULWARK_BREACH_FILE: file });
    try {
      const refused = await app.accounts.policy.check(BREACHED);
      assert.deepEqual(!refused.ok && refused.reasons.map((r) => r.code), ["breached"]);
      assert.deepEqual(await app.accounts.policy.check(CLEAN), { ok: true });
    } finally {
      await app.close();
    }
  });

  it("refuses a configuration it cannot use, naming the setting", () => {
    const env = (extra: Record<string, string>) => ({ BULWARK_DATA_DIR: join(root, "cfg"), ...extra });
    for (const [extra, message] of [
      [{ BULWARK_BREACH_RANGE_URL: "not a url" }, /BULWARK_BREACH_RANGE_URL: baseUrl is not a valid URL: "not a url"/],
      [{ BULWARK_BREACH_RANGE_URL: "http://range.example.org" }, /BULWARK_BREACH_RANGE_URL: baseUrl must use https \(plain http is allowed for loopback only\), got http:\/\/range\.example\.org/],
      [{ BULWARK_BREACH_ON_FAILURE: "maybe" }, /BULWARK_BREACH_ON_FAILURE must be "closed" .* or "open"/],
      [{ BULWARK_BREACH_TIMEOUT_MS: "0" }, /BULWARK_BREACH_TIMEOUT_MS must be an integer from 1 to 60000/],
      [{ BULWARK_BREACH_FILE: join(root, "missing.txt") }, /BULWARK_BREACH_FILE .*missing\.txt cannot be read \(ENOENT\)/],
      [{ BULWARK_BREACH_FILE: root }, /BULWARK_BREACH_FILE .* is not a regular file/],
    ] as const) {
      assert.throws(() => loadConfig(env(extra)), (e: Error) => message.test(e.message), JSON.stringify(extra));
    }
    assert.deepEqual(loadConfig(env({})).breach, { rangeURL: null, timeoutMs: 3000, onFailure: "closed", file: null }, "off by default");
  });
});
