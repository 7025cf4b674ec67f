// End-to-end attacks on `bulwark check` output that must fail: text the checks read (an sshd Match value, an
// unknown keyword, a file name in SHA256SUMS or in a scanned tree) carrying terminal controls — C0 escapes and
// the C1 CSI/OSC that JSON.stringify leaves raw — meant to erase or forge findings on the operator's terminal;
// an Include of a host file to have its first line printed; a setuid file hidden from --compare by a name
// like our temporary files. Also: a bad --fail-on is refused before the check does any work.
// Runs the CLI in this process (a spawned process per case costs the suite seconds for the same code path).
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { diskTmpdir } from "./helpers/scratch.ts";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { finishCheck } from "../src/cli/check-common.ts";
import type { CliContext } from "../src/cli/context.ts";
import { reportError } from "../src/cli/run.ts";
import { InputError } from "../src/lib/errors.ts";
import { bulwarkInProcess, initSite, type CLISite } from "./helpers/cli.ts";

/** C0 but newline, DEL and C1: what must never reach the terminal from a check's input. */
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

let root: string;
let site: CLISite;
before(async () => {
  root = realpathSync(mkdtempSync(join(diskTmpdir(), "bulwark-cli-check-safety-")));
  site = await initSite(join(root, "site"));
});
after(() => rmSync(root, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return bulwarkInProcess(args, { BULWARK_DATA_DIR: site.env["BULWARK_DATA_DIR"] });
}

function file(name: string, content: string | Buffer): string {
  const path = join(root, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, content);
  return path;
}

function assertInert(text: string, what: string): void {
  const m = CONTROLS.exec(text);
  assert.equal(m, null, `${what}: U+${m?.[0].charCodeAt(0).toString(16).padStart(4, "0")} sent raw in ${JSON.stringify(text)}`);
}

describe("check output never sends control characters from what was checked", () => {
  it("ssh: a Match value in a finding title is escaped (was: it erased the lines above)", async () => {
    const config = file("ssh/esc.conf", "PasswordAuthentication no\nMatch User x\u001b[2K\u001b[1A\u001b[2Kbob\n  PasswordAuthentication yes\n");
    const r = await run(["check", "ssh", "--config", config]);
    assert.equal(r.code, 1, r.stderr);
    assertInert(r.stdout, "stdout");
    assert.match(r.stdout, /\[HIGH\] ssh\.password-authentication: password authentication enabled for User x\\x1b\[2K\\x1b\[1A\\x1b\[2Kbob\n/);
  });

  it("ssh: an unknown keyword in the error is escaped (was: an OSC retitled the terminal)", async () => {
    // sshd reads bytes: a raw 0x9b byte is the 8-bit CSI.
    const config = file("ssh/osc.conf", Buffer.from("Foo\u001b]0;PWNED\u0007\u009b2J yes\n", "latin1"));
    const r = await run(["check", "ssh", "--config", config]);
    assert.equal(r.code, 2);
    assertInert(r.stderr, "stderr");
    assert.equal(r.stderr, `bulwark: ${config} line 1: Bad configuration option: Foo\\x1b]0;PWNED\\x07\\x9b2J\n`);
  });

  it("downloads: C1 controls in a listed name are escaped in human and JSON output (was: JSON.stringify left them raw)", async () => {
    const name = "x\u009b2J\u009d0;PWNED\u0007.iso";
    const sums = file("dl/SHA256SUMS", Buffer.from(`${"0".repeat(64)}  ${name}\n`, "utf8"));
    const human = await run(["check", "downloads", sums]);
    assert.equal(human.code, 1, human.stderr);
    assertInert(human.stdout, "human");
    assert.ok(human.stdout.includes('"x\\u009b2J\\u009d0;PWNED\\u0007.iso" (line 1)'), human.stdout);
    const json = await run(["check", "downloads", sums, "--json"]);
    assertInert(json.stdout, "--json");
    assert.ok(json.stdout.includes("x\\u009b2J\\u009d0;PWNED\\u0007.iso"), json.stdout);
    const parsed = JSON.parse(json.stdout) as { findings: Array<{ evidence: { items: Array<{ name: string }> } }> };
    assert.equal(parsed.findings[0]?.evidence.items[0]?.name, name, "the JSON still reads as the exact name");
  });

  it("files: a planted file named with C1 controls is escaped in human and JSON output", async () => {
    const tree = join(root, "c1tree");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "ok"), "a\n");
    const baseline = join(root, "c1tree.baseline");
    assert.equal((await run(["check", "files", "--baseline", baseline, tree])).code, 0);
    writeFileSync(join(tree, "y\u009b2J\u009d0;PWNED\u0007"), "evil");
    const human = await run(["check", "files", "--compare", baseline, "--fail-on", "none"]);
    assert.equal(human.code, 0, human.stderr);
    assertInert(human.stdout, "human");
    assert.match(human.stdout, /Path: ".*\/y\\u009b2J\\u009d0;PWNED\\u0007"/);
    const json = await run(["check", "files", "--compare", baseline, "--fail-on", "none", "--json"]);
    assertInert(json.stdout, "--json");
  });

  it("every title, detail, remediation and summary line finishCheck prints, and every reported error", async () => {
    const out = new PassThrough();
    const err = new PassThrough();
    let [stdout, stderr] = ["", ""];
    out.on("data", (d: Buffer) => (stdout += d.toString()));
    err.on("data", (d: Buffer) => (stderr += d.toString()));
    const ctx = { stdout: out, stderr: err, stdin: new PassThrough(), stderrIsTTY: false } as unknown as CliContext;
    const evil = "a\u001b[1A\u001b[2K\u009b2J\u009d0;T\u0007\r\nb";
    const code = await finishCheck(ctx, {}, {
      check: "x",
      summary: [`summary ${evil}`],
      findings: [{ id: "x.y", severity: "critical", title: `title ${evil}`, detail: `detail ${evil}`, evidence: { v: evil }, remediation: `fix ${evil}` }],
    });
    assert.equal(code, 1);
    assertInert(stdout, "human");
    const shown = "a\\x1b[1A\\x1b[2K\\x9b2J\\x9d0;T\\x07\\x0d\\x0ab";
    assert.equal(stdout, `summary ${shown}\n[CRITICAL] x.y: title ${shown}\n    detail ${shown}\n    fix: fix ${shown}\n`);
    assert.equal(reportError(ctx, new InputError("BULWARK_ERR_USAGE", `bad ${evil}`)), 2);
    assert.equal(reportError(ctx, new Error(`boom ${evil}`)), 3);
    assertInert(stderr, "stderr");
    assert.equal(stderr, `bulwark: bad ${shown}\nbulwark: internal error: boom ${shown}\n`);
  });
});

describe("a bad --fail-on is refused before the check does anything", () => {
  it("check files --baseline writes no baseline (was: written, then exit 2, and the retry refused)", async () => {
    const tree = join(root, "failon");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "a"), "hi\n");
    const out = join(root, "failon.baseline");
    const r = await run(["check", "files", "--baseline", out, "--fail-on", "hgih", tree]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /option '--fail-on <severity>' argument 'hgih' is invalid\. It must be one of critical, high, medium, low, info, none\./);
    assert.equal(existsSync(out), false, "no baseline written");
    assert.equal(r.stdout, "");
    const retry = await run(["check", "files", "--baseline", out, "--fail-on", "HIGH", tree]);
    assert.equal(retry.code, 0, retry.stderr);
  });

  it("is named before the input is read: check ssh with a missing config complains about --fail-on", async () => {
    const r = await run(["check", "ssh", "--config", join(root, "missing.conf"), "--fail-on", "severe"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--fail-on/);
    assert.doesNotMatch(r.stderr, /missing\.conf/);
  });

  it("an empty --fail-on gets the message of every empty option", async () => {
    const r = await run(["check", "downloads", join(root, "nothing"), "--fail-on", ""]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "bulwark: --fail-on is empty; give a value or leave the option out\n");
  });
});

describe("check ssh does not print the text of a host file a reviewed config includes", () => {
  it("Include of a file outside the config's directory: file and line named, text withheld (was: its first line)", async () => {
    const secret = "root:$y$j9T$Y2xHbmFyZ2Jj3mV0c2FsdA$QmFkUGFzc3dvcmRIYXNoVGhhdE11c3ROb3RMZWFr:20228:0:99999:7:::";
    const shadow = file("host/shadow", `${secret}\n`);
    const config = file("review/sshd_config", `PermitRootLogin no\nInclude ${shadow}\n`);
    const r = await run(["check", "ssh", "--config", config]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^bulwark: ${shadow.replaceAll("/", "\\/")} line 1: no argument after keyword \\[text not shown`));
    assert.ok(!r.stderr.includes("$y$j9T"), r.stderr);
    assert.ok(!r.stderr.includes("root:"), r.stderr);
  });
});

describe("check files hides nothing beside a baseline kept in the scanned tree", () => {
  it("a setuid file named .NAME.anything.tmp next to the baseline is reported (was: left out of --compare)", async () => {
    const tree = join(root, "hide");
    const store = join(tree, "var/lib/bulwark");
    mkdirSync(store, { recursive: true });
    mkdirSync(join(tree, "usr/bin"), { recursive: true });
    writeFileSync(join(tree, "usr/bin/tool"), "ok\n", { mode: 0o755 });
    const baseline = join(store, "root.baseline");
    const made = await run(["check", "files", "--baseline", baseline, tree]);
    assert.equal(made.code, 0, made.stderr);
    const hidden = join(store, ".root.baseline.backdoor.tmp");
    writeFileSync(hidden, "#!/bin/sh\n");
    chmodSync(hidden, 0o4755);
    const r = await run(["check", "files", "--compare", baseline, "--json"]);
    assert.equal(r.code, 1, r.stderr);
    const findings = (JSON.parse(r.stdout) as { findings: Array<{ id: string; severity: string; evidence: { entries: Array<{ path: string }> } }> }).findings;
    const added = findings.filter((f) => f.id === "files.added");
    assert.deepEqual(added.flatMap((f) => f.evidence.entries.map((e) => e.path)), [hidden]);
    assert.equal(added[0]?.severity, "high");
    assert.equal(findings.length, 1, "the baseline itself and its temporary files are still left out");
  });
});
