#!/usr/bin/env node
// Entry point of the `bulwark` command. It silences only the experimental warning of node:sqlite
// (an operator cannot act on it), then loads the program.
import { availableParallelism } from "node:os";

// argon2 (logins, `users migrate-hashes`) runs on the libuv thread pool, 4 threads by default: on a
// machine with more cores they would idle. libuv reads this once, at the pool's first use (later
// than here); an operator's own setting wins.
process.env["UV_THREADPOOL_SIZE"] ??= String(Math.max(4, availableParallelism()));
process.removeAllListeners("warning");
process.on("warning", (warning: Error) => {
  if (warning.name === "ExperimentalWarning" && /SQLite/i.test(warning.message)) return;
  process.stderr.write(`${warning.name}: ${warning.message}\n`);
});

// A reader that goes away (`bulwark … | head`) is not an error of ours: stop quietly, as Unix tools do.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

const { runCLI } = await import("./program.ts");
process.exitCode = await runCLI(process.argv.slice(2));
