// What a `bulwark` start imports. Every start registers every command to build its help; registering must not load
// the database layer and the accounts code, which made every command that needs no database (hash, the checks,
// --help) take four times the CPU (~0.2 s instead of ~0.05 s) while src/cli/commands/users-admin.ts imported them at
// the top. Pinned by the modules a help screen loads, not by time (no timing assertions in tests).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { MAIN } from "./helpers/cli.ts";

const HOOK = new URL("./helpers/record-loads.ts", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "bulwark-cli-start-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The module URLs a `bulwark ARGS` process loaded, and how it exited. */
function loadedBy(args: string[]): { code: number | null; urls: string[] } {
  const out = join(dir, `loaded-${args.join("-").replace(/[^a-z-]/gi, "")}.txt`);
  const r = spawnSync(process.execPath, ["--disable-warning=ExperimentalWarning", "--import", HOOK, MAIN, ...args], {
    env: { ...process.env, BULWARK_TEST_LOADED_OUT: out, BULWARK_DATA_DIR: join(dir, "no-data") }, encoding: "utf8",
  });
  return { code: r.status, urls: readFileSync(out, "utf8").split("\n").filter(Boolean) };
}

/** The heavy graph that printing help must not load. */
const HEAVY = [/\/src\/store\/database\.ts$/, /\/src\/app\//, /\/src\/accounts\//, /\/node_modules\/(pg|kysely|fastify|@node-rs)\//];

describe("what a bulwark start imports", () => {
  for (const args of [["--help"], ["hash", "--help"], ["check", "ssh", "--help"], ["users", "--help"], ["roles", "delete", "--help"]]) {
    it(`bulwark ${args.join(" ")} prints its help without loading the database layer or the accounts code`, () => {
      const { urls } = loadedBy(args);
      assert.ok(urls.some((u) => u.endsWith("/src/cli/commands/users-admin.ts")), `the hook saw the commands being registered:\n${urls.join("\n")}`);
      const heavy = urls.filter((u) => HEAVY.some((re) => re.test(u)));
      assert.deepEqual(heavy, [], "loaded by a command that needs no database");
    });
  }

  it("a users-admin command still loads its accounts code when it runs (a missing data dir is its answer, not a crash)", () => {
    const { code, urls } = loadedBy(["users", "unlock", "nobody@example.org"]);
    assert.ok(urls.some((u) => u.endsWith("/src/cli/users-admin-deps.ts")), "the accounts code was not loaded");
    assert.equal(code, 2, "a missing data dir is the operator's input to fix (exit 2)");
  });
});
