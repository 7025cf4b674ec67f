// Questions asked on the terminal before a large or destructive step.
import { createInterface } from "node:readline";
import type { CliContext } from "./context.ts";

/**
 * Asks `question` on stderr and reads one line from stdin; true only for "yes" (any case, surrounding spaces
 * ignored). Callers ask only when stdin is a terminal, and otherwise require --yes.
 *
 * @example
 * if (!(await confirm(ctx, `Apply to ${n} users? Type "yes" to go on: `))) throw declined();
 */
export async function confirm(ctx: CliContext, question: string): Promise<boolean> {
  const rl = createInterface({ input: ctx.stdin, output: ctx.stderr });
  try {
    const answer = await new Promise<string>((resolve) => rl.question(question, resolve));
    return answer.trim().toLowerCase() === "yes";
  } finally {
    rl.close();
  }
}
