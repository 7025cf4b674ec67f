// Helpers shared by CLI commands: run an action with Bulwark's exit-code contract, print JSON,
// read stdin, find or create a command group, draw a progress bar on a TTY.
import type { Command } from "commander";
import { InputError, isBulwarkError } from "../lib/errors.ts";
import { shellActor } from "../lib/os-user.ts";
import { escapeControls, inertJSON } from "../lib/terminal.ts";
import { storeBusyError } from "../store/errors.ts";
import type { CliContext } from "./context.ts";
import { canPromptHidden, readHiddenLine } from "./prompt.ts";
import { EXIT, type ExitCode } from "./exit-codes.ts";

/** Text to print, line by line, each with its control characters escaped (a stack trace, a line of output). */
export function escapedLines(text: string): string {
  return text.split("\n").map(escapeControls).join("\n");
}

/**
 * Maps a thrown error to an exit code and writes one clear line (never a stack for expected errors). Messages
 * quote input (a configuration keyword, a file name, a log field): their control characters are written as
 * \xNN, so the line cannot move the cursor, retitle the terminal or forge a line after it.
 */
export function reportError(ctx: CliContext, error: unknown): ExitCode {
  // A PostgreSQL lock or statement timeout, or SQLite's write lock held by another process: its transaction rolled back
  // whole, so it is the named "try again" failure (BULWARK_ERR_DB_BUSY, exit 3), not an internal error quoting the driver.
  error = storeBusyError(error) ?? error;
  if (isBulwarkError(error)) {
    ctx.stderr.write(`bulwark: ${escapeControls(error.message)}\n`);
    if (error.kind === "runtime" || error.kind === "unavailable") {
      if (process.env["BULWARK_DEBUG"] && error.cause) ctx.stderr.write(`${escapedLines(String((error.cause as Error).stack ?? error.cause))}\n`);
      return EXIT.runtime;
    }
    return EXIT.usage;
  }
  const err = error as Error;
  // Standard output that could not take what a command waited on (writeFlushed, a 'drain'): the unwrapped errors of a
  // write reaching here are stdout's (a file a command writes is named by its own error).
  if ((error as NodeJS.ErrnoException | null)?.syscall === "write") {
    ctx.stderr.write(`bulwark: cannot write to standard output (${escapeControls(String(err.message))})\n`);
    return EXIT.runtime;
  }
  ctx.stderr.write(`bulwark: internal error: ${escapeControls(String(err?.message ?? error))}\n`);
  if (process.env["BULWARK_DEBUG"]) ctx.stderr.write(`${escapedLines(err?.stack ?? "")}\n`);
  return EXIT.runtime;
}

/**
 * Wraps a command body: its return value (or 0) becomes the exit code; thrown errors are mapped
 * by kind (input/usage → 2, runtime → 3).
 *
 * @example
 * cmd.action(action(ctx, async (opts) => { ...; return EXIT.ok; }));
 */
export function action<A extends unknown[]>(
  ctx: CliContext,
  body: (...args: A) => Promise<ExitCode | void> | ExitCode | void,
): (...args: A) => Promise<void> {
  return async (...args: A): Promise<void> => {
    let code: ExitCode;
    try {
      code = (await body(...args)) ?? EXIT.ok;
    } catch (error) {
      code = reportError(ctx, error);
    }
    process.exitCode = code;
  };
}

/** Prints `value` as indented JSON; DEL and C1 controls in strings are escaped too (inertJSON), not only C0. */
export function writeJSON(ctx: CliContext, value: unknown): void {
  ctx.stdout.write(`${inertJSON(value, 2)}\n`);
}

/**
 * Writes one line of a command's human output. Lines quote input (a path from the environment, a file's name, a
 * source taken from it): their control characters are written as \xNN (escapeControls), so a planted name cannot
 * drive the operator's terminal (set its clipboard, erase a line) or forge a line; a newline in `line` still breaks it.
 */
export function writeLine(ctx: CliContext, line: string = ""): void {
  ctx.stdout.write(`${escapedLines(line)}\n`);
}

/**
 * Writes `text` and resolves once the stream has taken it (a file written, a pipe's reader handed it), rejecting when
 * it cannot: for output that must not be lost, such as a key printed once, written before the change it belongs to
 * commits.
 */
export function writeFlushed(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (error?: Error | null) => (error ? reject(error) : resolve()));
  });
}

/** Writes one line on stderr (a note beside the output: where it went, what the server listens on), escaped as writeLine does. */
export function writeNote(ctx: CliContext, line: string): void {
  ctx.stderr.write(`${escapedLines(line)}\n`);
}

/**
 * Who the audit log names for a command run from the shell: `cli:` and the OS account running it. Never $USER,
 * which whoever runs the command sets at will; the account is what init (src/app/open-app.ts) records too.
 */
export function cliActor(): string {
  return shellActor();
}

/** A repeatable option's parser: each occurrence is appended (commander's `.option(…, collect, [])`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Reads all of stdin as UTF-8. Bytes that are not UTF-8 are refused (`what` names the input in the message),
 * never replaced by U+FFFD: two different byte strings would read as the same text.
 */
export async function readStdin(ctx: CliContext, options: { what?: string; maxBytes?: number; tooLong?: () => Error } = {}): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of ctx.stdin) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    bytes += buffer.length;
    // Bounded as it is read: a password is a few bytes, and gigabytes piped in must not be held (or mistaken,
    // past the longest string V8 can make, for bytes that are not UTF-8).
    if (options.maxBytes !== undefined && bytes > options.maxBytes) {
      throw options.tooLong?.() ?? new InputError("BULWARK_ERR_USAGE", `${options.what ?? "stdin"} is longer than ${options.maxBytes} bytes`);
    }
    chunks.push(buffer);
  }
  try {
    // ignoreBOM: a leading U+FEFF is kept, as every other byte is.
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks));
  } catch (cause) {
    throw new InputError("BULWARK_ERR_USAGE", `${options.what ?? "stdin"} is not valid UTF-8`, { cause });
  }
}

/**
 * Reads a password from stdin for `hash new|verify` and `users create`: exactly as received (ASVS 6.2.8) but for
 * one trailing newline ("\n" or "\r\n"), which `echo` adds; from a terminal, asked for on stderr and read with echo
 * off (readHiddenLine). Refuses, with exit 2, bytes that are not UTF-8, an
 * empty password (`ifEmpty` tells the operator what to do instead) and what `passwords.hash` would refuse: a
 * NUL or more than `maxBytes` bytes, with the same errors.
 */
export async function readPassword(ctx: CliContext, options: { maxBytes: number; ifEmpty: string }): Promise<string> {
  const { isPasswordText, PasswordNotTextError, PasswordTooLongError } = await import("../accounts/passwords/index.ts");
  const tooLong = (): Error => new PasswordTooLongError(options.maxBytes);
  let password: string;
  if (canPromptHidden(ctx)) {
    // Typed at a terminal: asked for, with echo off, so it stays off the screen, its scrollback and any recording.
    password = await readHiddenLine(ctx, "Password: ", { maxBytes: options.maxBytes, tooLong });
    if (password === "") throw new InputError("BULWARK_ERR_USAGE", `no password was typed (it is empty); ${options.ifEmpty}`);
  } else {
    // Room for the trailing "\r\n" that is stripped below.
    const text = await readStdin(ctx, { what: "the password on stdin", maxBytes: options.maxBytes + 2, tooLong });
    password = text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text;
    if (password === "") throw new InputError("BULWARK_ERR_USAGE", `no password on stdin (it is empty); ${options.ifEmpty}`);
  }
  if (!isPasswordText(password)) throw new PasswordNotTextError();
  if (Buffer.byteLength(password, "utf8") > options.maxBytes) throw new PasswordTooLongError(options.maxBytes);
  return password;
}

/** Returns the subcommand `name` of `program`, creating it with `description` if needed. */
export function group(program: Command, name: string, description: string): Command {
  const existing = program.commands.find((c) => c.name() === name);
  if (existing) return existing;
  return program.command(name).description(description);
}

export interface Progress {
  update(done: number, total?: number): void;
  done(): void;
}

/** A progress bar on stderr, drawn only when stderr is a TTY (DESIGN.md); otherwise silent. */
export function progress(ctx: CliContext, label: string, total: number): Progress {
  if (!ctx.stderrIsTTY) return { update: () => {}, done: () => {} };
  const started = Date.now();
  let last = 0;
  let currentTotal = total;
  const draw = (done: number): void => {
    const width = 30;
    const ratio = currentTotal > 0 ? Math.min(1, done / currentTotal) : 1;
    const filled = Math.round(ratio * width);
    const elapsed = (Date.now() - started) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const eta = rate > 0 ? Math.max(0, (currentTotal - done) / rate) : 0;
    ctx.stderr.write(
      `\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${currentTotal} ${rate.toFixed(0)}/s ETA ${eta.toFixed(0)}s `,
    );
  };
  return {
    update(done: number, newTotal?: number): void {
      if (newTotal !== undefined) currentTotal = newTotal;
      const now = Date.now();
      if (now - last < 100 && done < currentTotal) return;
      last = now;
      draw(done);
    },
    done(): void {
      ctx.stderr.write("\n");
    },
  };
}
