// Questions asked on the terminal before a large or destructive step.
import { createInterface } from "node:readline";
import { InputError } from "../lib/errors.ts";
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

/** A terminal's input stream as far as a hidden prompt needs it (tty.ReadStream). */
interface TerminalInput {
  isTTY?: boolean;
  isRaw?: boolean;
  setRawMode?: (mode: boolean) => unknown;
}

/** Whether `ctx.stdin` is a terminal whose echo can be turned off (a hidden prompt is possible). */
export function canPromptHidden(ctx: CliContext): boolean {
  const input = ctx.stdin as TerminalInput;
  return input.isTTY === true && typeof input.setRawMode === "function";
}

/**
 * Asks `question` on stderr and reads one line from the terminal with echo off (raw mode), as passwd and ssh do:
 * what is typed never reaches the screen, its scrollback or a session recording. Backspace deletes a character,
 * Ctrl-U the line; Enter or Ctrl-D ends it; Ctrl-C cancels (InputError). Other control keys and the escape sequences
 * of arrow and function keys are ignored, not taken as text. Past `maxBytes` bytes of UTF-8, `tooLong()` is thrown.
 * The terminal's mode is restored whatever happens.
 */
export async function readHiddenLine(ctx: CliContext, question: string, options: { maxBytes: number; tooLong: () => Error }): Promise<string> {
  const input = ctx.stdin as NodeJS.ReadableStream & TerminalInput;
  const wasRaw = input.isRaw === true;
  input.setRawMode?.(true);
  ctx.stderr.write(question);
  const decoder = new TextDecoder("utf-8");
  let text = "";
  try {
    return await new Promise<string>((resolve, reject) => {
      let inEscape = false;
      const finish = (error: Error | null): void => {
        input.off("data", onData);
        input.off("end", onEnd);
        input.pause();
        if (error) reject(error);
        else resolve(text);
      };
      const onEnd = (): void => finish(null);
      const onData = (chunk: Buffer | string): void => {
        const decoded = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
        for (const c of decoded) {
          const code = c.codePointAt(0) as number;
          if (inEscape) {
            // ESC [ … final, ESC O final: skip to the sequence's final byte (0x40–0x7e), the introducer excepted.
            if ((c === "[" || c === "O") && inEscape === true) continue;
            if (code >= 0x40 && code <= 0x7e) inEscape = false;
            continue;
          }
          if (c === "\r" || c === "\n" || code === 0x04) return finish(null);
          if (code === 0x03) return finish(new InputError("BULWARK_ERR_CANCELLED", "cancelled (Ctrl-C): no password was read"));
          if (code === 0x7f || code === 0x08) {
            text = Array.from(text).slice(0, -1).join("");
            continue;
          }
          if (code === 0x15) {
            text = "";
            continue;
          }
          if (code === 0x1b) {
            inEscape = true;
            continue;
          }
          if (code < 0x20 && c !== "\t") continue;
          text += c;
          if (Buffer.byteLength(text, "utf8") > options.maxBytes) return finish(options.tooLong());
        }
      };
      input.on("data", onData);
      input.on("end", onEnd);
      input.resume();
    });
  } finally {
    input.setRawMode?.(wasRaw);
    // Enter was not echoed either: the next output starts on a line of its own.
    ctx.stderr.write("\n");
  }
}
