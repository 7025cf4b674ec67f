// `npm test`: runs every test file with node:test, sharing one V8 compile cache between the processes the suite
// starts (a test process per file, and the `bulwark` CLI that many tests spawn). Each of those would otherwise
// strip and compile the same TypeScript modules again: the cache took the suite from 12.5 to 10.3 minutes on a
// 2-core machine. The cache lives in a private temporary directory made for this run and removed after it.
// Three files at a time on two cores: a third of the CPU sat idle at two (tests waiting on child processes,
// PostgreSQL start-up, fsync, the browser); three took the suite from 10.3 to 7.8 minutes, with no test failing.
// Temporary files go to a memory-backed filesystem when the machine has one with room (/dev/shm as tmpfs, 4 GiB
// free or more) and the caller did not set TMPDIR: the tests' databases, PostgreSQL clusters, data dirs and
// scratch trees are created, synced and removed by the thousand. On the 2-core CI machine (ext4 /tmp) the suite
// took about two minutes less (ADR 0007, amended 2026-12-06). The temp dir it would otherwise have used is passed
// on as BULWARK_TEST_DISK_TMPDIR for the tests whose subject judges paths under /dev (test/helpers/scratch.ts).
// PostgreSQL tests start a private cluster per test file; the runner gives them a directory of its own
// (BULWARK_TEST_RUN_DIR) where the first cluster leaves a copy of the data directory `initdb` made, and the others start
// from a copy of that copy (test/helpers/postgres.ts): `initdb` costs ~0.7 s of CPU, the copy ~0.07 s, about 135 times.
// Extra arguments are options for `node --test`, put before the file patterns (e.g. `npm test -- --test-reporter=tap`).
import { spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TMPFS_MAGIC = 0x01021994;

/** /dev/shm when it is a writable tmpfs with 4 GiB free or more and the caller did not choose a TMPDIR; else null. */
function memoryTmp(): string | null {
  if (process.env["TMPDIR"]) return null;
  try {
    const fs = statfsSync("/dev/shm");
    if (fs.type !== TMPFS_MAGIC || fs.bavail * fs.bsize < 4 * 2 ** 30) return null;
    accessSync("/dev/shm", constants.W_OK | constants.X_OK);
    return "/dev/shm";
  } catch {
    return null;
  }
}

const memory = memoryTmp();
const env = memory ? { ...process.env, TMPDIR: memory, BULWARK_TEST_DISK_TMPDIR: tmpdir() } : { ...process.env };
const cache = mkdtempSync(join(memory ?? tmpdir(), "bulwark-test-compile-cache-"));
const runDir = mkdtempSync(join(memory ?? tmpdir(), "bulwark-test-run-"));
const cleanUp = (): void => {
  rmSync(cache, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
};
const child = spawn(
  process.execPath,
  ["--disable-warning=ExperimentalWarning", "--test", "--test-concurrency=3", "--test-timeout=600000", ...process.argv.slice(2), "src/**/*.test.ts", "test/**/*.test.ts"],
  { stdio: "inherit", env: { ...env, NODE_COMPILE_CACHE: cache, BULWARK_TEST_RUN_DIR: runDir } },
);
// Ctrl-C reaches the whole process group; the runner waits for its tests to stop, then cleans up.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("error", (error) => {
  cleanUp();
  console.error(`npm test: could not start the test runner: ${error.message}`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  cleanUp();
  process.exit(code ?? (signal ? 1 : 0));
});
