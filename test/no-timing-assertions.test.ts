// The project rule (ADR 0022): speed is measured in bench/, never asserted in a test. This file reads every test source
// and fails on an assertion whose condition compares a measured duration: a difference of performance.now() or
// Date.now() readings, or a name or property the same file assigned from one. Durations printed with t.diagnostic, or
// quoted in an assertion's message, are fine; so are deadlines on events (`within(promise, ms)`), which catch hangs.
// A heuristic over source text: its own cases below show what it catches and what it lets through.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const TEST_DIR = fileURLToPath(new URL(".", import.meta.url));

/** Names holding one clock reading in `source` (`const started = performance.now()`). */
function startNames(source: string): string[] {
  return [...source.matchAll(/(?:const|let|var)\s+(\w+)\s*=\s*(?:performance|Date)\.now\(\)\s*;/g)].map((m) => m[1]!);
}

/** A pattern for a clock reading minus a start reading (an elapsed time), or one that never matches. */
function elapsedPattern(source: string): string {
  const starts = startNames(source);
  return starts.length === 0 ? "(?!)" : String.raw`(?:performance|Date)\.now\(\)\s*-\s*(?:${starts.join("|")})\b`;
}

/** Names and properties assigned from a difference of clock readings in `source` (`const took = performance.now() - t0`). */
export function measuredNames(source: string): Set<string> {
  const names = new Set<string>();
  const clockDifference = String.raw`[^;\n]*${elapsedPattern(source)}`;
  for (const m of source.matchAll(new RegExp(String.raw`(?:const|let|var)\s+(\w+)\s*(?::\s*[\w<>\[\]| ]+)?=${clockDifference}`, "g"))) names.add(m[1]!);
  for (const m of source.matchAll(new RegExp(String.raw`\b(\w+)\s*:${clockDifference}`, "g"))) names.add(m[1]!);
  for (const m of source.matchAll(new RegExp(String.raw`\b(\w+)\s*(?:\+|-)?=${clockDifference}`, "g"))) names.add(m[1]!);
  return names;
}

/** The text of the first argument of the call whose "(" is at `open`, up to the comma or ")" that ends it at depth 0. */
function firstArgument(source: string, open: number): string {
  let depth = 0;
  let quote: string | null = null;
  for (let i = open + 1; i < source.length; i++) {
    const c = source[i]!;
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      if (depth === 0) return source.slice(open + 1, i);
      depth--;
    } else if (c === "," && depth === 0) return source.slice(open + 1, i);
  }
  return source.slice(open + 1);
}

/** Drops string and template literals from `text`, so durations quoted in messages are not read as conditions. */
function withoutStrings(text: string): string {
  return text.replace(/`(?:\\.|[^`\\])*`|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'/g, '""');
}

/** Each assertion of `source` whose condition compares a measured duration, as "line N: text". */
export function timingAssertions(source: string): string[] {
  const names = measuredNames(source);
  const elapsed = elapsedPattern(source);
  const found: string[] = [];
  for (const m of source.matchAll(/\bassert(?:\.ok)?\s*\(/g)) {
    const open = m.index + m[0].length - 1;
    const condition = withoutStrings(firstArgument(source, open));
    if (!/[<>]=?/.test(condition.replace(/=>/g, ""))) continue;
    const direct = new RegExp(elapsed).test(condition);
    const named = [...names].some((name) => new RegExp(String.raw`(?:^|[^\w.])${name}\b|\.${name}\b`).test(condition));
    if (direct || named) {
      const line = source.slice(0, m.index).split("\n").length;
      found.push(`line ${line}: ${condition.replace(/\s+/g, " ").trim().slice(0, 120)}`);
    }
  }
  return found;
}

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...testFiles(path));
    else if (entry.endsWith(".ts")) out.push(path);
  }
  return out;
}

describe("no timing assertions in tests (ADR 0022)", () => {
  it("the scanner catches a measured duration compared in an assertion's condition, and lets messages, diagnostics and deadlines through", () => {
    const caught = [
      "const started = performance.now();\nawait work();\nconst took = performance.now() - started;\nassert.ok(took < 800, `took ${took}`);",
      "const t0 = Date.now();\nawait work();\nassert.ok(Date.now() - t0 < 2_000, 'at once');",
      "const started = performance.now();\nconst answer = { value, ms: Math.round(performance.now() - started) };\nassert.ok(answer.value.statusCode !== 503 && answer.ms < bound, 'x');",
      "const started = Date.now();\nlet waited = 0;\nwaited = Date.now() - started;\nassert(waited >= 100);",
    ];
    for (const source of caught) assert.equal(timingAssertions(source).length, 1, `not caught: ${source}`);
    const allowed = [
      "const took = performance.now() - started;\nt.diagnostic(`took ${took} ms`);\nassert.equal(res.statusCode, 200, `answered after ${took} ms`);",
      "const ended = await within(exited, GRACE_MS);\nassert.notEqual(ended, 'timeout', `not within ${GRACE_MS} ms`);",
      "assert.ok(back.retryAfterMs >= before.retryAfterMs, 'the wait did not shrink');",
      "assert.ok(rows.length < 1000, `a transaction changed ${performance.now()} rows`);",
      "assert.ok(Math.abs(expires - (Date.now() + 8 * hour)) < 60_000, 'expires in eight hours');",
      "assert.ok(recorded <= Date.now() && recorded > Date.now() - 10 * MINUTE, 'a wall-clock stamp');",
    ];
    for (const source of allowed) assert.deepEqual(timingAssertions(source), [], `flagged: ${source}`);
  });

  it("no test file compares a measured duration in an assertion", () => {
    const offenders: string[] = [];
    const files = testFiles(TEST_DIR).filter((f) => !f.endsWith("no-timing-assertions.test.ts"));
    assert.ok(files.length > 100, `control: the test files were found (${files.length})`);
    for (const file of files) {
      for (const hit of timingAssertions(readFileSync(file, "utf8"))) offenders.push(`${relative(TEST_DIR, file)} ${hit}`);
    }
    assert.deepEqual(offenders, [], "timing belongs in bench/ (ADR 0022); replace these with an observation of the mechanism");
  });
});
