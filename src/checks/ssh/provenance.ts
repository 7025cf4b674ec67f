// Where an effective value comes from, in the words a finding gives the operator: the line sshd uses, the
// Match block around it, and the lines that set the option otherwise but that sshd ignores. A fix that says
// only "Set PasswordAuthentication no" sends a responder to add a line sshd skips, when a drop-in read through
// an earlier Include already set it (Ubuntu's 50-cloud-init.conf): the line to change is what they need.
import { excerpt } from "../../lib/terminal.ts";
import type { IgnoredLine, Source } from "./evaluate.ts";
import type { ConfigLine } from "./parser.ts";

type LineSource = Exclude<Source, { default: true }>;

/** Ignored lines named in one sentence, at most: the evidence lists them all. */
const MAX_NAMED_LINES = 3;

function at(place: ConfigLine): string {
  return `${place.file}:${place.line}`;
}

function fromLine(source: Source | undefined): source is LineSource {
  return source !== undefined && !("default" in source);
}

/** "/etc/ssh/sshd_config:41, in the Match block at /etc/ssh/sshd_config:40 (User deploy)". */
function lineName(source: LineSource): string {
  if (source.match === undefined || source.matchFile === undefined || source.matchLine === undefined) return at(source);
  return `${at(source)}, in the Match block at ${source.matchFile}:${source.matchLine} (${source.match})`;
}

/** "A, B and C", the list cut after MAX_NAMED_LINES. */
function enumerate(items: readonly string[]): string {
  const named = items.length > MAX_NAMED_LINES ? [...items.slice(0, MAX_NAMED_LINES), `${items.length - MAX_NAMED_LINES} more line(s)`] : [...items];
  return named.length === 1 ? (named[0] as string) : `${named.slice(0, -1).join(", ")} and ${named.at(-1) as string}`;
}

function setsTo(lines: readonly IgnoredLine[]): string {
  return enumerate(lines.map((l) => `${at(l)} sets ${l.keyword} to ${excerpt(l.value)}`));
}

/**
 * The sentence naming the line sshd takes a value from, or null for a compiled-in default. With `option`
 * (a finding about several options), the sentence names it: as written on the line, else as given.
 *
 * @example
 * setBy(source); // "Set by /etc/ssh/sshd_config.d/50-cloud-init.conf:1."
 * setBy(source, "ciphers"); // "Ciphers set by /etc/ssh/sshd_config:3."
 */
export function setBy(source: Source | undefined, option?: string): string | null {
  if (!fromLine(source)) return null;
  return `${option === undefined ? "Set" : `${source.keyword ?? option} set`} by ${lineName(source)}.`;
}

/**
 * Where to make the fix: the line sshd uses and, for each line that sets the option otherwise and that sshd
 * ignores, why it is ignored. When an ignored line comes after the Include that read the line sshd uses, moving
 * it above that Include works too. Null for a compiled-in default (no line to change).
 *
 * @example
 * whereToFix(source, ignored); // "/etc/ssh/sshd_config:6 sets PasswordAuthentication to no, but sshd keeps the first value, from
 * //   /etc/ssh/sshd_config.d/50-cloud-init.conf:1: change or remove that line, or put the setting before the Include at /etc/ssh/sshd_config:1."
 */
export function whereToFix(source: Source | undefined, ignored: readonly IgnoredLine[] = []): string | null {
  if (!fromLine(source)) return null;
  const used = lineName(source);
  const sentences: string[] = [];
  const first = ignored.filter((l) => l.reason === "first-value-wins");
  if (first.length > 0) {
    // The Include (in a file of an ignored global line, above it) through which sshd read the line it uses first.
    const include = source.includedAt?.find((inc) => first.some((l) => l.match === undefined && l.file === inc.file && l.line > inc.line));
    const move = include === undefined ? "" : `, or put the setting before the Include at ${at(include)}`;
    sentences.push(`${setsTo(first)}, but sshd keeps the first value, from ${used}: change or remove that line${move}.`);
  }
  const last = ignored.filter((l) => l.reason === "last-value-wins");
  if (last.length > 0) sentences.push(`${setsTo(last)}, but sshd keeps the last value, from ${used}: change or remove that line.`);
  const overridden = ignored.filter((l) => l.reason === "match-overrides");
  if (overridden.length > 0) {
    const block = source.matchFile === undefined || source.matchLine === undefined ? "a Match block" : `the Match block at ${source.matchFile}:${source.matchLine} (${source.match ?? ""})`;
    sentences.push(`${setsTo(overridden)}, but ${block} sets it again for its connections, at ${at(source)}: change or remove that line.`);
  }
  if (sentences.length === 0) {
    // The mistake this prevents: appending the setting at the end of the file, where sshd never looks again.
    return `Change ${source.keyword ?? "it"} at ${at(source)}, the line sshd uses (it keeps the first value it reads: a second line after it is ignored).`;
  }
  return sentences.join(" ");
}
