// Builds the `bulwark` program: every file in ./commands/ registers one command group, so adding
// a command never means editing a shared list.
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import type { OpenedApp } from "../app/index.ts";
import { isBulwarkError } from "../lib/errors.ts";
import { escapeControls } from "../lib/terminal.ts";
import type { CliContext, CommandModule, OpenOptions } from "./context.ts";
import { EXIT, type ExitCode } from "./exit-codes.ts";
import { guardOptions } from "./option-guards.ts";
import { cliActor, reportError } from "./run.ts";

const VERSION = (createRequire(import.meta.url)("../../package.json") as { version: string }).version;

export interface RunOptions {
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream;
}

async function loadCommands(): Promise<CommandModule[]> {
  const dir = new URL("./commands/", import.meta.url);
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(ext) && !f.endsWith(`.test${ext}`) && !f.endsWith(".d.ts"))
    .sort();
  const modules: CommandModule[] = [];
  for (const file of files) {
    const mod = (await import(new URL(file, dir).href)) as { default?: CommandModule };
    if (mod.default && typeof mod.default.register === "function") modules.push(mod.default);
  }
  return modules;
}

// pino's levels; the configuration checks BULWARK_LOG_LEVEL against the same list.
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** Checks --log-level where it is parsed, so the message names the option (not BULWARK_LOG_LEVEL) and every command checks it. */
function parseLogLevel(value: string): string {
  // A blank value is left to guardOptions, so it gets the message every other option gets for one.
  if (value.trim() === "") return value;
  const level = value.trim().toLowerCase();
  if (!LOG_LEVELS.includes(level)) throw new InvalidArgumentError(`It must be one of ${LOG_LEVELS.join(", ")}.`);
  return level;
}

/**
 * Commander's error text with the value of an unknown option left out: `--password=SECRET` (or `-pSECRET`) was
 * refused as "unknown option '--password=SECRET'", the secret written to stderr and whatever collects it (ASVS
 * 16.2.5); `--password SECRET` never showed it. The option's name is kept, so the mistake is still plain.
 *
 * @example
 * withoutOptionValues("error: unknown option '--password=hunter2'"); // "error: unknown option '--password=…'"
 */
function withoutOptionValues(text: string): string {
  // Greedy to the line's last quote: a value may hold quotes of its own (commander puts any suggestion on the next line).
  return text.replace(/unknown option '(.*)'/g, (_whole, flag: string) => {
    const long = flag.startsWith("--");
    const name = long ? flag.split("=", 1)[0] as string : flag.slice(0, 2);
    return `unknown option '${name}${name.length < flag.length ? (long ? "=…" : "…") : ""}'`;
  });
}

/**
 * Commander's error text with its control characters written as \xNN, as reportError writes every other error: an
 * unknown option or command is quoted from argv, and argv is often a shell glob over a directory others can name
 * files in (`bulwark users import *.csv`), so a planted "--\x1b]52;c;…" would set the operator's clipboard or erase
 * the line. Newlines are escaped too (a planted name cannot forge a second line), but for the line break ending the
 * text and the one before commander's own "(Did you mean …?)", which names only our options.
 *
 * @example
 * inertCommanderError("error: unknown option '--\u001b[2K'\n"); // "error: unknown option '--\\x1b[2K'\n"
 */
function inertCommanderError(text: string): string {
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  // Anchored at the end: the suggestion follows the quoted input, so a look-alike inside the input is escaped.
  const suggestion = /\n\(Did you mean [^\n]*\?\)$/.exec(body);
  const quoted = suggestion ? body.slice(0, suggestion.index) : body;
  return `${escapeControls(quoted)}${suggestion ? suggestion[0] : ""}${body.length < text.length ? "\n" : ""}`;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function runCLI(argv: string[], options: RunOptions = {}): Promise<ExitCode> {
  const stdout = (options.stdout ?? process.stdout) as CliContext["stdout"];
  const stderr = (options.stderr ?? process.stderr) as CliContext["stderr"];
  // A caller that hands the program its own output streams (a test running the CLI in its process) gets the log
  // lines in them too, where a child's stderr (or stdout) would hold them; the command line logs to descriptors 2 (1).
  const ownStreams = options.stdout !== undefined || options.stderr !== undefined;
  let opened: Promise<OpenedApp> | undefined;
  let program!: Command;
  const open = (options: OpenOptions): Promise<OpenedApp> => {
    opened ??= import("../app/index.ts").then(async (m) => {
      const pino = (await import("pino")).default;
      const globals = program.opts<{ dataDir?: string; databaseUrl?: string; logLevel?: string }>();
      return m.openApp({
        env: process.env,
        mode: options.mode,
        // The actor of what opening records (init, migrations): the same as every command's own events.
        actor: cliActor(),
        overrides: {
          // Never empty here: guardOptions refuses `--data-dir ""`, which used to fall back to ./bulwark-data.
          ...(globals.dataDir !== undefined ? { dataDir: globals.dataDir } : {}),
          ...(globals.databaseUrl !== undefined ? { databaseURL: globals.databaseUrl } : {}),
          ...(globals.logLevel !== undefined ? { logLevel: globals.logLevel } : {}),
          ...(options.listen?.host !== undefined ? { host: options.listen.host } : {}),
          ...(options.listen?.port !== undefined ? { port: options.listen.port } : {}),
        },
        logDestination: ownStreams ? (options.logToStdout ? stdout : stderr) : pino.destination(options.logToStdout ? 1 : 2),
      });
    });
    return opened;
  };
  const ctx: CliContext = {
    stdout,
    stderr,
    stdin: (options.stdin ?? process.stdin) as CliContext["stdin"],
    stderrIsTTY: Boolean((stderr as { isTTY?: boolean }).isTTY),
    app: () => open({ mode: "open" }),
    open,
  };

  program = new Command("bulwark")
    .description("Account security and breach response: protect, detect, contain, notify, rehearse.")
    .version(VERSION, "-V, --version")
    .option("--data-dir <dir>", "data directory (default $BULWARK_DATA_DIR or ./bulwark-data)")
    .option("--database-url <url>", "PostgreSQL URL (default $BULWARK_DATABASE_URL; unset = embedded SQLite)")
    .option("--log-level <level>", `log level: ${LOG_LEVELS.join(", ")} (default $BULWARK_LOG_LEVEL or info)`, parseLogLevel)
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (s) => stdout.write(s),
      writeErr: (s) => stderr.write(s),
      // Escaped first, so an option value after a planted newline is still on the line withoutOptionValues cuts.
      outputError: (s, write) => write(withoutOptionValues(inertCommanderError(s))),
    });
  for (const mod of await loadCommands()) mod.register(program, ctx);
  guardOptions(program);
  // Every command and subcommand maps commander's own errors to exit 2 instead of commander's 1.
  const override = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(program);

  process.exitCode = undefined;
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    // Thrown while the options are read (guardOptions), before any action could report it.
    if (isBulwarkError(error)) return reportError(ctx, error);
    throw error;
  } finally {
    if (opened) await opened.then((app) => app.close()).catch(() => {});
  }
  return (typeof process.exitCode === "number" ? process.exitCode : EXIT.ok) as ExitCode;
}
