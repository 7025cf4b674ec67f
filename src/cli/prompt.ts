// Questions asked on the terminal before a large or destructive step.
import { createInterface } from "node:readline";
import type { CliContext } from "./context.ts";

/**
 * The gate before a large or destructive step: passes with --yes; otherwise asks `question` on a terminal and
 * passes only on "yes", and without a terminal refuses (nobody can answer, so --yes is required).
 *
 * @example
 * if (count > 100) await confirmOrRefuse(ctx, { yes: opts.yes, question: `Apply to ${count} users? Type "yes" to go on: `, noTerminal: () => needsYes(count), declined });
 */
export async function confirmOrRefuse(
  ctx: CliContext,
  options: { yes?: boolean | undefined; question: string; noTerminal: () => Error; declined: () => Error },
): Promise<void> {
  if (options.yes) return;
  if (!(ctx.stdin as { isTTY?: boolean }).isTTY) throw options.noTerminal();
  if (!(await confirm(ctx, options.question))) throw options.declined();
}

/** Asks `question` on stderr and reads one line from stdin; true only for "yes" (any case, surrounding spaces ignored). */
async function confirm(ctx: CliContext, question: string): Promise<boolean> {
  const rl = createInterface({ input: ctx.stdin, output: ctx.stderr });
  try {
    const answer = await new Promise<string>((resolve) => rl.question(question, resolve));
    return answer.trim().toLowerCase() === "yes";
  } finally {
    rl.close();
  }
}
