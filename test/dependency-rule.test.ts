// docs/ARCHITECTURE.md's dependency rule, checked on the source: `http` and `cli` never import each other, and domain
// code (src/accounts, src/contain, src/notify, src/audit, src/checks, src/crypto, src/store, src/lib) imports neither.
// The one door is `bulwark serve`/`start` loading the server (src/cli/commands/serve.ts, a dynamic import at run time).
// Only static imports are read (`import … from "…"` and `export … from "…"`).
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { it } from "node:test";

const SRC = resolve(import.meta.dirname, "../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") && !e.name.startsWith("test-") ? [path] : [];
  });
}

/** The src/ top-level directory each relative static import of `file` lands in. */
function importedLayers(file: string): Array<{ spec: string; layer: string }> {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.[^"]+)"/gm)].map((m) => m[1]!);
  return specs.map((spec) => ({ spec, layer: relative(SRC, resolve(dirname(file), spec)).split("/")[0]! }));
}

const DOMAIN = ["accounts", "contain", "notify", "audit", "checks", "crypto", "store", "lib"];

it("http and cli never import each other, and domain code imports neither (docs/ARCHITECTURE.md, the dependency rule)", () => {
  const broken: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const own = relative(SRC, file).split("/")[0]!;
    for (const { spec, layer } of importedLayers(file)) {
      const wrong = (own === "cli" && layer === "http") || (own === "http" && layer === "cli") || (DOMAIN.includes(own) && (layer === "http" || layer === "cli"));
      if (wrong) broken.push(`${relative(SRC, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(broken, []);
});
