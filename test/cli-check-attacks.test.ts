// Attacks on `bulwark check …`: an intruder controls the logs, configurations, baselines and checksum
// files the checks read, and wants a check to miss them, blame someone else, hang, or attack the operator's
// terminal. Each test is an attack that must fail on correct code. Temp dirs only; no network.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { AuthLogResult } from "../src/checks/authlog/types.ts";
import { authLogFindings } from "../src/checks/authlog/findings.ts";
import { bulwark as spawnCLI, type CLIResult } from "./helpers/cli.ts";
import { analyzeLines } from "../src/checks/authlog/test-helpers.ts";

const root = realpathSync(mkdtempSync(join(tmpdir(), "bulwark-redteam-checks-")));
after(() => rmSync(root, { recursive: true, force: true }));
const DATA = join(root, "data");

/** Runs the CLI in a child (stdin `input`, then closed); killed past `limitMs`, a safety net (see helpers/cli.ts). */
const bulwark = (args: string[], limitMs = 20_000, input?: Buffer): Promise<CLIResult> =>
  spawnCLI(args, { env: { BULWARK_DATA_DIR: DATA }, input: input ?? "", limitMs });

/** Raw C0 (but newline), DEL or C1 code points a terminal would act on, in output decoded as UTF-8. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

const REF = Date.UTC(2026, 10, 22);
const analyze = (lines: string[]): AuthLogResult => analyzeLines(lines, { referenceMs: REF });

// ---------------------------------------------------------------------------------------------------------
// authlog
// ---------------------------------------------------------------------------------------------------------

// A Failed line that reads two ways: the client wrote " from VICTIM port 22 ssh2:" into its user name (or, as
// fail2ban's samples have it, into the auth-info). sshd's own "Invalid user … from REAL" line of the same process
// settles it: the real client is counted, the victim is not blamed. ASVS 16.4.1 (log injection), 16.3.3.
test("attack: an invalid user name ending in 'from VICTIM port 22 ssh2:' does not get the victim blamed nor hide the real client", () => {
  const lines = Array.from({ length: 6 }, (_, i) => [
    `Nov 21 04:00:0${i} web sshd[${100 + i}]: Invalid user x from 192.0.2.200 port 22 ssh2: from 203.0.113.9 port 4000`,
    `Nov 21 04:00:0${i} web sshd[${100 + i}]: Failed password for invalid user x from 192.0.2.200 port 22 ssh2: from 203.0.113.9 port 4000 ssh2`,
  ]).flat();
  const r = analyze(lines);
  assert.deepEqual(r.offenders.map((o) => o.address), ["203.0.113.9"]);
  // The auth-info reading stays the default when nothing else in the log says otherwise (fail2ban's samples).
  const alone = analyze(Array.from({ length: 6 }, (_, i) => `Nov 21 04:01:0${i} web sshd[${300 + i}]: Failed password for invalid user test from 198.51.100.7 port 58946 ssh2: from 10.10.1.2 port 55555 ssh2`));
  assert.deepEqual(alone.offenders.map((o) => o.address), ["198.51.100.7"]);
});

// sshd prints a link-local client with its zone id ("fe80::1%eth0"): the line must be counted, not dropped.
test("attack: a root password login from a link-local IPv6 address with a zone id (fe80::1%eth0) after a brute force is reported", () => {
  const lines = Array.from({ length: 6 }, (_, i) => `Nov 21 04:00:0${i} web sshd[${200 + i}]: Failed password for root from fe80::1%eth0 port 5000${i} ssh2`);
  lines.push("Nov 21 04:01:00 web sshd[299]: Accepted password for root from fe80::1%eth0 port 50099 ssh2");
  const r = analyze(lines);
  assert.equal(r.stats.successes, 1);
  assert.equal(r.stats.failures, 6);
  const ids = authLogFindings(r).map((f) => f.id);
  assert.ok(ids.includes("authlog.root-login"), ids.join(","));
  assert.ok(ids.includes("authlog.success-after-failures"), ids.join(","));
});

// ASVS 16.4.1, 1.2.3: everything `logger -t 'sshd[N]'` can write — ESC/OSC, UTF-8 C1, invalid UTF-8, NUL, a CR in
// mid-line, a 1 MB line of 'from' clauses — neither breaks --json nor reaches the terminal raw, and the brute force
// hidden among it is still found.
test("attack: hostile bytes in an auth log keep --json valid and human output inert, and the brute force is still found", async () => {
  const esc = "\u001b]0;PWNED\u0007\u001b[2J\u00c2\u009b1A\u00ff\u00fe\u0000\r";
  const lines: string[] = [];
  for (let i = 0; i < 6; i++) lines.push(`Nov 21 04:00:0${i} web sshd[${300 + i}]: Failed password for invalid user ${esc}${i} from 203.0.113.9 port 4000 ssh2`);
  lines.push(`Nov 21 04:00:30 web sshd[399]: Failed password for invalid user ${" from 192.0.2.1 port 1 ssh2".repeat(40_000)} from 203.0.113.9 port 1 ssh2`);
  lines.push(`Nov 21 04:01:00 web sshd[400]: Accepted password${esc} for root from 203.0.113.9 port 22 ssh2`);
  const file = join(root, "hostile-auth.log");
  writeFileSync(file, Buffer.from(`${lines.join("\n")}\n`, "latin1"));

  const json = await bulwark(["check", "authlog", file, "--year", "2026", "--json"]);
  assert.equal(json.signal, null);
  assert.equal(json.code, 1, json.stderr);
  assert.doesNotMatch(json.stdout, RAW_CONTROL);
  const doc = JSON.parse(json.stdout) as { findings: Array<{ id: string }>; offenders: string[]; stats: { overlong: number } };
  assert.deepEqual(doc.offenders, ["203.0.113.9"]);
  assert.equal(doc.stats.overlong, 1);
  assert.ok(doc.findings.some((f) => f.id === "authlog.success-after-failures"));

  const human = await bulwark(["check", "authlog", file, "--year", "2026"]);
  assert.equal(human.code, 1, human.stderr);
  assert.doesNotMatch(human.stdout, RAW_CONTROL);
  assert.match(human.stdout, /^\[CRITICAL\] authlog\.success-after-failures:/m);
});

// ---------------------------------------------------------------------------------------------------------
// ssh
// ---------------------------------------------------------------------------------------------------------

describe("ssh", () => {
  const etc = join(root, "etc-ssh");
  before(() => mkdirSync(join(etc, "sshd_config.d"), { recursive: true }));

  // ASVS 16.5.3: a FIFO planted where an Include glob looks would block open() forever; sshd-like refusal, exit 2.
  test("attack: a FIFO matched by an Include glob is refused (exit 2 naming it), not waited on", async () => {
    writeFileSync(join(etc, "sshd_config.d", "10-ok.conf"), "PasswordAuthentication no\n");
    execFileSync("mkfifo", [join(etc, "sshd_config.d", "20-trap.conf")]);
    const cfg = join(etc, "sshd_config");
    writeFileSync(cfg, `Include ${join(etc, "sshd_config.d")}/*.conf\nPermitRootLogin no\n`);
    const r = await bulwark(["check", "ssh", "--config", cfg, "--include-base", etc], 15_000);
    assert.equal(r.signal, null, "the check must end on its own");
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /20-trap\.conf/);
    rmSync(join(etc, "sshd_config.d", "20-trap.conf"));
  });

  // ASVS 16.4.1, 1.2.3: a Match value quoted into a finding title carries terminal escapes.
  test("attack: terminal escapes in a Match User value reach neither the terminal nor break --json", async () => {
    const cfg = join(etc, "escape_config");
    writeFileSync(cfg, 'PasswordAuthentication no\nMatch User "ro\u001b]0;x\u0007\u001b[1Aot\u00c2\u009b2J"\n  PermitRootLogin yes\n', "latin1");
    const human = await bulwark(["check", "ssh", "--config", cfg, "--include-base", etc]);
    assert.equal(human.code, 1, human.stderr);
    assert.doesNotMatch(human.stdout, RAW_CONTROL);
    assert.match(human.stdout, /^\[CRITICAL\] ssh\.root-login: .*\\x1b/m);
    const json = await bulwark(["check", "ssh", "--config", cfg, "--include-base", etc, "--json"]);
    assert.equal(json.code, 1, json.stderr);
    assert.doesNotMatch(json.stdout, RAW_CONTROL);
    const doc = JSON.parse(json.stdout) as { findings: Array<{ id: string; severity: string }> };
    assert.ok(doc.findings.some((f) => f.id === "ssh.root-login" && f.severity === "critical"));
  });
});

// ---------------------------------------------------------------------------------------------------------
// files and downloads: an intruder replaces the evidence file itself
// ---------------------------------------------------------------------------------------------------------

describe("evidence files replaced by special files", { concurrency: true }, () => {
  const tree = join(root, "tree");
  const LIMIT = 8_000;
  before(async () => {
    const init = await bulwark(["init"]);
    assert.equal(init.code, 0, init.stderr);
    mkdirSync(join(tree, "bin"), { recursive: true });
    writeFileSync(join(tree, "bin", "tool"), "#!/bin/sh\necho ok\n", { mode: 0o755 });
    execFileSync("mkfifo", [join(root, "baseline.fifo")]);
    symlinkSync("/dev/zero", join(root, "baseline.zero"));
    execFileSync("mkfifo", [join(tree, "SHA256SUMS")]);
  });

  // A baseline swapped for a FIFO, or a link to /dev/zero, is refused (exit 2 naming it): it must not hang the compare.
  test("attack: a baseline replaced by a FIFO makes --compare exit 2 naming it, not hang", async () => {
    const r = await bulwark(["check", "files", "--compare", join(root, "baseline.fifo"), tree], LIMIT);
    assert.equal(r.signal, null, "the compare must end on its own");
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /baseline\.fifo/);
  });

  test("attack: a baseline replaced by a link to /dev/zero makes --compare exit 2, not read forever", async () => {
    const r = await bulwark(["check", "files", "--compare", join(root, "baseline.zero"), tree], LIMIT);
    assert.equal(r.signal, null, "the compare must end on its own");
    assert.equal(r.code, 2, r.stderr);
  });

  // Likewise a checksum file swapped for a FIFO.
  test("attack: a SHA256SUMS replaced by a FIFO makes the downloads check exit 2, not hang", async () => {
    const r = await bulwark(["check", "downloads", join(tree, "SHA256SUMS")], LIMIT);
    assert.equal(r.signal, null, "the check must end on its own");
    assert.equal(r.code, 2, r.stderr);
  });
});
