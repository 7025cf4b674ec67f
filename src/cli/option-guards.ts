// Refuses, for every command, an option value that is empty or only white space and a single-value option given
// twice: commander accepts both, and the commands used to read "" as "not given" (widening a containment scope, or
// ignoring --data-dir) and to keep the last of two values without a word.
import type { Command, Option } from "commander";
import { InputError } from "../lib/errors.ts";
import { collect } from "./run.ts";

function usage(message: string): InputError {
  return new InputError("BULWARK_ERR_USAGE", message);
}

/** Repeatable options are the variadic ones and those that collect every occurrence (run.ts `collect`). */
function repeatable(option: Option): boolean {
  return option.variadic || option.parseArg === collect;
}

/**
 * Installs the guards on `command` and on every subcommand under it. They run as each option is read, before any
 * action, so the command does nothing; the error names the option as typed.
 *
 * @example
 * guardOptions(program); // `--last-login-before ""` → "--last-login-before is empty; give a value or leave the option out"
 */
export function guardOptions(command: Command): void {
  for (const option of command.options) {
    // Flags take no value; `--x [value]` without one arrives as null and means the flag form.
    if (!option.required && !option.optional) continue;
    const flag = option.long ?? option.short ?? option.flags;
    let seen = false;
    command.on(`option:${option.name()}`, (value: string | null) => {
      if (typeof value === "string" && value.trim() === "") {
        throw usage(`${flag} is empty${value === "" ? "" : " (only white space)"}; give a value or leave the option out`);
      }
      if (seen && !repeatable(option)) throw usage(`${flag} is given twice; give it once`);
      seen = true;
    });
  }
  command.commands.forEach(guardOptions);
}
