// Post-build step for the published package (`npm run build`, after `tsc -p tsconfig.build.json`): finish the module
// specifiers tsc leaves as written, refuse a dist/ that would not run, and make the CLI entry executable.
//
// tsc's rewriteRelativeImportExtensions turns `./x.ts` into `./x.js` in static imports, but in a whole-program build
// (TypeScript 5.9) it left some dynamic `import("../../audit/index.ts")` calls as written — 42 of them with
// declarations on, 13 without: which ones depends on the emit — so `bulwark audit verify`, `check ssh` and others
// failed in the built package with ERR_MODULE_NOT_FOUND. Those literals are rewritten here; then every emitted file is
// read again, and the build fails if a relative `.ts` specifier or a path into test/ is left.
//
// Usage: node scripts/build.ts [DIST]   (DIST defaults to ./dist; test/build.test.ts builds into a temp dir)
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** A relative specifier of a TypeScript file inside a dynamic import() with a string literal. */
const DYNAMIC_TS = /\bimport\(\s*(["'])(\.\.?\/[^"'\n]*?)\.ts\1\s*\)/g;
/** A quoted module specifier after `from`, `import` or `import(` (static, side-effect, re-export or dynamic). */
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(?\s*)(["'])([^"'\n]*)\1/g;

/** `source` with every dynamic import() of a relative `.ts` literal pointed at its `.js`; `rewritten` counts them. */
export function rewriteDynamicImports(source: string): { text: string; rewritten: number } {
  let rewritten = 0;
  const text = source.replace(DYNAMIC_TS, (_match, quote: string, path: string) => {
    rewritten++;
    return `import(${quote}${path}.js${quote})`;
  });
  return { text, rewritten };
}

/**
 * What would break the built module where the package is installed: relative `.ts` specifiers left, imports from
 * test/, and imports of `node:test` or of a package in `devOnly` (devDependencies are not installed with it).
 */
export function specifierProblems(source: string, devOnly: readonly string[] = []): string[] {
  const found: string[] = [];
  for (const [, , spec] of source.matchAll(SPECIFIER) as Iterable<[string, string, string]>) {
    if (/^\.\.?\/.*\.ts$/.test(spec)) found.push(`imports ${spec} (a .ts file; the package ships .js)`);
    if (/^(?:\.\.\/)+test\//.test(spec)) found.push(`imports ${spec} (test support is not part of the package)`);
    if (/^(?:node:)?[@a-z]/.test(spec)) {
      // A package's name is the first path segment, or the first two when scoped.
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
      if (name === "node:test" || devOnly.includes(name)) found.push(`imports ${spec} (test or development only; not installed with the package)`);
    }
  }
  return found;
}

/** The names under devDependencies in the package's package.json. */
function devDependencies(): string[] {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { devDependencies?: Record<string, string> };
  return Object.keys(manifest.devDependencies ?? {});
}

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".js"))
    .map((e) => join(e.parentPath, e.name));
}

/** Rewrites and checks every .js file under `dist`; throws, naming each file and specifier, when one is left broken. */
export function finishDist(dist: string, devOnly: readonly string[] = devDependencies()): { files: number; rewritten: number } {
  const entry = join(dist, "cli", "main.js");
  if (!existsSync(entry)) throw new Error(`${join(dist, "cli", "main.js")} is missing; did tsc fail?`);
  let rewritten = 0;
  const problems: string[] = [];
  const files = jsFiles(dist);
  for (const file of files) {
    const before = readFileSync(file, "utf8");
    const after = rewriteDynamicImports(before);
    if (after.rewritten > 0) writeFileSync(file, after.text);
    rewritten += after.rewritten;
    for (const p of specifierProblems(after.text, devOnly)) problems.push(`${relative(dist, file)} ${p}`);
  }
  if (problems.length > 0) throw new Error(`the built package would not run:\n  ${problems.join("\n  ")}`);
  chmodSync(entry, 0o755);
  return { files: files.length, rewritten };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dist = resolve(process.argv[2] ?? fileURLToPath(new URL("../dist", import.meta.url)));
  try {
    const { files, rewritten } = finishDist(dist);
    process.stdout.write(`build: ${dist} ready (${files} modules; ${rewritten} dynamic imports pointed at .js; bin: cli/main.js)\n`);
  } catch (error) {
    process.stderr.write(`build: ${(error as Error).message}\n`);
    process.exit(3);
  }
}
