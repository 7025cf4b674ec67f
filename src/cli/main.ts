#!/usr/bin/env node
// Entry point of the `bulwark` command. It silences only the experimental warning of node:sqlite
// (an operator cannot act on it), then loads the program.
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
