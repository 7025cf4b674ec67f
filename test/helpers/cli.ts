// Runs the `bulwark` CLI in a child process with the pinned Node, as a user would, or in this process (cheaper) for
// what happens before and around a command's work: option checks, refusals, output.
import { spawn, type ChildProcess } from "node:child_process";
import type { TestContext } from "node:test";
import { PassThrough, type Readable } from "node:stream";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";

export const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

/** The BULWARK_PUBLIC_URL CLI runs get unless a test sets it (or sets it undefined): the test HTTP fixture's origin. */
export const TEST_PUBLIC_URL = "https://bulwark.test";

/** The variables a spawned run does not inherit from the test's environment unless the test gives them (bulwark()). */
const NOT_INHERITED = ["BULWARK_DATA_DIR", "BULWARK_DATABASE_URL", "BULWARK_MASTER_KEY", "HOST", "PORT"] as const;

/**
 * The environment for the CLI run in this process on a test fixture's store: its data dir, or (`postgres`) its
 * PostgreSQL URL and master key; cheap password hashing, no clock-skew tolerance, no breach lookups, logs silent.
 *
 * @example
 * await bulwarkInProcess(["users", "create", "--email", a], fixtureCliEnv(fx.app.config.dataDir), stdin);
 */
export function fixtureCliEnv(dataDir: string, postgres?: { url: string; masterKey: string } | null): NodeJS.ProcessEnv {
  return {
    BULWARK_DATA_DIR: dataDir, BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
    BULWARK_MAX_CLOCK_SKEW_SECONDS: "0", BULWARK_BREACH_RANGE_URL: "", BULWARK_BREACH_FILE: "",
    ...(postgres ? { BULWARK_DATABASE_URL: postgres.url, BULWARK_MASTER_KEY: postgres.masterKey } : { BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "" }),
  };
}

/**
 * `bulwark users import FILE ARGS… --json` in this process on a fixture's store (fixtureCliEnv), `csv` written to a new
 * file in `dir` first; `report` is the parsed --json answer, null when stdout held none (a refusal).
 *
 * @example
 * const { code, report } = await importCSVOnFixture<ImportJSON>(fx.app.config.dataDir, files, "email\nana@example.org\n", ["--dry-run"]);
 */
export async function importCSVOnFixture<T>(dataDir: string, dir: string, csv: string, args: string[] = []): Promise<{ code: number; report: T | null; stderr: string; file: string }> {
  const file = join(dir, `legacy-${++importedFiles}.csv`);
  writeFileSync(file, csv);
  const r = await bulwarkInProcess(["users", "import", file, "--json", ...args], fixtureCliEnv(dataDir));
  let report: T | null = null;
  try {
    report = JSON.parse(r.stdout) as T;
  } catch {
    report = null;
  }
  return { code: r.code, report, stderr: r.stderr, file };
}
let importedFiles = 0;

/**
 * Runs `bulwark ARGS` in this process (runCLI) with `env` set in process.env for the run, `stdin` (empty unless given); a spawned
 * process per case costs the suite about half a second. The variables bulwark() does not pass to a child (NOT_INHERITED:
 * the data dir, database URL, master key, HOST, PORT) are unset for the run unless `env` gives them.
 */
export async function bulwarkInProcess(args: string[], env: NodeJS.ProcessEnv = {}, stdin: Readable = new PassThrough()): Promise<{ code: number; stdout: string; stderr: string }> {
  const { runCLI } = await import("../../src/cli/program.ts");
  const [out, err] = [new PassThrough(), new PassThrough()];
  let [stdout, stderr] = ["", ""];
  out.on("data", (d: Buffer) => (stdout += d.toString()));
  err.on("data", (d: Buffer) => (stderr += d.toString()));
  // The site's address, as an operator's shell on the server holds it (commands that mail links refuse without it);
  // a test that wants it unset says BULWARK_PUBLIC_URL: undefined.
  env = "BULWARK_PUBLIC_URL" in env ? env : { ...env, BULWARK_PUBLIC_URL: TEST_PUBLIC_URL };
  // Tests decide the store: a data dir, database or key in the shell that runs the suite is not the command's unless
  // the test gives it (as bulwark() clears them for a child).
  env = { ...Object.fromEntries(NOT_INHERITED.map((k) => [k, undefined])), ...env };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    const code = await runCLI(args, { stdout: out, stderr: err, stdin });
    return { code, stdout, stderr };
  } finally {
    process.exitCode = undefined;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * `bulwark ARGS` in this process, seeing what a spawned run (bulwark()) would: `env` over this process's environment
 * without the variables bulwark() clears, standard input `input` (or nothing) and then closed. About 0.4 s of CPU
 * cheaper than a child: for a test about what a command does, not about its process (signals, a hang, exit on a closed
 * pipe, inherited environment, calls at the same time). The command's log lines are in the result's stderr (or stdout,
 * for `serve`), as a child's would be: runCLI writes them to the streams it is handed.
 *
 * @example
 * const r = await bulwarkHere(["contain", "lock-accounts", "--all", "--dry-run", "--json"], { env });
 */
export async function bulwarkHere(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string | Buffer } = {}): Promise<CLIResult> {
  const stdin = new PassThrough();
  stdin.end(options.input ?? "");
  return { ...(await bulwarkInProcess(args, options.env ?? {}, stdin)), signal: null };
}

export interface CLIResult {
  code: number | null;
  /** The signal that ended the child: SIGKILL when `limitMs` ran out (the command hung), else null. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** What a spawned `bulwark` gets as its standard input. */
export type CLIStdin =
  /** Written whole, then closed ("" when nothing is given). */
  | { input: string | Buffer }
  /** A pipe never written to nor closed: a command that waits for input hangs (and `limitMs` ends it). */
  | "open"
  /** The file, as `< FILE` gives it (a descriptor on the file, not a pipe). */
  | { file: string };

/**
 * Runs `bulwark ARGS`. Standard input: `input` written then closed (bytes as given when a Buffer), or `stdin` (CLIStdin);
 * `stdout` may name a file descriptor to hand the child as its stdout (e.g. one opened on /dev/full), and then
 * `stdout` of the result is "". `limitMs` is a safety net, not an assertion on time: a child still running then is
 * killed with SIGKILL, and the result's `signal` says so (a test asserts it is null: the command ended on its own).
 * Output is decoded as UTF-8 once, whole.
 */
export function bulwark(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string | Buffer; stdin?: CLIStdin; stdout?: number; limitMs?: number } = {}): Promise<CLIResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...options.env };
    // Tests decide the environment: nothing leaks in from the developer's shell.
    for (const key of NOT_INHERITED) {
      if (!options.env || !(key in options.env)) delete env[key];
    }
    // The site's address, as an operator's shell on the server holds it; BULWARK_PUBLIC_URL: undefined leaves it unset.
    if (!options.env || !("BULWARK_PUBLIC_URL" in options.env)) env["BULWARK_PUBLIC_URL"] = TEST_PUBLIC_URL;
    else if (options.env["BULWARK_PUBLIC_URL"] === undefined) delete env["BULWARK_PUBLIC_URL"];
    const stdin = options.stdin ?? { input: options.input ?? "" };
    const fd = typeof stdin === "object" && "file" in stdin ? openSync(stdin.file, "r") : null;
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...args], {
      env, cwd: options.cwd, stdio: [fd ?? "pipe", options.stdout ?? "pipe", "pipe"],
      ...(options.limitMs === undefined ? {} : { timeout: options.limitMs, killSignal: "SIGKILL" as const }),
    });
    if (fd !== null) closeSync(fd);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    // stderr is always a pipe here (the typings cannot tell, as stdout may be a descriptor).
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
    if (typeof stdin === "object" && "input" in stdin) child.stdin!.end(stdin.input);
  });
}

/** A fresh, initialised data dir to run the CLI against, with helpers to write input files and read rows. */
export interface CLISite {
  env: NodeJS.ProcessEnv;
  dir: string;
  run: (args: string[], input?: string | Buffer) => Promise<CLIResult>;
  /**
   * The same command run in this process (bulwarkInProcess), ~0.4 s of CPU cheaper than a spawned one: for a test
   * about what a command does, not about the process (signals, exit on a closed pipe, inherited environment, a
   * hang). Its log lines are in the result's stderr, as a child's would be; `signal` is always null.
   */
  runHere: (args: string[], input?: string | Buffer) => Promise<CLIResult>;
  file: (name: string, content: Buffer | string) => string;
  /** Runs a read-only query on the site's SQLite database. */
  rows: (sql: string) => Array<Record<string, unknown>>;
}

/**
 * Initialises a data dir under `dir` (cheap argon2: such tests are not about hash cost) and returns it; `here` runs
 * `bulwark init` in this process (runHere) rather than in a child.
 *
 * @example
 * const s = await initSite(join(root, "site-1"));
 * await s.run(["users", "import", s.file("in.csv", "email\nana@example.org\n")]);
 */
export async function initSite(dir: string, options: { here?: boolean } = {}): Promise<CLISite> {
  const env = { BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
  const runHere = (args: string[], input?: string | Buffer): Promise<CLIResult> => bulwarkHere(args, { env, ...(input !== undefined ? { input } : {}) });
  const init = options.here ? await runHere(["init"]) : await bulwark(["init"], { env });
  if (init.code !== 0) throw new Error(`bulwark init failed (${init.code}): ${init.stderr}`);
  return {
    env,
    dir,
    run: (args, input) => bulwark(args, { env, ...(input !== undefined ? { input } : {}) }),
    runHere,
    file: (name, content) => {
      const path = join(dir, name);
      writeFileSync(path, content);
      return path;
    },
    rows: (sql) => {
      const db = new DatabaseSync(join(dir, "data", "bulwark.db"), { readOnly: true });
      try {
        return (db.prepare(sql).all() as Array<Record<string, unknown>>).map((r) => ({ ...r }));
      } finally {
        db.close();
      }
    },
  };
}

/** A spawned `bulwark serve` (serveProcess): the child, when it exits, and what it has written to stderr so far. */
export interface ServedProcess {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/**
 * Starts `bulwark serve` as a deployment does (a process of its own, `env` only) and resolves once it listens; the
 * child is killed when the test ends if it is still running. Rejects, with its stderr, when it exits first.
 *
 * @example
 * const served = await serveProcess(t, env); served.child.kill("SIGTERM"); await served.exited;
 */
export async function serveProcess(t: TestContext, env: NodeJS.ProcessEnv): Promise<ServedProcess> {
  const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, "serve"], { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("is listening on")) resolve();
    });
    void exited.then(({ code, signal }) => reject(new Error(`bulwark serve exited before listening (code ${code}, signal ${signal}): ${stderr}`)));
  });
  return { child, exited, stderr: () => stderr };
}
