#!/usr/bin/env node
// Entry point of the `bulwark` command. It silences only the experimental warning of node:sqlite
// (an operator cannot act on it), then loads the program.
import { availableParallelism } from "node:os";
import { EXIT } from "./exit-codes.ts";

// argon2 (logins, `users migrate-hashes`) runs on the libuv thread pool, 4 threads by default: on a
// machine with more cores they would idle. libuv reads this once, at the pool's first use (later
// than here); an operator's own setting wins.
process.env["UV_THREADPOOL_SIZE"] ??= String(Math.max(4, availableParallelism()));
process.removeAllListeners("warning");
process.on("warning", (warning: Error) => {
  if (warning.name === "ExperimentalWarning" && /SQLite/i.test(warning.message)) return;
  process.stderr.write(`${warning.name}: ${warning.message}\n`);
});

// A reader that goes away (`bulwark … | head`) is not an error of ours: stop quietly, as Unix tools do. Any other
// write error (a full disk, an I/O error) is a runtime failure, exit 3: left to throw, it printed a stack trace and
// exited 1, which for `audit verify` means "the chain is broken". Output that cannot be written is lost, so stop now;
// a job cut short by this resumes as after a crash.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  process.stderr.write(`bulwark: cannot write to standard output (${error.message})\n`);
  process.exit(EXIT.runtime);
});
// Nothing can be reported when stderr itself fails: exit 3 rather than crash with exit 1.
process.stderr.on("error", () => process.exit(EXIT.runtime));

const { runCLI } = await import("./program.ts");
process.exitCode = await runCLI(process.argv.slice(2));
