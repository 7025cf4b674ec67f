// Attacks on `bulwark check downloads`: the release mirror, the download directory or the checksum file is
// hostile (seed 000: Drupal.org had to prove its project downloads were untouched). The attacker wants a
// tampered artifact reported as verified, the verifier steered to a file outside the directory, or a finding
// that does not say which file failed and why. Each test is an attack that must fail; "(was: …)" names what the
// code did before its fix. Temp dirs only; the CLI is spawned once, where stdin is the attack.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { appendFileSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { verifyDownloads, type VerifyDownloadsResult } from "../src/checks/downloads/index.ts";
import { nodeScanFS } from "../src/checks/files/hash-file.ts";
import { sha256, verifyWatchingOpens } from "./helpers/checks.ts";
import { scratchRoot } from "./helpers/scratch.ts";
import { bulwark as spawnCLI, type CLIResult } from "./helpers/cli.ts";

const { root, fresh } = scratchRoot("bulwark-redteam-downloads-", { outsideDev: true });

const md5 = (data: string): string => createHash("md5").update(data).digest("hex");
const sha1 = (data: string): string => createHash("sha1").update(data).digest("hex");


type Items = Array<Record<string, unknown>>;
const items = (r: VerifyDownloadsResult, id: string): Items => (r.findings.find((f) => f.id === id)?.evidence["items"] as Items | undefined) ?? [];

/** Runs the CLI in a child, stdin redirected from `stdinFile` (`< FILE`); killed past 20 s (a safety net). */
const bulwark = (args: string[], cwd: string, stdinFile: string): Promise<CLIResult> =>
  spawnCLI(args, { env: { BULWARK_DATA_DIR: join(root, "data") }, cwd, stdin: { file: stdinFile }, limitMs: 20_000 });

// ---------------------------------------------------------------------------------------------------------
// A directory component swapped for a symlink between the containment check and the read
// ---------------------------------------------------------------------------------------------------------

describe("the download directory changes under the verifier (TOCTOU)", () => {
  // The attacker can write in the download directory (the case the symlink defence exists for). verify.ts
  // checks realpath(dir/pool/f) is inside the directory, then lstat()s and opens that path again: a "pool"
  // swapped for a symlink to another directory in between is followed (O_NOFOLLOW guards the last component
  // only), so the verifier hashes a file outside the directory and prints its SHA-256 as `actual`, or says
  // "verified" when the attacker listed the right guess. The hook below makes the attacker win the race every
  // time; a real swapper process looping rename(2) won it in 20 of 235 runs on this machine. ASVS 1.3.3, 16.5.3.
  test("attack: a directory component swapped for a symlink after the containment check does not get a file outside the directory read and confirmed (was: verified)", async () => {
    const base = fresh("toctou-dir");
    const rel = join(base, "release");
    mkdirSync(join(rel, "pool"), { recursive: true });
    writeFileSync(join(rel, "pool", "app.tar.gz"), "genuine artifact\n");
    mkdirSync(join(base, "private"));
    writeFileSync(join(base, "private", "app.tar.gz"), "outside secret 4711\n");
    const guess = sha256("outside secret 4711\n");
    const sums = join(base, "SHA256SUMS");
    writeFileSync(sums, `${guess}  pool/app.tar.gz\n`);

    const lstat = nodeScanFS.lstat;
    let swapped = false;
    nodeScanFS.lstat = async (p) => {
      if (!swapped && p === join(rel, "pool", "app.tar.gz")) {
        swapped = true;
        renameSync(join(rel, "pool"), join(rel, "pool.real"));
        symlinkSync(join(base, "private"), join(rel, "pool"));
      }
      return lstat(p);
    };
    let r: VerifyDownloadsResult;
    try {
      r = await verifyDownloads({ sums, dir: rel });
    } finally {
      nodeScanFS.lstat = lstat;
    }
    assert.ok(swapped, "the race hook ran");
    assert.equal(r.ok, 0, "a file outside the directory was read and reported as verified");
    assert.deepEqual(r.okNames, []);
    assert.ok(r.findings.some((f) => f.severity === "high" || f.severity === "critical"), "the entry is not silently dropped");
  });

  // The same race on the last component: the artifact itself swapped for a symlink to a file outside, just
  // before it is opened. O_NOFOLLOW refuses it (ELOOP); the outside file's digest must not appear anywhere.
  test("attack: the artifact swapped for a symlink leading outside just before open is not followed, and nothing of the target leaks (ASVS 1.3.3)", async () => {
    const base = fresh("toctou-leaf");
    const rel = join(base, "release");
    mkdirSync(rel);
    writeFileSync(join(rel, "app.iso"), "genuine\n");
    writeFileSync(join(base, "shadow"), "root:$6$secret\n");
    const sums = join(base, "SHA256SUMS");
    writeFileSync(sums, `${sha256("root:$6$secret\n")}  app.iso\n`);

    let swapped = false;
    const r = await verifyWatchingOpens({ sums, dir: rel }, (p) => {
      if (!swapped && p === join(rel, "app.iso")) {
        swapped = true;
        rmSync(p);
        symlinkSync(join(base, "shadow"), p);
      }
    });
    assert.ok(swapped, "the race hook ran");
    assert.equal(r.ok, 0);
    assert.ok(r.findings.some((f) => f.severity === "high" || f.severity === "critical"));
    for (const f of r.findings) for (const i of f.evidence["items"] as Items) assert.equal(i["actual"], undefined, "no digest of the outside file");
  });
});

// ---------------------------------------------------------------------------------------------------------
// A checksum file passed as a pipe: which directory are the names looked up in?
// ---------------------------------------------------------------------------------------------------------

// docs/checks.md invites `/dev/stdin` and `/dev/fd/N` (`<(…)`) for the checksum file. Without --dir the names
// are then looked up in dirname(SUMS): /dev (realpath of /dev/stdin's directory) or /proc/PID/fd, never where
// the operator downloaded. `curl …/SHA256SUMS | bulwark check downloads /dev/stdin` verifies nothing that was
// downloaded, and a hostile list steers the hash to /dev (e.g. shm/…, other users' shared memory files) and
// prints their digests. Secure: refuse (exit 2, asking for --dir) or use the working directory, as
// `sha256sum -c -` does. ASVS 1.3.3, 16.5.3.
test("attack: a checksum file read from /dev/stdin or /dev/fd/N without --dir is refused, naming --dir (was: names looked up in /dev or /proc/PID/fd)", async () => {
  const cwd = fresh("stdin-cwd");
  writeFileSync(join(cwd, "app.iso"), "the downloaded image\n");
  const list = `${sha256("the downloaded image\n")}  app.iso\n${sha256("x")}  null\n`;

  const listFile = join(fresh("stdin-list"), "SHA256SUMS");
  writeFileSync(listFile, list);
  // bulwark check downloads /dev/stdin --json < SHA256SUMS, run in the download directory.
  const r = await bulwark(["check", "downloads", "/dev/stdin", "--json"], cwd, listFile);
  assert.equal(r.signal, null);
  if (r.code === 2) {
    assert.match(r.stderr, /--dir/, "a refusal says to give --dir");
  } else {
    const out = JSON.parse(r.stdout) as { dir: string; ok: number };
    assert.doesNotMatch(out.dir, /^\/(dev|proc)(\/|$)/, `names were looked up in ${out.dir}`);
    assert.equal(out.dir, cwd);
    assert.equal(out.ok, 1);
  }

  // The same through process substitution's /dev/fd/N, in process.
  const fd = openSync(listFile, "r");
  try {
    const res = await verifyDownloads({ sums: `/dev/fd/${fd}` }).catch((error: unknown) => error as Error & { code?: string });
    if (res instanceof Error) assert.match(res.message, /--dir/);
    else assert.doesNotMatch(res.dir, /^\/(dev|proc)(\/|$)/, `names were looked up in ${res.dir}`);
  } finally {
    closeSync(fd);
  }
});

// The refusal above covered every path under /dev, so a genuine SHA256SUMS kept on the /dev/shm tmpfs (where many
// operators stage downloads) was refused too, though its directory holds the artifacts. Only descriptors and
// devices have no directory beside them: a regular file under /dev/shm is verified where it lies, while /dev/stdin
// and /dev/fd/N still need --dir. ASVS 1.3.3, 16.5.3.
test("attack: a regular checksum file under /dev/shm is verified beside its artifact, while /dev/stdin and /dev/fd/N without --dir stay refused (was: every /dev path refused)", async (t) => {
  if (!existsSync("/dev/shm") || !statSync("/dev/shm").isDirectory()) {
    t.skip("/dev/shm is absent on this machine: no tmpfs to keep the checksum file on");
    return;
  }
  const shm = mkdtempSync("/dev/shm/bulwark-downloads-shm-");
  try {
    writeFileSync(join(shm, "app.iso"), "the downloaded image\n");
    const sums = join(shm, "SHA256SUMS");
    writeFileSync(sums, `${sha256("the downloaded image\n")}  app.iso\n`);
    const r = await verifyDownloads({ sums });
    assert.equal(r.ok, 1, "the artifact beside the checksum file is verified");
    assert.deepEqual(r.findings, []);

    // Still refused: a descriptor has no directory beside it.
    await assert.rejects(verifyDownloads({ sums: "/dev/stdin" }), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_DOWNLOADS_DIR" && /--dir/.test(e.message));
    await assert.rejects(verifyDownloads({ sums: "/dev/null" }), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_DOWNLOADS_DIR", "a device directly in /dev");
    const fd = openSync(sums, "r");
    try {
      await assert.rejects(verifyDownloads({ sums: `/dev/fd/${fd}` }), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_DOWNLOADS_DIR" && /--dir/.test(e.message));
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// An artifact that changes while it is hashed
// ---------------------------------------------------------------------------------------------------------

describe("an artifact rewritten while it is being hashed", () => {
  /** Verifies an 8 MiB artifact while it is appended to on every event-loop turn (large files are read asynchronously). */
  async function verifyWhileWriting(): Promise<VerifyDownloadsResult> {
    const dir = fresh("changing");
    const image = Buffer.alloc(8 << 20, 0x41);
    writeFileSync(join(dir, "image.iso"), image);
    writeFileSync(join(dir, "SHA256SUMS"), `${sha256(image)}  image.iso\n`);
    let stop = false;
    let writes = 0;
    const tick = (): void => {
      if (stop) return;
      appendFileSync(join(dir, "image.iso"), "x");
      writes++;
      setImmediate(tick);
    };
    setImmediate(tick);
    try {
      return await verifyDownloads({ sums: join(dir, "SHA256SUMS") });
    } finally {
      stop = true;
      assert.ok(writes > 0, "the writer ran during the check");
    }
  }

  // A torn read must not come out as "verified" nor vanish: it is a high finding naming the file. ASVS 16.5.3.
  test("attack: a file that keeps changing while hashed is never verified and is reported high with its name", async () => {
    const r = await verifyWhileWriting();
    assert.equal(r.ok, 0);
    const f = r.findings.find((x) => x.id === "downloads.unreadable");
    assert.equal(f?.severity, "high");
    assert.deepEqual(items(r, "downloads.unreadable").map((i) => [i["name"], i["error"]]), [["image.iso", "changed while being read"]]);
  });

  // What the operator reads (human output prints title, detail and remediation, not evidence) names the file
  // but not why: "could not be read … Fix the permissions or the I/O error listed" — and no error is listed.
  // For an artifact being rewritten under the verifier (a tampering in progress) they are sent to fix
  // permissions. verify.ts describe() prints only name and line. ASVS 16.3.3 (which file and why).
  test("the human detail of an artifact that changed while hashed says why (changed while being read), not only its name", async () => {
    const r = await verifyWhileWriting();
    const f = r.findings.find((x) => x.id === "downloads.unreadable");
    assert.ok(f, "an unreadable finding");
    assert.match(f.detail, /image\.iso/);
    assert.match(f.detail, /changed while being read/, `detail: ${f.detail}`);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Contradictory and weak checksum lines
// ---------------------------------------------------------------------------------------------------------

// A list that names the same artifact twice, once with the tampered file's digest and once with another: the
// matching line must not win. Every line is checked; the mismatching one is critical and named by its line,
// whichever order the lines are in. ASVS 16.5.3.
test("attack: a file listed twice with different digests is a critical mismatch naming the contradicting line, in either order", async () => {
  const dir = fresh("dup");
  writeFileSync(join(dir, "app.tar.gz"), "trojaned build\n");
  const tampered = sha256("trojaned build\n");
  const published = sha256("release build\n");
  for (const [lines, badLine] of [
    [`${tampered}  app.tar.gz\n${published}  app.tar.gz\n`, 2],
    [`SHA256 (app.tar.gz) = ${published}\n${tampered} *./app.tar.gz\n`, 1],
  ] as const) {
    const sums = join(dir, `SUMS-${badLine}`);
    writeFileSync(sums, lines);
    const r = await verifyDownloads({ sums });
    const f = r.findings.find((x) => x.id === "downloads.mismatch");
    assert.equal(f?.severity, "critical", lines);
    assert.deepEqual(items(r, "downloads.mismatch").map((i) => [i["line"], i["expected"], i["actual"]]), [[badLine, published, tampered]]);
    assert.match(f.detail, new RegExp(`\\(line ${badLine}\\)`));
  }
});

// MD5 and SHA-1 digests that match the file are not proof (collisions are practical): a list made only of
// them verifies nothing and is refused as input, and a matching MD5 line does not mask a SHA-256 mismatch
// for the same file. ASVS 11.4.1, 11.4.3.
test("attack: correct MD5 / SHA-1 digests are never accepted as proof, alone or beside a mismatching SHA-256 line", async () => {
  const dir = fresh("weak");
  writeFileSync(join(dir, "app.tar.gz"), "collided build\n");
  const weakOnly = join(dir, "WEAK");
  writeFileSync(weakOnly, `${md5("collided build\n")}  app.tar.gz\n${sha1("collided build\n")}  app.tar.gz\nMD5 (app.tar.gz) = ${md5("collided build\n")}\nSHA1 (app.tar.gz) = ${sha1("collided build\n")}\n`);
  await assert.rejects(verifyDownloads({ sums: weakOnly }), { code: "BULWARK_ERR_DOWNLOADS_SUMS", message: /no SHA-256 checksum lines/ });

  const mixed = join(dir, "MIXED");
  writeFileSync(mixed, `MD5 (app.tar.gz) = ${md5("collided build\n")}\nSHA256 (app.tar.gz) = ${sha256("release build\n")}\n`);
  const r = await verifyDownloads({ sums: mixed });
  assert.equal(r.ok, 0);
  assert.deepEqual(r.findings.map((f) => `${f.id}/${f.severity}`).sort(), ["downloads.malformed-line/medium", "downloads.mismatch/critical"]);
});
