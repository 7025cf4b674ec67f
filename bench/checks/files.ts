// Benchmark of `bulwark check files`: hashes a generated tree of at least 500 MB with our baseline
// and with `aide --init` (sha256-only rule), prints MB/s of each and the ratio (aim ≥ 1.0), then
// changes a few files and checks that both tools detect the same changes. The tree is deleted after.
import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync, randomFillSync, sign, verify } from "node:crypto";
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compareBaseline, createBaseline } from "../../src/checks/files/index.ts";
import type { Signer } from "../../src/crypto/signer.ts";
import { systemClock } from "../../src/lib/clock.ts";

/** The tree: [count, size] per class, about 539 MB (514 MiB) in all, spread over sub-directories. */
const CLASSES: ReadonlyArray<readonly [number, number]> = [
  [4, 64 << 20],
  [32, 4 << 20],
  [256, 256 << 10],
  [4096, 16 << 10],
  [2000, 1 << 10],
];
const RUNS = 2;

function benchSigner(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    keyId: "sk_bench",
    sign: (d) => new Uint8Array(sign(null, d, privateKey)),
    verify: (id, d, s) => id === "sk_bench" && verify(null, d, publicKey, s),
    keyTimes: (id) => (id === "sk_bench" ? { createdAt: 0, retiredAt: null } : null),
  };
}

function buildTree(tree: string): { files: number; bytes: number } {
  const block = Buffer.allocUnsafe(64 << 20);
  randomFillSync(block);
  let files = 0;
  let bytes = 0;
  CLASSES.forEach(([count, size], c) => {
    for (let i = 0; i < count; i++) {
      const dir = join(tree, `class${c}`, `d${i % 16}`);
      mkdirSync(dir, { recursive: true });
      const data = Buffer.from(block.subarray(0, size));
      // A distinct prefix per file, so no two files share a hash.
      randomFillSync(data, 0, Math.min(32, size));
      writeFileSync(join(dir, `f${i}.bin`), data);
      files++;
      bytes += size;
    }
  });
  return { files, bytes };
}

function aideAvailable(): string | null {
  const r = spawnSync("aide", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return null;
  return /AIDE ([\d.]+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? "unknown";
}

function writeAideConf(dir: string, tree: string, workers: number): string {
  const conf = join(dir, `aide-${workers}.conf`);
  writeFileSync(
    conf,
    [
      `database_in=file:${join(dir, "aide.db")}`,
      `database_out=file:${join(dir, "aide.db.new")}`,
      "gzip_dbout=no",
      `num_workers=${workers}`,
      "report_format=json",
      "report_url=stdout",
      "R = sha256+p+u+g+s+m+c+i+n",
      `${tree} R`,
      "",
    ].join("\n"),
  );
  return conf;
}

function best(times: number[]): number {
  return Math.min(...times);
}

interface Detected {
  added: string[];
  removed: string[];
  changed: string[];
}

function show(d: Detected): string {
  return `added ${d.added.length}, removed ${d.removed.length}, changed ${d.changed.length}`;
}

/** Runs the benchmark and prints its results. */
export default async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-bench-files-"));
  const tree = join(dir, "tree");
  try {
    process.stdout.write(`files: building the tree in ${tree}…\n`);
    const { files, bytes } = buildTree(tree);
    const mb = bytes / 1e6;
    process.stdout.write(`files: ${files} files, ${mb.toFixed(0)} MB (page cache warm for both tools)\n`);
    const signer = benchSigner();
    const baseline = join(dir, "bulwark.baseline");

    const ours: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      await createBaseline({ paths: [tree], out: baseline, signer, clock: systemClock });
      ours.push((performance.now() - t) / 1000);
    }
    const oursRate = mb / best(ours);
    process.stdout.write(`files: bulwark baseline   ${best(ours).toFixed(2)} s  ${oursRate.toFixed(0)} MB/s (best of ${RUNS}, in-process)\n`);

    const aideVersion = aideAvailable();
    let aideRate: number | null = null;
    if (aideVersion === null) {
      process.stdout.write("files: *** aide is NOT INSTALLED: no comparison (apt-get install aide) ***\n");
    } else {
      for (const workers of [1, 2]) {
        const conf = writeAideConf(dir, tree, workers);
        const times: number[] = [];
        for (let i = 0; i < RUNS; i++) {
          const t = performance.now();
          execFileSync("aide", ["--init", "-c", conf], { stdio: "ignore" });
          times.push((performance.now() - t) / 1000);
        }
        const rate = mb / best(times);
        if (workers === 1) aideRate = rate;
        process.stdout.write(
          `files: aide ${aideVersion} --init ${workers === 1 ? "(default, 1 worker)" : "(num_workers=2)    "} ${best(times).toFixed(2)} s  ${rate.toFixed(0)} MB/s  → ratio ${(oursRate / rate).toFixed(2)}\n`,
        );
      }
      process.stdout.write(`files: ratio bulwark/aide = ${(oursRate / (aideRate as number)).toFixed(2)} (aim ≥ 1.0)\n`);
      renameSync(join(dir, "aide.db.new"), join(dir, "aide.db"));
    }

    // The same changes for both tools: content, permissions, time only, removal, addition.
    appendFileSync(join(tree, "class0/d0/f0.bin"), "tampered");
    writeFileSync(join(tree, "class3/d5/f5.bin"), "replaced content");
    chmodSync(join(tree, "class2/d1/f1.bin"), 0o4755);
    utimesSync(join(tree, "class4/d2/f2.bin"), new Date("2020-01-01"), new Date("2020-01-01"));
    unlinkSync(join(tree, "class1/d3/f3.bin"));
    writeFileSync(join(tree, "class4/d7/planted.bin"), "new");

    const r = await compareBaseline({ baseline, signer });
    const pathsOf = (id: string): string[] =>
      r.findings.filter((f) => f.id === id).flatMap((f) => (f.evidence["entries"] as Array<{ path: string }>).map((e) => e.path));
    const isDir = (p: string): boolean => /\/(class\d|d\d+|tree)$/.test(p);
    const oursFound: Detected = { added: pathsOf("files.added"), removed: pathsOf("files.removed"), changed: pathsOf("files.changed") };
    process.stdout.write(`files: bulwark compare: ${show(oursFound)}\n`);
    if (aideVersion !== null) {
      const out = spawnSync("aide", ["--check", "-c", writeAideConf(dir, tree, 1)], { encoding: "utf8", maxBuffer: 64 << 20 });
      const report = JSON.parse(out.stdout) as { added?: Record<string, string>; removed?: Record<string, string>; changed?: Record<string, string> };
      // aide also lists directories whose mtime moved because an entry was added or removed; Bulwark
      // reports those entries themselves and ignores directory times, so directories are left out.
      const files = (o: Record<string, string> | undefined): string[] => Object.keys(o ?? {}).filter((p) => !isDir(p));
      const aideFound: Detected = { added: files(report.added), removed: files(report.removed), changed: files(report.changed) };
      process.stdout.write(`files: aide --check:      ${show(aideFound)}\n`);
      const same = (a: string[], b: string[]): boolean => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
      const agree = same(oursFound.added, aideFound.added) && same(oursFound.removed, aideFound.removed) && same(oursFound.changed, aideFound.changed);
      process.stdout.write(`files: same changes detected: ${agree ? "yes" : "NO"}\n`);
      if (!agree) process.stdout.write(`files: bulwark ${JSON.stringify(oursFound)}\nfiles: aide    ${JSON.stringify(aideFound)}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
