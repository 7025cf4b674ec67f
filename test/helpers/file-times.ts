// A node:test reporter listing the test files by the time their top-level tests took, the slowest first: where the
// suite's minutes go (the suite aims at about ten on the 2-core CI machine). Beside the usual one:
//   npm test -- --test-reporter=spec --test-reporter-destination=stdout \
//     --test-reporter=./test/helpers/file-times.ts --test-reporter-destination=/tmp/file-times.txt
// A file's time is the sum of its top-level tests' durations (its process's start-up not included); the share is of
// all files' sum, which is more than the suite's wall time since three files run at once.
import type { TestEvent } from "node:test/reporters";

export default async function* fileTimes(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const byFile = new Map<string, { ms: number; tests: number }>();
  for await (const event of source) {
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    // entryFile: the test file that ran it (file is where it was declared, a helper for suites run per dialect).
    const data = event.data as { nesting: number; file?: string; entryFile?: string; details: { duration_ms: number } };
    const file = data.entryFile ?? data.file;
    if (data.nesting !== 0 || file === undefined) continue;
    const entry = byFile.get(file) ?? { ms: 0, tests: 0 };
    entry.ms += data.details.duration_ms;
    entry.tests++;
    byFile.set(file, entry);
  }
  const total = [...byFile.values()].reduce((sum, e) => sum + e.ms, 0);
  const cwd = `${process.cwd()}/`;
  yield `${byFile.size} files, ${(total / 1000).toFixed(1)} s of top-level tests in all\n`;
  for (const [file, e] of [...byFile].sort((a, b) => b[1].ms - a[1].ms)) {
    yield `${(e.ms / 1000).toFixed(1).padStart(8)} s ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  ${file.startsWith(cwd) ? file.slice(cwd.length) : file} (${e.tests})\n`;
  }
}
