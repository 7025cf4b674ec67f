// The project rule (ADR 0022): speed is measured in bench/, never asserted in a test. This file reads every test source
// and fails on a check that compares a measured duration: a difference of performance.now(), Date.now() or
// process.hrtime readings, or a name, property or array the same file assigned (or pushed) from one, compared in an
// assertion (assert, assert.ok, assert.equal(… < …, true) and the rest), in an `if` that fails the test, in an
// expect(…).toBeLessThan(…), or passed to a function of the file that compares its parameter in an assertion.
// Durations printed with t.diagnostic, or quoted in an assertion's message, are fine; so are deadlines on events
// (`within(promise, ms)`), which catch hangs, and loop deadlines that end a wait without failing the test.
// A heuristic over source text: its own cases below show what it catches and what it lets through.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const TEST_DIR = fileURLToPath(new URL(".", import.meta.url));
/** The repository's root: the suite runs the .test.ts files under test/ and under src/ (test/run.ts); both are read here. */
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A clock reading: performance.now(), Date.now(), process.hrtime.bigint(). */
const CLOCK = String.raw`(?:performance\.now\(\)|Date\.now\(\)|process\.hrtime\.bigint\(\))`;

/** Names holding one clock reading in `source` (`const started = performance.now()`, `last = Date.now()`; typed or not, `;` or not). */
function startNames(source: string): string[] {
  const declared = new RegExp(String.raw`(?:const|let|var)\s+(\w+)\s*(?::\s*[\w<>\[\]| ]+)?=\s*${CLOCK}\s*(?=;|$)`, "gm");
  const assigned = new RegExp(String.raw`(?:^|[^\w.$])(\w+)\s*=\s*${CLOCK}\s*(?=;|$)`, "gm");
  return [...new Set([...source.matchAll(declared), ...source.matchAll(assigned)].map((m) => m[1]!))];
}

/** A pattern for an elapsed time: a clock reading minus a start reading, or process.hrtime(start); never matches without one. */
function elapsedPattern(source: string): string {
  const starts = startNames(source);
  const hrtime = String.raw`process\.hrtime\(\s*\w+\s*\)`;
  return starts.length === 0 ? hrtime : String.raw`(?:${CLOCK}\s*-\s*(?:${starts.join("|")})\b|${hrtime})`;
}

/** Names and properties assigned from a difference of clock readings in `source` (`const took = performance.now() - t0`), and arrays it is pushed to. */
export function measuredNames(source: string): Set<string> {
  const names = new Set<string>();
  const clockDifference = String.raw`[^;\n]*${elapsedPattern(source)}`;
  for (const m of source.matchAll(new RegExp(String.raw`(?:const|let|var)\s+(\w+)\s*(?::\s*[\w<>\[\]| ]+)?=${clockDifference}`, "g"))) names.add(m[1]!);
  for (const m of source.matchAll(new RegExp(String.raw`\b(\w+)\s*:${clockDifference}`, "g"))) names.add(m[1]!);
  for (const m of source.matchAll(new RegExp(String.raw`\b(\w+)\s*(?:\+|-)?=${clockDifference}`, "g"))) names.add(m[1]!);
  for (const m of source.matchAll(new RegExp(String.raw`\b(\w+)\.(?:push|unshift)\(${clockDifference}`, "g"))) names.add(m[1]!);
  return names;
}

/** The text between the bracket at `open` and the one that closes it (quotes skipped); with `comma`, up to a depth-0 comma. */
function enclosed(source: string, open: number, comma: boolean): string {
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
    } else if (comma && c === "," && depth === 0) return source.slice(open + 1, i);
  }
  return source.slice(open + 1);
}

/** Drops string and template literals from `text`, so durations quoted in messages are not read as conditions. */
function withoutStrings(text: string): string {
  return text.replace(/`(?:\\.|[^`\\])*`|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'/g, '""');
}

const COMPARES = /[<>]=?/;
const EXPECT_COMPARES = /^\s*\.\s*(?:not\s*\.\s*)?(?:toBeLessThan|toBeGreaterThan|toBeLessThanOrEqual|toBeGreaterThanOrEqual|toBeWithin|toBeCloseTo)\b/;

/**
 * Where `source` checks a duration, as [index, condition] pairs: an assertion (assert(…), assert.ok/equal/strictEqual/…,
 * t.assert.…) whose arguments compare one, an `if` comparing one that fails the test (assert.fail, t.fail, throw), an
 * expect(one).toBeLessThan(…), or a call passing one to a function of the file that compares its parameter in an
 * assertion. `names`: the measured names; `elapsed`: the pattern of an elapsed time.
 */
function checks(source: string, names: ReadonlySet<string>, elapsed: string): Array<[number, string]> {
  const mentions = (text: string): boolean =>
    new RegExp(elapsed).test(text) || [...names].some((name) => new RegExp(String.raw`(?:^|[^\w.])${name}\b|\.${name}\b`).test(text));
  const compares = (text: string): boolean => COMPARES.test(text.replace(/=>/g, ""));
  const found: Array<[number, string]> = [];
  for (const m of source.matchAll(/\bassert(?:\.\w+)?\s*\(/g)) {
    // Every argument: assert.equal(took < 800, true) compares in its first, assert.equal(true, took < 800) in its second.
    const open = m.index + m[0].length - 1;
    const args = withoutStrings(enclosed(source, open, false));
    const first = withoutStrings(enclosed(source, open, true));
    if (compares(args) && mentions(args)) found.push([m.index, compares(first) && mentions(first) ? first : args]);
  }
  for (const m of source.matchAll(/\bif\s*\(/g)) {
    const open = m.index + m[0].length - 1;
    const condition = enclosed(source, open, false);
    const then = source.slice(open + condition.length + 2, open + condition.length + 120);
    const bare = withoutStrings(condition);
    if (/^\s*\{?\s*(?:(?:t\.)?assert\.fail|t\.fail|throw)\b/.test(then) && compares(bare) && mentions(bare)) found.push([m.index, bare]);
  }
  for (const m of source.matchAll(/\bexpect\s*\(/g)) {
    const open = m.index + m[0].length - 1;
    const subject = enclosed(source, open, false);
    if (EXPECT_COMPARES.test(source.slice(open + subject.length + 2)) && mentions(withoutStrings(subject))) found.push([m.index, `expect(${subject})`]);
  }
  return found;
}

/** Functions of `source` (declarations and arrow constants) that compare a parameter in an assertion: name → true. */
function comparingHelpers(source: string): Set<string> {
  const helpers = new Set<string>();
  const definitions = /(?:function\s+(\w+)\s*(?:<[^>]*>)?\s*\(|(?:const|let)\s+(\w+)\s*=\s*(?:async\s*)?\()/g;
  for (const m of source.matchAll(definitions)) {
    const open = m.index + m[0].length - 1;
    const params = enclosed(source, open, false);
    const names = new Set([...params.matchAll(/(?:^|,)\s*(?:\.\.\.)?(\w+)/g)].map((p) => p[1]!));
    const after = open + params.length + 2;
    const brace = source.indexOf("{", after);
    const arrow = /^\s*(?::\s*[^={]+)?=>\s*/.exec(source.slice(after));
    const body = arrow && source[after + arrow[0].length] !== "{"
      ? source.slice(after + arrow[0].length, source.indexOf("\n", after + arrow[0].length))
      : brace >= 0 ? enclosed(source, brace, false) : "";
    if (names.size > 0 && checks(body, names, "(?!)").length > 0) helpers.add((m[1] ?? m[2])!);
  }
  return helpers;
}

/** Each check of `source` that compares a measured duration, as "line N: text". */
export function timingAssertions(source: string): string[] {
  const names = measuredNames(source);
  const elapsed = elapsedPattern(source);
  const found = checks(source, names, elapsed);
  for (const helper of comparingHelpers(source)) {
    for (const m of source.matchAll(new RegExp(String.raw`(?:^|[^\w.])${helper}\s*\(`, "g"))) {
      const open = m.index + m[0].length - 1;
      const args = withoutStrings(enclosed(source, open, false));
      const mentions = new RegExp(elapsed).test(args) || [...names].some((name) => new RegExp(String.raw`(?:^|[^\w.])${name}\b|\.${name}\b`).test(args));
      if (mentions) found.push([m.index, `${helper}(${args})`]);
    }
  }
  return found.sort((a, b) => a[0] - b[0]).map(([index, text]) => `line ${source.slice(0, index).split("\n").length}: ${text.replace(/\s+/g, " ").trim().slice(0, 120)}`);
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
      // Written differently: another assert method, no semicolons, a typed start, hrtime, an array of gaps, an if that
      // fails the test, expect-style, and a helper of the file that compares its parameter.
      "const started = performance.now();\nconst took = performance.now() - started;\nassert.equal(took < 800, true);",
      "const started = performance.now()\nawait work()\nconst took = performance.now() - started\nassert.ok(took <= 800)",
      "const started: number = performance.now();\nconst took = performance.now() - started;\nassert.strictEqual(took < 800, true, 'fast');",
      "const t0 = process.hrtime.bigint();\nconst took = Number(process.hrtime.bigint() - t0) / 1e6;\nassert.ok(took < 800);",
      "let last = performance.now();\nconst gaps: number[] = [];\ngaps.push(performance.now() - last);\nlast = performance.now();\nassert.ok(Math.max(...gaps) < 1000, 'no stall');",
      "const started = Date.now();\nconst took = Date.now() - started;\nif (took > 800) assert.fail(`slow: ${took}`);",
      "const started = Date.now();\nconst took = Date.now() - started;\nif (took > 800) {\n  throw new Error('slow');\n}",
      "const started = Date.now();\nconst took = Date.now() - started;\nexpect(took).toBeLessThan(800);",
      "function quick(ms: number, what: string): void {\n  assert.ok(ms < 800, what);\n}\nconst started = Date.now();\nconst took = Date.now() - started;\nquick(took, 'the request');",
    ];
    for (const source of caught) assert.equal(timingAssertions(source).length, 1, `not caught: ${source}`);
    const allowed = [
      "const took = performance.now() - started;\nt.diagnostic(`took ${took} ms`);\nassert.equal(res.statusCode, 200, `answered after ${took} ms`);",
      "const ended = await within(exited, GRACE_MS);\nassert.notEqual(ended, 'timeout', `not within ${GRACE_MS} ms`);",
      "assert.ok(back.retryAfterMs >= before.retryAfterMs, 'the wait did not shrink');",
      "assert.ok(rows.length < 1000, `a transaction changed ${performance.now()} rows`);",
      "assert.ok(Math.abs(expires - (Date.now() + 8 * hour)) < 60_000, 'expires in eight hours');",
      "assert.ok(recorded <= Date.now() && recorded > Date.now() - 10 * MINUTE, 'a wall-clock stamp');",
      "const deadline = Date.now() + 5_000;\nwhile (Date.now() < deadline) await tick();\nassert.equal(state, 'done');",
      "const started = Date.now();\nfor (;;) { if (Date.now() - started > 10_000) break; await tick(); }\nassert.equal(state, 'done');",
      "function atMost(n: number, max: number): void {\n  assert.ok(n <= max);\n}\nconst started = Date.now();\nconst took = Date.now() - started;\nt.diagnostic(`took ${took}`);\natMost(rows.length, 500);",
    ];
    for (const source of allowed) assert.deepEqual(timingAssertions(source), [], `flagged: ${source}`);
  });

  it("no test file compares a measured duration in an assertion — test/ and src/ alike (was: src/**/*.test.ts never read, seven timed checks there)", () => {
    const offenders: string[] = [];
    const files = [...testFiles(TEST_DIR), ...testFiles(join(ROOT, "src")).filter((f) => f.endsWith(".test.ts"))]
      .filter((f) => !f.endsWith("no-timing-assertions.test.ts"));
    assert.ok(files.filter((f) => f.startsWith(join(ROOT, "src"))).length > 100, `control: the tests under src/ were found (${files.length} files in all)`);
    assert.ok(files.length > 250, `control: the test files were found (${files.length})`);
    for (const file of files) {
      for (const hit of timingAssertions(readFileSync(file, "utf8"))) offenders.push(`${relative(ROOT, file)} ${hit}`);
    }
    assert.deepEqual(offenders, [], "timing belongs in bench/ (ADR 0022); replace these with an observation of the mechanism");
  });
});
