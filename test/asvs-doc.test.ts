// docs/asvs.md is the requirement-to-test matrix issue 4 asks for: every V6, V7 and V8 requirement of the selected
// ASVS list has a row, and every test a row cites exists under the name the row gives. Tests get renamed (an
// "attack: … (was: …)" name after a fix) and moved; a matrix citing tests that are gone proves nothing.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DOC = readFileSync(join(ROOT, "docs/asvs.md"), "utf8");
// The selected list lives beside the repository (../shared/asvs); a checkout without it skips that half.
const TSV = join(ROOT, "..", "shared", "asvs", "asvs-5.0.0-selected.tsv");

/** The table rows of the matrix, by requirement id. */
function rows(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of DOC.split("\n")) {
    const id = /^\| (\d+\.\d+\.\d+) \|/.exec(line)?.[1];
    if (id) out.set(id, line);
  }
  return out;
}

/**
 * The test names a source file declares as it writes them: string literals as they read (escaped quotes unescaped),
 * and template literals as patterns (each `${…}` matches anything).
 */
function declaredNames(source: string): { plain: string[]; patterns: RegExp[] } {
  const plain: string[] = [];
  const patterns: RegExp[] = [];
  for (const m of source.matchAll(/\b(?:it|test|describe)\(\s*"((?:[^"\\]|\\.)*)"/g)) plain.push((m[1] as string).replace(/\\(.)/g, "$1"));
  for (const m of source.matchAll(/\b(?:it|test|describe)\(\s*`((?:[^`\\]|\\.)*)`/g)) {
    const parts = (m[1] as string).split(/\$\{[^}]*\}/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    patterns.push(new RegExp(`^${parts.join(".*")}`));
  }
  return { plain, patterns };
}

/** Whether `cited` (a name as the matrix quotes it; a trailing "…" shortens it) is a test of `file`. */
function cites(names: { plain: string[]; patterns: RegExp[] }, cited: string): boolean {
  const shortened = cited.includes("…");
  const head = cited.split("…")[0]!.trimEnd().replaceAll("“", '"').replaceAll("”", '"');
  if (names.plain.some((n) => (shortened ? n.startsWith(head) : n === head))) return true;
  return names.patterns.some((p) => p.test(head));
}

describe("docs/asvs.md, the requirement-to-test matrix", () => {
  it("has a row for every V6, V7 and V8 requirement of the selected list", { skip: !existsSync(TSV) && "../shared/asvs is not beside this checkout" }, () => {
    const ids = readFileSync(TSV, "utf8").split("\n").slice(1).map((l) => l.split("\t")).filter((f) => ["V6", "V7", "V8"].includes(f[1] ?? "")).map((f) => f[0] as string);
    assert.ok(ids.length > 50, "the selected list was read");
    const have = rows();
    assert.deepEqual(ids.filter((id) => !have.has(id)), [], "requirements without a row");
  });

  it("cites only test files that exist, and in each only tests that exist under the name given", () => {
    const problems: string[] = [];
    let cited = 0;
    for (const [id, line] of rows()) {
      // A cited file is `path.test.ts`; the quoted names after it, up to the next backtick, are its tests.
      const parts = line.split(/`([^`]+\.test\.ts)`/);
      for (let i = 1; i < parts.length; i += 2) {
        const file = parts[i] as string;
        const path = join(ROOT, file);
        if (!existsSync(path)) {
          problems.push(`${id}: ${file} does not exist`);
          continue;
        }
        const names = declaredNames(readFileSync(path, "utf8"));
        for (const m of (parts[i + 1] ?? "").split("`")[0]!.matchAll(/"([^"]{8,})"/g)) {
          cited++;
          if (!cites(names, m[1] as string)) problems.push(`${id}: ${file} has no test "${(m[1] as string).slice(0, 90)}"`);
        }
      }
    }
    assert.ok(cited > 100, `the matrix cites tests by name (${cited} read)`);
    assert.deepEqual(problems, []);
  });

  it("the checker is not blind: a name that no test has, or a file that does not exist, is reported", () => {
    const names = declaredNames('it("attack: a real one (ASVS 1.2.3)", () => {});\ntest(`refuses ${x} before any KDF runs`, () => {});');
    assert.equal(cites(names, "attack: a real one (ASVS 1.2.3)"), true);
    assert.equal(cites(names, "attack: a real…"), true);
    assert.equal(cites(names, "refuses bcrypt cost 31 before any KDF runs"), true);
    assert.equal(cites(names, "attack: a renamed one"), false);
    assert.equal(cites(names, "refuses bcrypt cost 31 after the KDF ran"), false);
  });
});
