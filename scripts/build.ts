// Post-build step for the published package: make the CLI entry executable.
import { chmodSync, existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("build: dist/cli/main.js is missing; did tsc fail?\n");
  process.exit(3);
}
chmodSync(entry, 0o755);
process.stdout.write("build: dist/ ready (bin: dist/cli/main.js)\n");
