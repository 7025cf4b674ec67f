// Third red-team look at the checks (`bulwark check bucket|authlog|files`). This round attacked what the earlier
// rounds left: a bucket policy whose IP condition is a union of individually "narrow" ranges, rotated auth logs handed
// over in the order a shell glob gives them, a trojaned file kept "changing" while it is hashed, and a sparse file
// built to make the integrity scan never end.
// The attacker wrote the inspected input: the author of a bucket policy who wants a public bucket to pass review, an
// intruder whose brute force and login sit in two rotated log files, a local user or intruder with write access to
// part of a tree `check files` watches. Aim: a false "all clear" (exit 0, "read no"), or a check that never ends.
// Each test is an attack that must fail; the five findings were fixed the same day and their tests say "(was: …)". Temp dirs and in-process / spawned CLI runs only.
import assert from "node:assert/strict";
import { mkdirSync, rmSync, truncateSync, utimesSync, writeFileSync, closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import type { OpenFile, ScanFS } from "../src/checks/files/hash-file.ts";
import { nodeScanFS } from "../src/checks/files/scan.ts";
import { ratingsOf, tempDir, testSigner } from "../src/checks/files/test-helpers.ts";
import type { Finding } from "../src/checks/finding.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { bulwark, bulwarkInProcess } from "./helpers/cli.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function sandbox(): string {
  const d = tempDir("bulwark-redteam3-checks-");
  dirs.push(d);
  return d;
}

interface JSONOut {
  findings: { id: string; severity: string; title: string }[];
  access?: Record<string, unknown>;
}

// =====================================================================================================================
// bucket: an IP condition made of /8s
// =====================================================================================================================

const OWNER = "111122223333";
/** Every IPv4 address there is, as 256 ranges each "narrow" enough (/8) to be read as pinning the caller. */
const EVERY_SLASH_8 = Array.from({ length: 256 }, (_, i) => `${i}.0.0.0/8`);

async function checkBucket(policy: unknown): Promise<{ code: number; out: JSONOut; stderr: string }> {
  const dir = sandbox();
  const file = join(dir, "policy.json");
  writeFileSync(file, JSON.stringify(policy));
  const run = await bulwarkInProcess(["check", "bucket", "--policy", file, "--owner-account", OWNER, "--bucket", "backups", "--json"]);
  return { code: run.code, out: JSON.parse(run.stdout) as JSONOut, stderr: run.stderr };
}

describe("bucket: aws:SourceIp ranges that are narrow one by one and cover the internet together", () => {
  // conditions.ts inRanges judges each range alone: a /8 "pins" an arbitrary caller (never in it), and anyOf(never,
  // never, ...) is never. 256 of them are 0.0.0.0/0, which the same code calls public. A policy of ~4 KB (AWS allows
  // 20 KB) makes the backups readable by every IPv4 address and the check answer "read no", exit 0.
  test("attack: an Allow to \"*\" on IpAddress aws:SourceIp listing every /8 (all of IPv4) is reported as anonymous read, critical, exit 1: the ranges are judged as their union (ASVS 8.2.2) (was: reported private, exit 0)", async () => {
    const { code, out } = await checkBucket({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "OfficeNetworksOnly",
          Effect: "Allow",
          Principal: "*",
          Action: "s3:GetObject",
          Resource: "arn:aws:s3:::backups/*",
          Condition: { IpAddress: { "aws:SourceIp": EVERY_SLASH_8 } },
        },
      ],
    });
    const ids = out.findings.map((f) => `${f.id}/${f.severity}`);
    assert.ok(ids.includes("bucket.anonymous-read/critical"), `every IPv4 address on the internet can read the backups (exit ${code}, access ${JSON.stringify(out.access)}): ${ids.join(", ")}`);
    assert.equal(code, 1, "a public bucket must fail the check");
  });

  // The Deny side of the same reading: NotIpAddress on a union of /8s is "always" for an outside caller, so the Deny is
  // credited with cancelling the public Allow ("Allows cancelled ... by explicit Denies"), while no IPv4 caller is
  // outside the union and the Deny never applies to one.
  test("attack: a Deny on NotIpAddress over every /8 is not credited with cancelling a public read every IPv4 caller keeps (ASVS 8.2.2) (was: credited, read no)", async () => {
    const { code, out } = await checkBucket({
      Version: "2012-10-17",
      Statement: [
        { Sid: "Public", Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: "arn:aws:s3:::backups/*" },
        {
          Sid: "OnlyFromOurRanges",
          Effect: "Deny",
          Principal: "*",
          Action: "s3:*",
          Resource: ["arn:aws:s3:::backups", "arn:aws:s3:::backups/*"],
          Condition: { NotIpAddress: { "aws:SourceIp": EVERY_SLASH_8 } },
        },
      ],
    });
    const ids = out.findings.map((f) => `${f.id}/${f.severity}`);
    assert.ok(ids.includes("bucket.anonymous-read/critical"), `the Deny applies to no IPv4 caller, so the read stays public: ${ids.join(", ")}`);
    assert.equal(code, 1);
  });

  // Pins the vacuous-truth rule where it matters most: ForAllValues over a key an anonymous request does not carry is
  // true, so an Allow "restricted" to the owner account through ForAllValues is open to unsigned callers.
  test("attack: an Allow to \"*\" on ForAllValues:StringEquals aws:PrincipalAccount = owner (vacuously true without the key) is refused as private", async () => {
    const { code, out } = await checkBucket({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "OwnerOnly",
          Effect: "Allow",
          Principal: "*",
          Action: "s3:GetObject",
          Resource: "arn:aws:s3:::backups/*",
          Condition: { "ForAllValues:StringEquals": { "aws:PrincipalAccount": [OWNER] } },
        },
      ],
    });
    const ids = out.findings.map((f) => `${f.id}/${f.severity}`);
    assert.ok(ids.includes("bucket.anonymous-read/critical"), ids.join(", "));
    assert.equal(code, 1);
  });
});

// =====================================================================================================================
// authlog: rotated files in the order a shell glob lists them
// =====================================================================================================================

const ATTACKER = "203.0.113.9";

/** auth.log.1 (older): 30 password guesses for deploy in ten minutes. auth.log (newer): the login that followed. */
function rotatedLogs(dir: string): { older: string; newer: string } {
  const guesses = Array.from({ length: 30 }, (_, i) => {
    const t = `04:${String(Math.floor(i / 3)).padStart(2, "0")}:${String((i % 3) * 20).padStart(2, "0")}`;
    return `Nov 22 ${t} web sshd[${1000 + i}]: Failed password for deploy from ${ATTACKER} port ${40000 + i} ssh2`;
  });
  const older = join(dir, "auth.log.1");
  const newer = join(dir, "auth.log");
  writeFileSync(older, `${guesses.join("\n")}\n`);
  writeFileSync(newer, `Nov 22 09:00:00 web sshd[2000]: Accepted password for deploy from ${ATTACKER} port 50000 ssh2\n`);
  return { older, newer };
}

describe("authlog: a brute force and its login in two rotated files", () => {
  // `bulwark check authlog /var/log/auth.log*` gets auth.log before auth.log.1 (glob order: newest first). The login is
  // judged when its line is read, before the brute force in the older file has been seen, and never again: the
  // critical compromise disappears and two medium brute-force findings leave the exit code at 0. analyzer.ts's own
  // comment says files "may be given out of order", but only the other direction is handled.
  test("attack: given newest first (auth.log auth.log.1, as the shell expands auth.log*), the login after a brute force is still reported critical: logins are judged again at the end against every file (was: not reported, exit 0)", async () => {
    const { older, newer } = rotatedLogs(sandbox());
    const run = await bulwarkInProcess(["check", "authlog", "--year", "2025", "--json", newer, older]);
    const out = JSON.parse(run.stdout) as JSONOut;
    const ids = out.findings.map((f) => `${f.id}/${f.severity}`);
    assert.ok(ids.includes("authlog.brute-force/medium"), `the brute force itself is seen: ${ids.join(", ")}`);
    assert.ok(ids.includes("authlog.success-after-failures/critical"), `deploy's login from the offender after 30 guesses (exit ${run.code}): ${ids.join(", ")}`);
    assert.equal(run.code, 1);
  });

  // The same two files in chronological order: the control for the test above, and a pin that the windows and the
  // offender survive a file boundary.
  test("attack: the same brute force and login given oldest first are reported critical, exit 1", async () => {
    const { older, newer } = rotatedLogs(sandbox());
    const run = await bulwarkInProcess(["check", "authlog", "--year", "2025", "--json", older, newer]);
    const out = JSON.parse(run.stdout) as JSONOut;
    assert.ok(out.findings.some((f) => f.id === "authlog.success-after-failures" && f.severity === "critical"), JSON.stringify(out.findings.map((f) => f.id)));
    assert.equal(run.code, 1);
  });
});

// =====================================================================================================================
// files: a trojaned file kept moving while it is hashed; a sparse file the scan reads for ever
// =====================================================================================================================

const clock = new ManualClock(Date.UTC(2026, 0, 1));
const signer = testSigner();

const ratings = ratingsOf;

describe("files: content an intruder keeps from being hashed", () => {
  // An intruder edits a file in place at the same size (a uid 1000 → 0000 in a passwd-like file; patched bytes in a
  // 0644 PAM module) and runs `while :; do touch FILE; done` during the scan. Every hash attempt sees the mtime move,
  // the entry is "changed-during-scan" with no hash, and diffEntry only counts an unhashed file as changed content when
  // its size moved: the change is rated "metadata only" (medium) plus a low "changed during scan", exit 0. The hook
  // below is the touch landing while the file is read: a real utimes on the real file.
  test("attack: a same-size trojaned file kept touched during the scan is changed content, high, exit 1 (ASVS 16.5.3) (was: metadata-only medium, exit 0 at the default --fail-on high)", async () => {
    const root = sandbox();
    const tree = join(root, "etc");
    mkdirSync(tree);
    const baseline = join(root, "b.jsonl");
    const target = join(tree, "passwd");
    writeFileSync(target, "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n", { mode: 0o644 });
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    writeFileSync(target, "root:x:0:0:root:/root:/bin/bash\nalice:x:0000:1000::/home/alice:/bin/bash\n");
    let touches = 0;
    const touching: ScanFS = {
      ...nodeScanFS,
      open: async (p, flags): Promise<OpenFile> => {
        const file = await nodeScanFS.open(p, flags);
        if (p !== target) return file;
        const touch = (n: number): number => {
          if (n === 0) {
            touches++;
            const when = new Date(Date.UTC(2026, 0, 2) + touches * 1000);
            utimesSync(target, when, when);
          }
          return n;
        };
        return { ...file, read: async (b) => touch(await file.read(b)), readSync: (b) => touch(file.readSync(b)) };
      },
    };
    const r = await compareBaseline({ baseline, signer, fs: touching });
    const got = ratings(r.findings, target);
    assert.ok(touches > 0, "the hook ran");
    assert.ok(got.includes("files.changed-during-scan/low"), `the race itself is reported: ${got.join(", ")}`);
    assert.ok(
      got.includes("files.changed/high") || got.includes("files.changed/critical"),
      `its content was not verified and its times moved: it must not pass as metadata only: ${got.join(", ")}`,
    );
  });

  // `truncate -s 4T FILE` costs no disk on ext4, tmpfs or xfs, and the scanner reads all 4 TiB of zeros through
  // SHA-256 (8 GiB took 38 s on this machine: 4 TiB is about five hours). No size, time or byte budget bounds a scan,
  // so a local user who can write anywhere under a watched tree stops every baseline and compare from finishing,
  // and the setuid file planted beside it is never reported. DESIGN.md: every bound an attacker controls is bounded.
  test("attack: a 4 TiB sparse file planted in a watched tree is named high as not hashed and the setuid file beside it is reported, in bounded time (ASVS 2.4.1) (was: check files --compare ran for hours)", { timeout: 120_000 }, async () => {
    const root = sandbox();
    const tree = join(root, "srv");
    mkdirSync(tree);
    writeFileSync(join(tree, "index.html"), "<p>hello</p>\n");
    const env = { BULWARK_DATA_DIR: join(root, "data"), BULWARK_MASTER_KEY: "", BULWARK_DATABASE_URL: "" };
    const init = await bulwark(["init"], { env, limitMs: 60_000 });
    assert.equal(init.code, 0, init.stderr);
    const baseline = join(root, "b.jsonl");
    const made = await bulwark(["check", "files", "--baseline", baseline, tree], { env, limitMs: 60_000 });
    assert.equal(made.code, 0, made.stderr);

    const sparse = join(tree, "upload.bin");
    closeSync(openSync(sparse, "w"));
    truncateSync(sparse, 4 * 1024 ** 4);
    const suid = join(tree, "zz-helper");
    writeFileSync(suid, "#!/bin/sh\nexec /bin/sh -p\n", { mode: 0o4755 });

    const started = Date.now();
    const run = await bulwark(["check", "files", "--compare", baseline, "--json"], { env, limitMs: 45_000 });
    assert.equal(run.signal, null, `the compare was still running after ${Math.round((Date.now() - started) / 1000)} s (killed); stderr: ${run.stderr.slice(0, 300)}`);
    const out = JSON.parse(run.stdout) as { findings: { id: string; severity: string; evidence: Record<string, unknown> }[] };
    const listed = (f: { evidence: Record<string, unknown> }, p: string): boolean => ((f.evidence["entries"] as Array<{ path: string }> | undefined) ?? []).some((e) => e.path === p);
    assert.ok(out.findings.some((f) => f.id === "files.added" && f.severity === "high" && listed(f, suid)), "the planted setuid file is reported");
    assert.ok(out.findings.some((f) => listed(f, sparse)), "the file it could not (or did not) hash in full is named");
  });
});
