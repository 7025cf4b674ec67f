// What a refused sshd_config line may echo in the error. Attacks that must fail: a reviewed configuration (from a
// repository, an image) that includes a file of the host — `Include /etc/shadow`, or a link in the reviewed tree
// pointing at it — to have its first line printed as a "keyword"; and a line whose text is terminal controls or
// is as long as the line bound. Errors quote at most a short, escaped excerpt of a token, and nothing from a file
// outside the reviewed configuration's directory.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { SshConfigError } from "./errors.ts";
import { splitLine } from "./lexer.ts";
import { memorySource } from "./memory-source.ts";
import { loadSshdConfig, parseSshdConfig } from "./parser.ts";

const MAIN = "/etc/ssh/sshd_config";
const SHADOW = "root:$y$j9T$Y2xHbmFyZ2Jj3mV0c2FsdA$QmFkUGFzc3dvcmRIYXNoVGhhdE11c3ROb3RMZWFr:20228:0:99999:7:::";
const dir = mkdtempSync(join(tmpdir(), "bulwark-ssh-errors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function refusal(run: () => unknown): SshConfigError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof SshConfigError, String(error));
    return error;
  }
  assert.fail("the configuration was accepted");
}

/** No run of the secret longer than a few characters appears in `message`. */
function assertNoPartOf(secret: string, message: string): void {
  for (let i = 0; i + 8 <= secret.length; i++) assert.ok(!message.includes(secret.slice(i, i + 8)), `"${secret.slice(i, i + 8)}" echoed in: ${message}`);
}

describe("sshd_config errors echo no file text beyond a short excerpt", () => {
  test("a host file included from outside the reviewed directory is named, its text withheld (was: its first line)", () => {
    const files = { [MAIN]: "PermitRootLogin no\nInclude /etc/shadow\n", "/etc/shadow": `${SHADOW}\ndaemon:*:20228:0:99999:7:::\n` };
    const e = refusal(() => parseSshdConfig(files[MAIN], MAIN, { source: memorySource(files) }));
    assert.equal(e.file, "/etc/shadow");
    assert.equal(e.line, 1);
    assert.match(e.message, /^\/etc\/shadow line 1: no argument after keyword \[text not shown: the file is outside \/etc\/ssh, /);
    assertNoPartOf(SHADOW, e.message);
  });

  test("an unknown keyword or a bad value in such a file is not quoted either", () => {
    for (const line of [`${SHADOW} yes`, `PASSWORD=${SHADOW}`, `Ciphers ${SHADOW}`, `Match User=x Secret ${SHADOW}`, `PermitRootLogin ${SHADOW}`]) {
      const files = { [MAIN]: "Include /srv/app/.env\n", "/srv/app/.env": `${line}\n` };
      const e = refusal(() => parseSshdConfig(files[MAIN], MAIN, { source: memorySource(files) }));
      assert.match(e.message, /text not shown/, line);
      assertNoPartOf(SHADOW, e.message);
    }
  });

  test("a link in the reviewed directory to a file outside it counts as outside", () => {
    const reviewed = join(dir, "review");
    const host = join(dir, "host");
    mkdirSync(join(reviewed, "sshd_config.d"), { recursive: true });
    mkdirSync(host, { recursive: true });
    writeFileSync(join(host, "shadow"), `${SHADOW}\n`);
    symlinkSync(join(host, "shadow"), join(reviewed, "sshd_config.d", "x.conf"));
    writeFileSync(join(reviewed, "sshd_config"), `Include ${join(reviewed, "sshd_config.d", "*.conf")}\n`);
    const e = refusal(() => loadSshdConfig(join(reviewed, "sshd_config")));
    assert.equal(e.file, join(reviewed, "sshd_config.d", "x.conf"));
    assert.match(e.message, /text not shown/);
    assertNoPartOf(SHADOW, e.message);
  });

  test("a file in the reviewed directory is quoted, shortened to 40 characters", () => {
    const files = { [MAIN]: "Include /etc/ssh/sshd_config.d/*.conf\n", "/etc/ssh/sshd_config.d/a.conf": `${"K".repeat(5000)} yes\n` };
    const e = refusal(() => parseSshdConfig(files[MAIN], MAIN, { source: memorySource(files) }));
    assert.equal(e.message, `/etc/ssh/sshd_config.d/a.conf line 1: Bad configuration option: ${"K".repeat(40)}…`);
  });

  test("long values in the reviewed file are shortened, whoever worded the message", () => {
    const long = "x".repeat(10_000);
    for (const line of [`${long}`, `Ciphers ${long}`, `LogLevel ${long}`, `Match ${long} x`, `Match User x ${long}`, `Match LocalPort ${long}`, `Subsystem ${long} /a\nSubsystem ${long} /b`]) {
      const e = refusal(() => parseSshdConfig(`${line}\n`, MAIN));
      assert.ok(e.message.length < 250, `${line.slice(0, 20)}: ${e.message.length} characters`);
      assert.ok(e.message.includes(`${"x".repeat(40)}…`), e.message);
    }
  });

  test("control characters in a quoted token are escaped, not sent", () => {
    const e = refusal(() => parseSshdConfig("Foo\u001b]0;PWNED\u0007\u009b2J yes\n", MAIN));
    assert.equal(e.message, `${MAIN} line 1: Bad configuration option: Foo\\x1b]0;PWNED\\x07\\x9b2J`);
    assert.deepEqual(splitLine("\u001b[2K"), { kind: "error", message: 'no argument after keyword "\\x1b[2K"' });
  });

  test("short tokens of the reviewed file are quoted as sshd quotes them", () => {
    assert.throws(() => parseSshdConfig("Frobnicate yes\n", MAIN), /line 1: Bad configuration option: Frobnicate$/);
    assert.throws(() => parseSshdConfig("Ciphers bogus\n", MAIN), /line 1: Bad SSH2 cipher spec 'bogus'\.$/);
    assert.throws(() => parseSshdConfig("PermitRootLogin\n", MAIN), /line 1: no argument after keyword "PermitRootLogin"$/);
  });
});
