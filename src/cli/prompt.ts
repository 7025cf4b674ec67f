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

/**
 * Asks `question` on stderr and reads one line from stdin; true only for "yes" (any case, surrounding spaces ignored).
 * End of input (Ctrl-D) and Ctrl-C answer no: left unanswered, the question kept the command waiting on nothing,
 * and Node ended it with exit 13 and a warning instead of the refusal.
 */
async function confirm(ctx: CliContext, question: string): Promise<boolean> {
  const rl = createInterface({ input: ctx.stdin, output: ctx.stderr });
  try {
    const answer = await new Promise<string | null>((resolve) => {
      rl.once("close", () => resolve(null));
      rl.once("SIGINT", () => resolve(null));
      rl.question(question, resolve);
    });
    if (answer === null) ctx.stderr.write("\n"); // the refusal goes on its own line, not after the question
    return answer !== null && answer.trim().toLowerCase() === "yes";
  } finally {
    rl.close();
  }
}
