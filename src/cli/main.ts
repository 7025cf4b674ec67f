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

// Standard output that cannot take what is written: a reader that went away (EPIPE: `| head`, `grep -q`, a `tee` or log
// shipper that died) or lost output (a full disk, an I/O error). While a command runs, this never ends the process: it
// exited at once with `process.exitCode ?? 0`, so `contain lock-accounts --all --yes | tee -a incident.log` whose tee
// had died exited 0 with the job created and nothing done. The rest of the output is dropped and the command finishes
// its work; a command whose product is the output itself sees the failure where it waits for it (writeFlushed: a
// generated password, a printed master key, never committed unless stdout took them; `audit export`, `tail -f` stop).
// Then: a reader that went away is not an error of ours, the exit code is the command's own; output lost otherwise
// turns an exit 0 or 1 into 3 with one line (1 would send a script to read a report that is not there).
let returned = false;
let lost = null as NodeJS.ErrnoException | null; // set by the handler below
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (returned) {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
    process.stderr.write(`bulwark: cannot write to standard output (${error.message})\n`);
    process.exit(EXIT.runtime);
  }
  if (error.code !== "EPIPE") lost ??= error;
});
// Nothing can be reported when stderr itself fails: exit 3 rather than crash with exit 1.
process.stderr.on("error", () => process.exit(EXIT.runtime));

const { runCLI } = await import("./program.ts");
const code = await runCLI(process.argv.slice(2));
returned = true;
if (lost !== null && (code === EXIT.ok || code === EXIT.fails)) {
  process.stderr.write(`bulwark: cannot write to standard output (${lost.message})\n`);
  process.exitCode = EXIT.runtime;
} else {
  process.exitCode = code;
}
