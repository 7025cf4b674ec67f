// What every CLI command receives: streams, TTY facts and a lazily opened Bulwark application.
import type { Readable, Writable } from "node:stream";
import type { Command } from "commander";
import type { App, OpenedApp } from "../app/index.ts";

export interface CliContext {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  /** True when stderr is a terminal: progress bars are drawn only then. */
  stderrIsTTY: boolean;
  /** Opens the configured Bulwark (config → database → keyring → audit) once, on first use. */
  app(): Promise<App>;
  /**
   * Opens Bulwark in another mode ("init" creates what is missing; "migrate" applies migrations). `listen` carries
   * a command's own --host/--port, which win over HOST/PORT and are named as options in configuration errors.
   */
  open(options: OpenOptions): Promise<OpenedApp>;
}

export interface OpenOptions {
  mode: "open" | "migrate" | "init";
  logToStdout?: boolean;
  listen?: { host?: string; port?: string };
}

/** A command group file under src/cli/commands/ default-exports one of these. */
export interface CommandModule {
  register(program: Command, ctx: CliContext): void;
}
