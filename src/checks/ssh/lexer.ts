// Splits one sshd_config line the way OpenSSH's servconf.c does: the keyword by strdelim() (whitespace
// or one "=", a double-quoted keyword allowed), the arguments by argv_split() (quotes, backslash escapes,
// "#" starting a token ends the line).
import { excerpt } from "../../lib/terminal.ts";

const WHITESPACE = " \t\r\n";

export interface Delimited {
  token: string;
  /** Index just after the token and its separators; -1 when the string ended inside the token (C's NULL). */
  next: number;
}

function skipWhitespace(s: string, i: number): number {
  while (i < s.length && WHITESPACE.includes(s[i] as string)) i++;
  return i;
}

/**
 * One token as OpenSSH's strdelim(): ends at whitespace, a double quote or "=". Returns null where
 * strdelim returns NULL (an unterminated quote, or nothing left).
 *
 * @example
 * strdelim("PermitRootLogin=no", 0); // { token: "PermitRootLogin", next: 16 }
 */
export function strdelim(s: string, pos: number): Delimited | null {
  if (pos < 0 || pos > s.length) return null;
  let i = pos;
  while (i < s.length && !(WHITESPACE + '"=').includes(s[i] as string)) i++;
  if (i >= s.length) return { token: s.slice(pos), next: -1 };
  if (s[i] === '"') {
    const close = s.indexOf('"', i + 1);
    if (close < 0) return null;
    return { token: s.slice(pos, i) + s.slice(i + 1, close), next: skipWhitespace(s, close + 1) };
  }
  const sawEquals = s[i] === "=";
  let next = skipWhitespace(s, i + 1);
  // Only one "=" may separate the keyword from its value ("Keyword = value", "Keyword=value").
  if (!sawEquals && s[next] === "=") next = skipWhitespace(s, next + 1);
  return { token: s.slice(pos, i), next };
}

/**
 * Splits arguments as OpenSSH's argv_split(s, terminate_on_comment=1). Returns null on an
 * unterminated quote (sshd: "invalid quotes").
 *
 * @example
 * argvSplit('"/etc/ssh/my banner" # note'); // ["/etc/ssh/my banner"]
 */
export function argvSplit(s: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === " " || c === "\t") {
      i++;
      continue;
    }
    if (c === "#") break;
    let quote = "";
    let arg = "";
    for (; i < s.length; i++) {
      const ch = s[i] as string;
      const nx = s[i + 1];
      if (ch === "\\") {
        if (nx === "'" || nx === '"' || nx === "\\" || (quote === "" && nx === " ")) {
          i++;
          arg += nx;
        } else {
          arg += ch;
        }
      } else if (quote === "" && (ch === " " || ch === "\t")) {
        break;
      } else if (quote === "" && (ch === '"' || ch === "'")) {
        quote = ch;
      } else if (quote !== "" && ch === quote) {
        quote = "";
      } else {
        arg += ch;
      }
    }
    out.push(arg);
    if (i >= s.length && quote !== "") return null;
  }
  return out;
}

/**
 * The lines of a file as sshd's load_server_config() hands them to the parser: each physical line loses its
 * leading blanks and is appended up to its length as a C string, so a NUL byte cuts the line there and drops
 * its newline as well: the next line is glued onto it ("AcceptEnv LANG\0\nPermitRootLogin no" is one
 * AcceptEnv line). Line numbers count the lines that result, as sshd's messages do.
 *
 * @example
 * configLines("AcceptEnv A\0x\nPermitRootLogin no\nPort 22\n"); // ["AcceptEnv APermitRootLogin no", "Port 22", ""]
 */
export function configLines(text: string): string[] {
  if (!text.includes("\0")) return text.split("\n");
  let joined = "";
  for (const physical of text.split(/(?<=\n)/)) {
    const line = physical.replace(/^[ \t\r]+/, "");
    const nul = line.indexOf("\0");
    joined += nul < 0 ? line : line.slice(0, nul);
  }
  return joined.split("\n");
}

export type SplitLine =
  | { kind: "empty" }
  | { kind: "directive"; keyword: string; rest: string; args: string[] }
  | { kind: "error"; message: string };

export interface SplitLineOptions {
  /**
   * How an error message quotes a token of the line. Default: a short excerpt in double quotes (`excerpt`):
   * a line of a file the configuration includes can be a line of any file (`Include /etc/shadow`), so an
   * error never echoes a whole line.
   */
  quote?: (token: string) => string;
}

/** The default `SplitLineOptions.quote`. */
export function quoteExcerpt(token: string): string {
  return `"${excerpt(token)}"`;
}

/**
 * Splits a whole configuration line into keyword and arguments (servconf.c process_server_config_line).
 *
 * @example
 * splitLine("  PasswordAuthentication   yes  # legacy"); // { kind: "directive", keyword: "PasswordAuthentication", args: ["yes"], ... }
 */
export function splitLine(raw: string, options: SplitLineOptions = {}): SplitLine {
  const quote = options.quote ?? quoteExcerpt;
  // C strings end at the first NUL byte; sshd never sees what follows it on the line.
  const nul = raw.indexOf("\0");
  let line = nul >= 0 ? raw.slice(0, nul) : raw;
  line = line.replace(/[ \t\r\n\f]+$/, "");
  if (line === "") return { kind: "empty" };
  let first = strdelim(line, 0);
  if (first !== null && first.token === "") first = strdelim(line, first.next);
  if (first === null || first.token === "" || first.token.startsWith("#")) return { kind: "empty" };
  if (first.next < 0 || first.next >= line.length) return { kind: "error", message: `no argument after keyword ${quote(first.token)}` };
  const rest = line.slice(first.next);
  const args = argvSplit(rest);
  if (args === null) return { kind: "error", message: "invalid quotes" };
  return { kind: "directive", keyword: first.token, rest, args };
}
