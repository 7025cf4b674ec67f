// `npm run bench -- NAME`: runs bench/NAME.ts, or every file in bench/NAME/; without a name, all of them.
// Each benchmark prints its result as a ratio against a reference measured in the same run.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const names = process.argv.slice(2);

function targets(name: string): string[] {
  const file = join(here, `${name}.ts`);
  const dir = join(here, name);
  const out: string[] = [];
  if (existsSync(file)) out.push(file);
  if (existsSync(dir) && statSync(dir).isDirectory()) {
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".ts")).sort()) out.push(join(dir, f));
  }
  return out;
}

const all = readdirSync(here)
  .filter((f) => f !== "run.ts" && f !== "lib.ts" && (f.endsWith(".ts") || statSync(join(here, f)).isDirectory()))
  .map((f) => f.replace(/\.ts$/, ""));
const wanted = names.length ? names : [...new Set(all)];
let failed = false;
for (const name of wanted) {
  const files = targets(name);
  if (files.length === 0) {
    process.stderr.write(`bench: no benchmark named "${name}" (have: ${[...new Set(all)].join(", ")})\n`);
    process.exitCode = 2;
    continue;
  }
  for (const file of files) {
    process.stdout.write(`\n== ${name}: ${file.slice(here.length)} ==\n`);
    try {
      const mod = (await import(file)) as { default?: () => Promise<void> };
      if (typeof mod.default === "function") await mod.default();
    } catch (error) {
      failed = true;
      process.stderr.write(`bench ${file} failed: ${(error as Error).stack ?? error}\n`);
    }
  }
}
if (failed) process.exitCode = 3;
