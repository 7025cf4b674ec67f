// Red team round: the files we write. The attacker is a local account on the server (not root) who can write to
// shared directories — /tmp, a world-writable spool, the directory an operator runs commands from — and wants a
// root-run `bulwark` command to write where they choose, to read what it writes, or to make a write fail in a way that
// loses data. Every file the CLI writes outside its private data dir was tried: `check logins --ids-out`, `audit export
// --output` (and its `.NAME.PID.partial` temporary), `audit checkpoint --export`, `check files --baseline` (with and
// without `--force`, and its `.NAME.PID.new.tmp` temporary). Planted at each target, or at the predictable temporary
// names: a dangling symlink and a symlink to a file of the victim's (in a sticky world-writable dir, owned by another
// account when the test runs as root: the classic /tmp attack), a hard link to a file of the victim's, a FIFO; the
// commands run under umask 000; and the disk filling up mid-write (simulated with RLIMIT_FSIZE through prlimit(1):
// the kernel then does what a full disk does, a short write followed by an error).
// Pinned elsewhere and not repeated: the data dir, master.key (.new, .pending), bulwark.db and its -wal/-shm/-journal
// files (startup-red-team, datadir-ownership, datadir-probe, cli-secrets-red-team: umask 000 on init and
// rotate-master), a refused existing target (check-logins, cli-check-files, cli-input-errors), an export that fails
// reading the store (audit-cli), links and FIFOs inside the scanned tree (files-baseline-attacks).
// Held: no link, hard link or FIFO planted at a target or at a temporary name is written through, opened or waited on;
// --force replaces the name, never the victim's file; every file is created 0600 under umask 000.
// Three findings, all about a write that fails half-way (a full disk, a quota, a file size limit) (fixed since: every
// write goes through src/lib/write-all.ts writeAll, which continues a short write and throws the error that follows):
// - `check files --baseline` ignored a short write: it published a truncated baseline, exited 0 and printed "N entries …
//   signed"; the next compare called it CRITICAL "tampered", and with --force the good baseline it replaced was gone
//   (fixed since: writeBaselineFile writes every byte or fails, exit 3 naming the file; the temporary file is removed);
// - `audit export --output` hung on its write error and Node ended it with exit 13 ("unsettled top-level await"), no
//   message of Bulwark's, and the `.partial` temporary left beside the target (the docs promise "a failed export
//   leaves no file") (fixed since: writeComplete writes through a FileHandle with writeAll, syncs before the link into
//   place, and removes the temporary file on any failure: exit 3 naming --output and the error);
// - `audit checkpoint --export` wrote in place: a failure left a file of whole lines, fewer than the store holds,
//   that `audit verify --checkpoints` accepted as intact, and a retry was refused because it "already exists" (fixed
//   since: it writes through the same writeComplete, complete or nothing, exit 3 naming --export).
// Seen and not counted (not reachable by this attacker, or not testable here): master-key.ts writeKeyAndClose ignores
// writeSync's count too, but a 45-byte write to a new file is never short on a real file system; `--ids-out` is not
// fsynced before the command ends (a power loss, not a local user, could leave it empty; `audit export --output` and
// `audit checkpoint --export` are synced before they are linked into place since the fix above).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync, existsSync, lchownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { bulwark, bulwarkInProcess, initSite, MAIN, TEST_PUBLIC_URL, type CLISite } from "./helpers/cli.ts";

const root = realpathSync(mkdtempSync(join(tmpdir(), "bulwark-files-we-write-")));
after(() => rmSync(root, { recursive: true, force: true }));

const IS_ROOT = process.getuid?.() === 0;
/** The attacker's account when the test runs as root (nobody); otherwise the plants are simply ours. */
const ATTACKER_UID = 65534;

/** prlimit(1) (util-linux), or null: the tests that fill the disk need it to set RLIMIT_FSIZE on the command alone. */
const PRLIMIT = ((): string | null => {
  try {
    return execFileSync("sh", ["-c", "command -v prlimit"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
})();

/**
 * Runs `bulwark ARGS` with writes limited to files of at most `fsize` bytes: past it write() is short, then fails
 * (EFBIG), as it is short then fails (ENOSPC) when the disk fills. SQLite's -shm needs 32 KiB, so `fsize` is larger.
 */
function bulwarkOnFullDisk(args: string[], env: NodeJS.ProcessEnv, fsize: number): { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, BULWARK_PUBLIC_URL: TEST_PUBLIC_URL };
  for (const key of ["BULWARK_DATA_DIR", "BULWARK_DATABASE_URL", "BULWARK_MASTER_KEY"]) delete childEnv[key];
  const r = spawnSync(PRLIMIT as string, [`--fsize=${fsize}`, process.execPath, "--disable-warning=ExperimentalWarning", MAIN, ...args], {
    env: { ...childEnv, ...env }, encoding: "utf8", timeout: 30_000, killSignal: "SIGKILL",
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

let seq = 0;
function freshDir(name: string, mode = 0o755): string {
  const dir = join(root, `${name}-${++seq}`);
  mkdirSync(dir);
  chmodSync(dir, mode);
  return dir;
}

/** A tree of `n` small files to record (each entry is ~280 bytes of baseline). */
function treeOf(n: number): string {
  const tree = freshDir("tree");
  for (let i = 0; i < n; i++) writeFileSync(join(tree, `f${i}`), `${i}\n`);
  return tree;
}

/** The victim: a file of root's (or ours) that a planted link points at, and a name in the same dir that must stay absent. */
function victim(): { existing: string; absent: string; content: string } {
  const dir = freshDir("victim", 0o700);
  const existing = join(dir, "authorized_keys");
  const content = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeep the operator's own key\n";
  writeFileSync(existing, content, { mode: 0o600 });
  return { existing, absent: join(dir, "created-through-a-link"), content };
}

/** A symbolic link planted by the attacker: theirs when the test is root (lchown), in a sticky world-writable dir. */
function plantLink(target: string, at: string): void {
  symlinkSync(target, at);
  if (IS_ROOT) lchownSync(at, ATTACKER_UID, ATTACKER_UID);
}

/** Whether `check files --compare BASELINE` trusts the baseline (its signed trailer verifies). */
async function trusted(site: CLISite, baseline: string, tree: string): Promise<boolean> {
  const r = await bulwarkInProcess(["check", "files", "--compare", baseline, tree, "--json", "--fail-on", "none"], site.env);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { trusted: boolean }).trusted;
}

let site: CLISite;
before(async () => {
  site = await initSite(join(root, "site"), { here: true });
});

describe("links, hard links and FIFOs planted where the operator writes", () => {
  it("attack: in a sticky world-writable dir the attacker plants, at every name a root-run command writes (--ids-out, --output, --export, --baseline), a dangling symlink into the victim's dir and a symlink to the victim's authorized_keys — nothing is created or written through either, each is refused by name (exit 2), and --baseline --force replaces the link itself (ASVS 16.4.2, 16.5.3)", async () => {
    const spool = freshDir("spool", 0o1777);
    const v = victim();
    const tree = treeOf(3);
    const commands: Array<[string, (out: string) => string[]]> = [
      ["ids", (out) => ["check", "logins", "--ids-out", out, "--fail-on", "none"]],
      ["export", (out) => ["audit", "export", "--output", out]],
      ["checkpoints", (out) => ["audit", "checkpoint", "--export", out]],
      ["baseline", (out) => ["check", "files", "--baseline", out, tree]],
    ];
    for (const [name, args] of commands) {
      for (const [kind, target] of [["dangling", v.absent], ["existing", v.existing]] as const) {
        const out = join(spool, `${name}-${kind}.txt`);
        plantLink(target, out);
        const r = await bulwarkInProcess(args(out), site.env);
        assert.equal(r.code, 2, `${name} over a ${kind} link: ${r.stderr}`);
        assert.match(r.stderr, /exists|refusing/, `${name} over a ${kind} link names the target as taken: ${r.stderr}`);
        assert.equal(lstatSync(out).isSymbolicLink(), true, `${name}: the planted link is left as it was`);
        assert.equal(existsSync(v.absent), false, `${name} over a ${kind} link created the file the link names`);
        assert.equal(readFileSync(v.existing, "utf8"), v.content, `${name} over a ${kind} link wrote the victim's file`);
      }
    }
    for (const [kind, target] of [["dangling", v.absent], ["existing", v.existing]] as const) {
      const out = join(spool, `forced-${kind}.jsonl`);
      plantLink(target, out);
      const r = await bulwarkInProcess(["check", "files", "--baseline", out, "--force", tree], site.env);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(lstatSync(out).isFile(), true, `--force over a ${kind} link: the link itself is replaced by the baseline`);
      assert.equal(existsSync(v.absent), false, `--force over a ${kind} link created the file the link names`);
      assert.equal(readFileSync(v.existing, "utf8"), v.content, `--force over a ${kind} link wrote the victim's file`);
    }
    assert.deepEqual(readdirSync(spool).filter((f) => f.startsWith(".")), [], "no temporary file left in the spool");
  });

  it("attack: a hard link to the victim's file and a FIFO planted at every target — refused without opening either (no command waits on the FIFO), and --baseline --force replaces the name: the victim's file keeps its bytes and its inode's other name (ASVS 16.5.3)", async () => {
    const spool = freshDir("spool", 0o1777);
    const v = victim();
    const tree = treeOf(3);
    const inode = statSync(v.existing).ino;
    const commands: Array<[string, (out: string) => string[]]> = [
      ["ids", (out) => ["check", "logins", "--ids-out", out, "--fail-on", "none"]],
      ["export", (out) => ["audit", "export", "--output", out]],
      ["checkpoints", (out) => ["audit", "checkpoint", "--export", out]],
      ["baseline", (out) => ["check", "files", "--baseline", out, tree]],
      ["forced", (out) => ["check", "files", "--baseline", out, "--force", tree]],
    ];
    for (const [name, args] of commands) {
      // The hard link (fs.protected_hardlinks=0, or a file of the victim's the attacker may write): in this process,
      // cheaply; the FIFO in a child, so a command that opened it would be killed by limitMs rather than hang the file.
      const hard = join(spool, `${name}-hard.txt`);
      linkSync(v.existing, hard);
      const h = await bulwarkInProcess(args(hard), site.env);
      const fifo = join(spool, `${name}-fifo.txt`);
      execFileSync("mkfifo", [fifo]);
      if (IS_ROOT) lchownSync(fifo, ATTACKER_UID, ATTACKER_UID);
      const f = await bulwark(args(fifo), { env: site.env, limitMs: 20_000 });
      assert.equal(f.signal, null, `${name} over a FIFO hung (killed after 20 s)`);
      if (name === "forced") {
        assert.equal(h.code, 0, h.stderr);
        assert.equal(f.code, 0, f.stderr);
        assert.equal(lstatSync(fifo).isFile(), true, "--force replaced the FIFO's name with the baseline");
        assert.notEqual(statSync(hard).ino, inode, "--force gave the name a new file");
      } else {
        assert.equal(h.code, 2, `${name} over a hard link: ${h.stderr}`);
        assert.equal(f.code, 2, `${name} over a FIFO: ${f.stderr}`);
        assert.equal(lstatSync(fifo).isFIFO(), true);
      }
      assert.equal(readFileSync(v.existing, "utf8"), v.content, `${name} wrote through the hard link into the victim's file`);
      assert.equal(statSync(v.existing).ino, inode);
    }
  });

  it("attack: the attacker predicts the temporary names written beside the target (.NAME.PID.partial for --output, .NAME.PID.new.tmp for --baseline: the pid of a long-running or in-process command is known) and plants a symlink to the victim's file there — the export is refused, the baseline is published, and the victim's file is never written (ASVS 16.5.3)", async () => {
    const spool = freshDir("spool", 0o1777);
    const v = victim();
    const tree = treeOf(3);
    const exportOut = join(spool, "log.jsonl");
    plantLink(v.existing, join(spool, `.log.jsonl.${process.pid}.partial`));
    const ex = await bulwarkInProcess(["audit", "export", "--output", exportOut], site.env);
    assert.notEqual(ex.code, 0, "an export whose temporary name is taken must not succeed through it");
    assert.match(ex.stderr, /--output .*cannot create a file/);
    assert.equal(existsSync(exportOut), false);
    const baselineOut = join(spool, "b.jsonl");
    plantLink(v.existing, join(spool, `.b.jsonl.${process.pid}.new.tmp`));
    const b = await bulwarkInProcess(["check", "files", "--baseline", baselineOut, tree], site.env);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(await trusted(site, baselineOut, tree), true, "the baseline published is the one signed");
    assert.equal(readFileSync(v.existing, "utf8"), v.content, "a temporary name's planted link was written through");
  });
});

describe("modes under umask 000", () => {
  it("attack: the operator's shell has umask 000 (a careless profile, a cron environment) — every file a command writes outside the data dir is still 0600, so another account cannot read the accounts reported, the log or the baseline (ASVS 16.4.2, 14.2.4)", async () => {
    const dir = freshDir("out", 0o1777);
    const tree = treeOf(3);
    const previous = process.umask(0);
    try {
      const runs: Array<[string, string[]]> = [
        ["ids.txt", ["check", "logins", "--ids-out", join(dir, "ids.txt"), "--fail-on", "none"]],
        ["log.jsonl", ["audit", "export", "--output", join(dir, "log.jsonl")]],
        ["checkpoints.jsonl", ["audit", "checkpoint", "--export", join(dir, "checkpoints.jsonl")]],
        ["b.jsonl", ["check", "files", "--baseline", join(dir, "b.jsonl"), tree]],
        ["forced.jsonl", ["check", "files", "--baseline", join(dir, "forced.jsonl"), "--force", tree]],
      ];
      for (const [name, args] of runs) {
        const r = await bulwarkInProcess(args, site.env);
        assert.equal(r.code, 0, `${name}: ${r.stderr}`);
        assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600, `${name} under umask 000`);
      }
      assert.deepEqual(readdirSync(dir).sort(), runs.map(([n]) => n).sort(), "no temporary file left");
    } finally {
      process.umask(previous);
    }
  });
});

describe("a disk that fills up mid-write", { skip: PRLIMIT === null ? "prlimit(1) not installed" : false }, () => {
  let grown: CLISite;
  before(async () => {
    // ~300 events and ~300 checkpoints: exports of about 100 KiB each, past the 40-48 KiB the disk leaves.
    grown = await initSite(join(root, "grown"), { here: true });
    const app = await openApp({ env: { ...grown.env, BULWARK_LOG_LEVEL: "silent" }, mode: "open" });
    for (let i = 0; i < 300; i++) {
      await app.audit.append({ type: "demo.event", actor: "a", subject: `s${i}`, data: { i } });
      await app.audit.checkpoint({ actor: "t" });
    }
    await app.close();
  });

  it("attack: the disk fills while `check files --baseline` writes its last chunk — the command fails and publishes nothing (with --force: the old baseline is kept) (ASVS 16.5.3) (was: exit 0, \"N entries … signed\" over a truncated baseline that the next compare called tampered, and --force lost the good one)", async () => {
    const spool = freshDir("spool");
    const tree = treeOf(400); // a ~110 KiB baseline: one write, cut at 48 KiB
    const fresh = join(spool, "new.jsonl");
    const r = bulwarkOnFullDisk(["check", "files", "--baseline", fresh, tree], site.env, 48 * 1024);
    assert.equal(r.signal, null);
    const published = existsSync(fresh);
    const freshTrusted = published && (await trusted(site, fresh, tree));
    // The old baseline an operator refreshes with --force after an upgrade.
    const old = join(spool, "old.jsonl");
    assert.equal((await bulwarkInProcess(["check", "files", "--baseline", old, tree], site.env)).code, 0);
    assert.equal(await trusted(site, old, tree), true);
    const forced = bulwarkOnFullDisk(["check", "files", "--baseline", old, "--force", tree], site.env, 48 * 1024);
    const oldTrusted = await trusted(site, old, tree);
    const problems: string[] = [];
    if (!((r.code !== 0 && !published) || freshTrusted)) {
      problems.push(`--baseline exited ${r.code} ("${r.stdout.trim().split("\n")[0]}") and published ${published ? statSync(fresh).size : 0} bytes cut short, with no signed trailer`);
    }
    if (!oldTrusted) problems.push(`--baseline --force exited ${forced.code} and replaced the good baseline with ${statSync(old).size} bytes that no longer verify: the evidence is gone`);
    assert.deepEqual(problems, [], "check files on a full disk: writeBaselineFile ignores the short write (FileHandle.write's bytesWritten), syncs and renames what reached the disk");
  });

  it("attack: the disk fills during `audit export --output` — the export fails with Bulwark's message (exit 3) and leaves no file, not even its .partial temporary, as docs/audit-log.md promises (ASVS 16.4.2, 16.5.3) (was: Node's exit 13 on an unsettled await, no message, the .partial left)", () => {
    const spool = freshDir("spool");
    const out = join(spool, "log.jsonl");
    const r = bulwarkOnFullDisk(["audit", "export", "--output", out], grown.env, 48 * 1024);
    assert.equal(r.signal, null, "the export was killed after 30 s");
    const left = readdirSync(spool);
    assert.ok(
      r.code === 3 && /bulwark: .*(EFBIG|ENOSPC|too large|no space)/i.test(r.stderr) && left.length === 0,
      `audit export on a full disk exited ${r.code} with ${JSON.stringify(r.stderr.trim().split("\n")[0] ?? "")} (the write error is never awaited: ` +
        `its loop waits for a 'drain' that a failed stream never emits, and Node ends on an unsettled await) and left ${JSON.stringify(left)} in ${spool}`,
    );
  });

  it("attack: the disk fills during `audit checkpoint --export` — the command fails and leaves no file, so a retry writes the whole export (ASVS 16.4.2, 16.5.3) (was: a shorter checkpoints file of whole lines that `audit verify --checkpoints` accepted as intact and that a retry was refused for)", async () => {
    const spool = freshDir("spool");
    const full = join(spool, "all.jsonl");
    assert.equal((await bulwarkInProcess(["audit", "checkpoint", "--export", full], grown.env)).code, 0);
    const lines = readFileSync(full, "utf8").split("\n").filter((l) => l !== "");
    // The disk fills exactly at a line's end, as it may at any byte: 140 whole checkpoints reach the file.
    const room = Buffer.byteLength(lines.slice(0, 140).map((l) => `${l}\n`).join(""));
    assert.ok(room > 40_000 && lines.length > 200, `the store holds ${lines.length} checkpoints (${room} bytes for 140)`);
    const out = join(spool, "checkpoints.jsonl");
    const r = bulwarkOnFullDisk(["audit", "checkpoint", "--export", out], grown.env, room);
    assert.equal(r.signal, null);
    assert.notEqual(r.code, 0, "the export cannot have succeeded: the checkpoints do not fit");
    const left = existsSync(out) ? readFileSync(out, "utf8").split("\n").filter((l) => l !== "").length : 0;
    const verify = existsSync(out) ? await bulwarkInProcess(["audit", "verify", "--checkpoints", out], grown.env) : null;
    const retry = await bulwarkInProcess(["audit", "checkpoint", "--export", out], grown.env);
    assert.ok(
      !existsSync(out) || retry.code === 0,
      `audit checkpoint --export on a full disk exited ${r.code} (${r.stderr.trim().split("\n").at(-1)}) and left ${out} holding ${left} of ${lines.length + 1} checkpoints, ` +
        `every line whole: audit verify --checkpoints with it exits ${verify?.code} ("${verify?.stdout.split("\n")[0]}"), and the retry exits ${retry.code}: ${retry.stderr.trim()}`,
    );
  });
});
