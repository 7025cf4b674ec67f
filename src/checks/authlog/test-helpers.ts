// For tests: one file's lines through the analyzer, numbered from 1.
import { AuthLogAnalyzer } from "./analyzer.ts";
import type { AuthLogOptions, AuthLogResult } from "./types.ts";

/**
 * Analyzes `lines` as the one file "auth.log" and returns the result.
 *
 * @example
 * analyzeLines(["Nov 21 04:00:00 web sshd[1]: Failed password for root from 198.51.100.7 port 22 ssh2"], { referenceMs: Date.UTC(2026, 10, 22) });
 */
export function analyzeLines(lines: Iterable<string>, options: Partial<AuthLogOptions> & { referenceMs: number }): AuthLogResult {
  const a = new AuthLogAnalyzer(options);
  a.beginFile("auth.log");
  let n = 0;
  for (const line of lines) a.line(line, ++n);
  return a.finish();
}
