// End-to-end: `bulwark check files` and `bulwark check downloads` run as a user would, in temp dirs,
// with human and JSON output and the exit codes of DESIGN.md (0 ok, 1 findings, 2 bad input). A run that walks
// the tree holding a FIFO is spawned (reading it would hang; spawnSync's timeout is the net), most others run here.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { diskTmpdir } from "./helpers/scratch.ts";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { bulwarkHere, type CLIResult } from "./helpers/cli.ts";

const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;
const root = realpathSync(mkdtempSync(join(diskTmpdir(), "bulwark-cli-files-")));
const env = { ...process.env, BULWARK_DATA_DIR: join(root, "data"), BULWARK_MASTER_KEY: "", BULWARK_DATABASE_URL: "" };

after(() => rmSync(root, { recursive: true, force: true }));

function bulwark(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...args], { env, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same command in this process (bulwarkHere), with this file's environment: for a run that cannot hang (no FIFO in what it reads). */
function here(...args: string[]): Promise<CLIResult> {
  return bulwarkHere(args, { env: { BULWARK_DATA_DIR: env["BULWARK_DATA_DIR"], BULWARK_MASTER_KEY: "", BULWARK_DATABASE_URL: "", BULWARK_PUBLIC_URL: process.env["BULWARK_PUBLIC_URL"] } });
}

interface JSONFinding {
  id: string;
  severity: string;
  evidence: { entries?: Array<{ path: string }>; items?: Array<{ name: string }> };
}
function findings(stdout: string): JSONFinding[] {
  return (JSON.parse(stdout) as { findings: JSONFinding[] }).findings;
}

describe("bulwark check files", () => {
  const tree = join(root, "tree");
  const baseline = join(root, "tree.baseline");
  before(async () => {
    const init = await here("init");
    assert.equal(init.code, 0, init.stderr);
    mkdirSync(join(tree, "etc"), { recursive: true });
    writeFileSync(join(tree, "etc/app.conf"), "debug=false\n");
    writeFileSync(join(tree, "etc/perm"), "p\n", { mode: 0o644 });
    writeFileSync(join(tree, "etc/touched"), "t\n");
    writeFileSync(join(tree, "etc/old"), "o\n");
    symlinkSync("app.conf", join(tree, "etc/current"));
  });

  it("records a signed baseline and says how many entries it holds", async () => {
    const r = await here("check", "files", "--baseline", baseline, tree);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /baseline .*: 7 entries under .*, signed with key sk_/);
    const lines = readFileSync(baseline, "utf8").trim().split("\n");
    assert.equal(lines.length, 9, "header, 7 entries, trailer");
  });

  it("compares with no findings and exit 0 when nothing changed (PATHs default to the recorded ones)", async () => {
    const r = await here("check", "files", "--compare", baseline);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /signature valid/);
    assert.match(r.stdout, /files: no findings/);
  });

  it("reports created, modified, metadata-only, removed entries, a FIFO and a symlink loop; exit 1", () => {
    writeFileSync(join(tree, "etc/new"), "n\n");
    writeFileSync(join(tree, "etc/app.conf"), "debug=true\n");
    chmodSync(join(tree, "etc/perm"), 0o666);
    utimesSync(join(tree, "etc/touched"), new Date("2021-01-01"), new Date("2021-01-01"));
    unlinkSync(join(tree, "etc/old"));
    execFileSync("mkfifo", [join(tree, "etc/pipe")]);
    symlinkSync("loop-b", join(tree, "etc/loop-a"));
    symlinkSync("loop-a", join(tree, "etc/loop-b"));
    const human = bulwark("check", "files", "--compare", baseline);
    assert.equal(human.code, 1, human.stderr);
    assert.match(human.stdout, /\[HIGH\] files\.changed: 1 file\(s\) changed in content/);
    assert.match(human.stdout, /app\.conf.*sha256/);

    const r = bulwark("check", "files", "--compare", baseline, "--json");
    assert.equal(r.code, 1);
    const got = Object.fromEntries(findings(r.stdout).map((f) => [`${f.id}/${f.severity}`, (f.evidence.entries ?? []).map((e) => e.path.slice(tree.length))]));
    assert.deepEqual(got["files.changed/high"], ["/etc/app.conf"]);
    assert.deepEqual(got["files.changed/medium"], ["/etc/perm", "/etc/touched"]);
    assert.deepEqual(got["files.removed/medium"], ["/etc/old"]);
    assert.deepEqual(got["files.added/low"], ["/etc/loop-a", "/etc/loop-b", "/etc/new", "/etc/pipe"]);
    assert.deepEqual(got["files.special/info"], ["/etc/pipe"]);
    assert.deepEqual(got["files.symlink-loop/info"], ["/etc/loop-a", "/etc/loop-b"]);
  });

  it("honours --fail-on: only a critical finding fails with --fail-on critical", () => {
    const r = bulwark("check", "files", "--compare", baseline, "--fail-on", "critical");
    assert.equal(r.code, 0, r.stderr);
  });

  it("reports an edited baseline as files.baseline-tampered (critical) and still compares", () => {
    const tampered = join(root, "tampered.baseline");
    const text = readFileSync(baseline, "utf8");
    // The intruder rewrites the recorded hash of app.conf to the new content's, to hide the change.
    const newHash = createHash("sha256").update("debug=true\n").digest("hex");
    writeFileSync(tampered, text.replace(/("path":"[^"]*app\.conf".*?"sha256":")[0-9a-f]{64}/, `$1${newHash}`));
    assert.notEqual(readFileSync(tampered, "utf8"), text);
    const r = bulwark("check", "files", "--compare", tampered, "--json");
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as { trusted: boolean; findings: JSONFinding[] };
    assert.equal(out.trusted, false);
    assert.equal(out.findings[0]?.id, "files.baseline-tampered");
    assert.equal(out.findings[0]?.severity, "critical");
    assert.ok(out.findings.some((f) => f.id === "files.removed"), "the compare still ran");
  });

  it("--exclude keeps a path out, and the compare reuses the recorded exclusion", () => {
    const b = join(root, "excl.baseline");
    const r = bulwark("check", "files", "--baseline", b, "--exclude", join(tree, "etc/app.conf"), "--one-file-system", tree);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!readFileSync(b, "utf8").includes(`"path":"${join(tree, "etc/app.conf")}"`));
    writeFileSync(join(tree, "etc/app.conf"), "debug=maybe\n");
    const c = bulwark("check", "files", "--compare", b);
    assert.equal(c.code, 0, c.stdout);
    assert.match(c.stdout, /0 added, 0 removed, 0 changed/);
  });

  it("exits 2 with a clear message on bad usage and bad input", async () => {
    const both = await here("check", "files", "--baseline", join(root, "x"), "--compare", baseline, tree);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exactly one of --baseline OUT .* or --compare BASELINE/);
    assert.equal((await here("check", "files", tree)).code, 2);
    const noPath = await here("check", "files", "--baseline", join(root, "x"));
    assert.equal(noPath.code, 2);
    assert.match(noPath.stderr, /needs at least one PATH/);
    const missing = await here("check", "files", "--baseline", join(root, "x"), join(root, "nope"));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /does not exist/);
    writeFileSync(join(root, "not-a-baseline"), "hello\n");
    const notBaseline = await here("check", "files", "--compare", join(root, "not-a-baseline"));
    assert.equal(notBaseline.code, 2);
    assert.match(notBaseline.stderr, /not a Bulwark files baseline/);
    assert.equal((await here("check", "files", "--compare", baseline, "--concurrency", "0")).code, 2);
  });

  it("--compare given a directory exits 2 naming it (was: internal error EISDIR, exit 3)", async () => {
    const r = await here("check", "files", "--compare", tree);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot read the baseline ${tree.replaceAll("/", "\\/")}: it is a directory`));
    assert.doesNotMatch(r.stderr, /internal error/);
  });

  it("--baseline into a directory that does not exist exits 2 naming it (was: internal error, exit 3)", async () => {
    const out = join(root, "no-such-dir", "x.baseline");
    const r = await here("check", "files", "--baseline", out, tree);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`--baseline ${out.replaceAll("/", "\\/")}: the directory ${join(root, "no-such-dir").replaceAll("/", "\\/")} does not exist`));
    assert.doesNotMatch(r.stderr, /internal error/);
  });

  it("--baseline refuses to overwrite an existing baseline (exit 2, file untouched) unless --force", async () => {
    const out = join(root, "kept.baseline");
    assert.equal(bulwark("check", "files", "--baseline", out, tree).code, 0);
    const signed = readFileSync(out, "utf8");
    writeFileSync(join(tree, "etc/later"), "l\n");
    // Was: the second run silently replaced the signed baseline with one that already includes the change.
    const again = await here("check", "files", "--baseline", out, tree);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /already exists; refusing to overwrite it \(pass --force to replace it\)/);
    assert.equal(readFileSync(out, "utf8"), signed, "the signed baseline is untouched");
    assert.deepEqual(readdirSync(root).filter((f) => f.startsWith(".kept.baseline")), [], "no temporary file is left behind");
    const forced = bulwark("check", "files", "--baseline", out, "--force", tree);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(readFileSync(out, "utf8"), signed, "--force replaces it");
    assert.match(readFileSync(out, "utf8"), /etc\/later/);
    assert.equal((await here("check", "files", "--compare", out, "--force")).code, 2, "--force goes with --baseline only");
  });
});

describe("bulwark check files: byte limits", () => {
  it("attack: a file past --max-file-bytes is not read and is reported high as not hashed, beside the rest of the scan; a bad limit is exit 2 naming the option (ASVS 2.4.1)", async () => {
    await here("init"); // the store the baseline's signing key lives in (already there when the suite above ran first)
    const tree = join(root, "limits");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "big.bin"), Buffer.alloc(4096, 1));
    writeFileSync(join(tree, "small.conf"), "ok\n");
    const r = bulwark("check", "files", "--baseline", join(root, "limits.baseline"), "--max-file-bytes", "1K", "--json", tree);
    const listed = findings(r.stdout);
    const big = listed.find((f) => f.id === "files.too-large-to-hash");
    assert.ok(big, r.stdout);
    assert.equal(big.severity, "high");
    assert.deepEqual(big.evidence.entries?.map((e) => e.path.endsWith("big.bin")), [true]);
    assert.equal(r.code, 1, r.stderr);
    const bad = await here("check", "files", "--baseline", join(root, "limits2.baseline"), "--max-file-bytes", "lots", tree);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--max-file-bytes/);
  });
});

describe("bulwark check downloads", () => {
  const dir = join(root, "release");
  const sha = (s: string): string => createHash("sha256").update(s).digest("hex");
  before(() => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "app-1.0.tar.gz"), "app\n");
    writeFileSync(join(dir, "app-1.0.zip"), "zip\n");
    writeFileSync(join(root, "outside"), "secret\n");
  });

  it("verifies a good SHA256SUMS and exits 0", () => {
    writeFileSync(join(dir, "SHA256SUMS"), `${sha("app\n")}  app-1.0.tar.gz\nSHA256 (app-1.0.zip) = ${sha("zip\n")}\n`);
    const r = bulwark("check", "downloads", join(dir, "SHA256SUMS"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 of 2 listed file\(s\) verified/);
  });

  it("reports a mismatch (critical) and a missing file (high); exit 1; JSON lists them", async () => {
    const sums = join(root, "SUMS-bad");
    writeFileSync(sums, `${sha("other\n")} *app-1.0.tar.gz\n${sha("x")}  app-1.1.tar.gz\n`);
    const r = await here("check", "downloads", sums, "--dir", dir, "--json");
    assert.equal(r.code, 1);
    const f = findings(r.stdout);
    assert.deepEqual(f.map((x) => `${x.id}/${x.severity}`), ["downloads.mismatch/critical", "downloads.missing/high"]);
    assert.equal(f[0]?.evidence.items?.[0]?.name, "app-1.0.tar.gz");
  });

  it("refuses traversal names as a finding without reading them", async () => {
    const sums = join(root, "SUMS-evil");
    writeFileSync(sums, `${sha("secret\n")}  ../outside\n${sha("secret\n")}  ${join(root, "outside")}\n`);
    const r = await here("check", "downloads", sums, "--dir", dir, "--json");
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as { ok: number; findings: JSONFinding[] };
    assert.equal(out.ok, 0);
    assert.deepEqual(out.findings.map((x) => x.id), ["downloads.path-traversal"]);
  });

  it("--ignore-missing verifies the one image downloaded from a SHA256SUMS of two, exit 0, and says how many were absent", async () => {
    // False alarm: "sha256sum -c --ignore-missing SHA256SUMS" passes here; we exited 1 with downloads.missing.
    const iso = join(root, "iso");
    mkdirSync(iso, { recursive: true });
    writeFileSync(join(iso, "desktop.iso"), "iso-desktop\n");
    writeFileSync(join(iso, "SHA256SUMS"), `${sha("iso-desktop\n")} *desktop.iso\n${sha("iso-server\n")} *server.iso\n`);
    assert.equal((await here("check", "downloads", join(iso, "SHA256SUMS"))).code, 1);
    const r = await here("check", "downloads", join(iso, "SHA256SUMS"), "--ignore-missing");
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /1 of 2 listed file\(s\) verified in .*; 1 listed but absent \(--ignore-missing\)/);
    const json = JSON.parse((await here("check", "downloads", join(iso, "SHA256SUMS"), "--ignore-missing", "--json")).stdout) as { ok: number; missingIgnored: number; findings: JSONFinding[] };
    assert.deepEqual([json.ok, json.missingIgnored, json.findings], [1, 1, []]);
    writeFileSync(join(iso, "desktop.iso"), "tampered\n");
    assert.equal((await here("check", "downloads", join(iso, "SHA256SUMS"), "--ignore-missing")).code, 1, "a present file is still verified");
  });

  it("exits 2 when the file holds no checksum line or does not exist", async () => {
    const sums = join(root, "SUMS-empty");
    writeFileSync(sums, "# nothing\n");
    const r = await here("check", "downloads", sums);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no SHA-256 checksum lines/);
    assert.equal((await here("check", "downloads", join(root, "nope"))).code, 2);
  });
});
