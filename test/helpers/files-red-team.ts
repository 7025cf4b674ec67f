// What the check files red-team files share: reading a compare's findings, and file systems that deny a listing,
// record what was examined, or root the scanned paths in a temp dir; an ACL without setfacl; running as nobody.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Finding } from "../../src/checks/finding.ts";
import { createBaseline } from "../../src/checks/files/check.ts";
import { nodeScanFS, type ScanFS } from "../../src/checks/files/hash-file.ts";
import type { Signer } from "../../src/crypto/signer.ts";
import type { Clock } from "../../src/lib/clock.ts";
import { initSite, type CLISite } from "./cli.ts";

/** True when a finding at high or critical lists `path` in its evidence. */
export function highFor(findings: readonly Finding[], path: string): boolean {
  return findings.some((f) => (f.severity === "high" || f.severity === "critical") && ((f.evidence["entries"] as Array<{ path: string }> | undefined) ?? []).some((e) => e.path === path));
}

/** Every change a finding lists for `path`. */
export function changesOf(findings: readonly Finding[], path: string): string[] {
  return findings.flatMap((f) => ((f.evidence["entries"] as Array<{ path: string; changes?: string[] }> | undefined) ?? []).filter((e) => e.path === path).flatMap((e) => e.changes ?? []));
}

/** True when any finding is high or critical. */
export const anyHigh = (findings: readonly Finding[]): boolean => findings.some((f) => f.severity === "high" || f.severity === "critical");

/** The findings in one line: id, severity and the entries listed. */
export const summary = (findings: readonly Finding[]): string =>
  JSON.stringify(findings.map((f) => ({ id: f.id, severity: f.severity, entries: f.evidence["entries"] })));

/** Every path a finding's evidence lists. */
export const pathsIn = (findings: readonly Finding[]): string[] =>
  findings.flatMap((f) => ((f.evidence["entries"] as Array<{ path: string }> | undefined) ?? []).map((e) => e.path));

/** Errno-style error, as the kernel gives it (an LSM denial reads EACCES even for root). */
export const errno = (code: string): Error => Object.assign(new Error(code), { code });

/**
 * The node file system (`base`: the shared one unless given, e.g. a scan's own from createNodeScanFS), except that
 * `dirs` cannot be listed (an LSM denial); `onDenied` runs at that moment.
 */
export function denying(dirs: readonly string[], onDenied?: (dir: string) => void, base: ScanFS = nodeScanFS): ScanFS {
  return {
    ...base,
    readdir: async (p) => {
      if (dirs.includes(p)) {
        onDenied?.(p);
        throw errno("EACCES");
      }
      return base.readdir(p);
    },
  };
}

/** `fs`, recording every path it is asked to lstat, stat, readlink or open. */
export function watching(fs: ScanFS): { fs: ScanFS; touched: string[] } {
  const touched: string[] = [];
  return {
    touched,
    fs: {
      lstat: (p) => (touched.push(p), fs.lstat(p)),
      stat: (p) => (touched.push(p), fs.stat(p)),
      readdir: (p) => fs.readdir(p),
      readlink: (p) => (touched.push(p), fs.readlink(p)),
      open: (p, flags) => (touched.push(p), fs.open(p, flags)),
    },
  };
}

/** A ScanFS that looks every path up under `base`: the scanner records /etc/… while the kernel objects live in a temp dir. */
export function rootedFS(base: string): ScanFS {
  const at = (p: string): string => (p === "/" ? base : `${base}${p}`);
  return {
    lstat: (p) => nodeScanFS.lstat(at(p)),
    stat: (p) => nodeScanFS.stat(at(p)),
    readdir: (p) => nodeScanFS.readdir(at(p)),
    readlink: (p) => nodeScanFS.readlink(at(p)),
    open: (p, flags) => nodeScanFS.open(at(p), flags),
  };
}

/**
 * Grants `uid` the permissions `perm` (octal digit) on `path` with a named-user POSIX ACL entry, as `setfacl -m
 * u:UID:PERM` does (setfacl is not installed here): the system.posix_acl_access xattr, written by python3. The mask is
 * the current group bits, so the mode the kernel reports does not change.
 */
export function grantACL(path: string, uid: number, perm: number): void {
  const mode = statSync(path).mode;
  const [u, g, o] = [(mode >> 6) & 7, (mode >> 3) & 7, mode & 7];
  const script = [
    "import os, struct, sys",
    "U = 0xffffffff",
    "p, uid, perm, u, g, o = sys.argv[1], *map(int, sys.argv[2:])",
    "acl = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', t, q, i) for t, q, i in [(1, u, U), (2, perm, uid), (4, g, U), (0x10, g, U), (0x20, o, U)])",
    "os.setxattr(p, 'system.posix_acl_access', acl)",
  ].join("\n");
  execFileSync("python3", ["-c", script, path, String(uid), String(perm), String(u), String(g), String(o)]);
}

/** Runs `work` with the effective uid and gid of nobody (65534): file permissions apply as to a monitoring account. */
export async function asNobody<T>(work: () => Promise<T>): Promise<T> {
  const { seteuid, setegid } = process;
  assert.ok(seteuid !== undefined && setegid !== undefined, "POSIX ids");
  setegid(65534);
  seteuid(65534);
  try {
    return await work();
  } finally {
    seteuid(0);
    setegid(0);
  }
}

/** What `check files --compare … --json` prints, as these tests read it. */
export interface CompareOut {
  trusted: boolean;
  findings: Finding[];
}

/** Runs `check files --compare ARGS --json` in `site`'s data dir: the exit code and the parsed output. */
export async function compareJSON(site: CLISite, args: string[]): Promise<{ code: number | null; out: CompareOut }> {
  const r = await site.runHere(["check", "files", "--compare", ...args, "--json"]);
  return { code: r.code, out: JSON.parse(r.stdout) as CompareOut };
}

/** The files.baseline-superseded finding of a compare, if any. */
export const superseded = (out: CompareOut): Finding | undefined => out.findings.find((f) => f.id === "files.baseline-superseded");

/**
 * For a group of CLI tests: `theSite`, one initialised data dir made on first use under `root()` (bulwark init costs
 * about a second), and `record`, `check files --baseline ARGS` run there, which must succeed.
 */
export function cliSite(root: () => string): { theSite: () => Promise<CLISite>; record: (s: CLISite, args: string[]) => Promise<void> } {
  let site: Promise<CLISite> | null = null;
  return {
    theSite: () => (site ??= initSite(join(root(), "site"), { here: true })),
    record: async (s, args) => {
      const r = await s.runHere(["check", "files", "--baseline", ...args]);
      assert.equal(r.code, 0, r.stderr);
    },
  };
}

/** Open descriptors of this process. */
export const openFds = (): number => readdirSync("/proc/self/fd").length;

/** Writes a setuid shell script, the genuine one or the trojan. */
export function setuidScript(path: string, trojan = false): void {
  writeFileSync(path, trojan ? "#!/bin/sh\nexec /bin/sh -p # trojan\n" : "#!/bin/sh\necho genuine\n");
  chmodSync(path, 0o4755);
}

/** Makes `link` a symlink to `target`, replacing the one there (ln -sfn). */
export function repoint(link: string, target: string): void {
  unlinkSync(link);
  symlinkSync(target, link);
}

/** Whether this sandbox lets root make a private mount namespace (unshare -m) and mount in it. */
export const mountNamespaces: boolean = (() => {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync("unshare", ["-m", "sh", "-c", "mount -t tmpfs probe /mnt"], { stdio: "ignore" });
  return r.status === 0;
})();

/** The src/ directory as a URL, for a child's imports. */
const SRC = new URL("../../src/", import.meta.url).href;

/**
 * Runs `body` (TypeScript, top-level await; `SRC` is the src/ URL, `argv` its arguments) in a child of the pinned node,
 * written under `dir`, in a private mount namespace; with `noProc`, /proc hidden under an empty tmpfs first (a chroot
 * without /proc, a non-Linux host: hash-file.ts then has no descriptor paths). Returns the JSON the child prints last.
 */
export function inMountNamespace<T>(dir: string, body: string, args: string[], options: { noProc?: boolean } = {}): T {
  const script = join(dir, "child.ts");
  writeFileSync(script, `const SRC = ${JSON.stringify(SRC)};\nconst argv = process.argv.slice(2);\n${body}\n`);
  const prelude = options.noProc ? "mount -t tmpfs noproc /proc && " : "";
  const r = spawnSync("unshare", ["-m", "sh", "-c", `${prelude}exec "$0" --disable-warning=ExperimentalWarning "$@"`, process.execPath, script, ...args], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(last) as T;
}

/**
 * What a child (inMountNamespace) imports: the library under test, by URL; and `reasons` and `changesOf`, an entry's
 * ratings with their reasons or changes.
 */
export const CHILD_IMPORTS = `
const { compareBaseline, createBaseline } = await import(SRC + "checks/files/check.ts");
const { nodeScanFS } = await import(SRC + "checks/files/scan.ts");
const { ratingsOf, testSigner } = await import(SRC + "checks/files/test-helpers.ts");
const { ManualClock } = await import(SRC + "lib/clock.ts");
const fs = await import("node:fs");
const { join } = await import("node:path");
const { execFileSync } = await import("node:child_process");
const signer = testSigner();
const clock = new ManualClock();
const reasons = (findings, path) => findings.flatMap((f) => (f.evidence.entries ?? []).filter((e) => e.path === path).map((e) => f.id + "/" + f.severity + ": " + (e.reason ?? e.error ?? "")));
const changesOf = (findings, path) => findings.flatMap((f) => (f.evidence.entries ?? []).filter((e) => e.path === path).map((e) => ({ rating: f.id + "/" + f.severity, changes: e.changes ?? [] })));
const denying = (dirs, onDenied) => ({ ...nodeScanFS, readdir: async (p) => { if (dirs.includes(p)) { onDenied?.(p); throw Object.assign(new Error("EACCES"), { code: "EACCES" }); } return nodeScanFS.readdir(p); } });
`;

/** mkdir with an exact mode (the umask aside). */
export function mkdirMode(path: string, mode = 0o755): void {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
}

/**
 * In `box` (treeSandboxes): tree/lib (to be excluded at compare time only, 0755) holding a setuid `helper` and
 * `sub/libc.so` (sub 0755), and tree/zz beside it; the baseline records all of it, no exclusion.
 */
export async function libTree(box: { root: string; tree: string; baseline: string }, signer: Signer, clock: Clock): Promise<{ root: string; tree: string; baseline: string; x: string; helper: string; sub: string; libc: string }> {
  const { root, tree, baseline } = box;
  const x = join(tree, "lib");
  const sub = join(x, "sub");
  mkdirMode(x);
  mkdirMode(sub);
  const helper = join(x, "helper");
  setuidScript(helper);
  const libc = join(sub, "libc.so");
  writeFileSync(libc, "\x7fELF genuine libc\n");
  writeFileSync(join(tree, "zz"), "after\n");
  await createBaseline({ paths: [tree], out: baseline, signer, clock });
  return { root, tree, baseline, x, helper, sub, libc };
}
