// The published package (`npm run build`: tsc -p tsconfig.build.json, then scripts/build.ts) must run where it is
// installed: every module specifier in dist/ points at a .js file that exists, nothing reaches into test/ or needs a
// devDependency, and the CLI's commands that load their modules late (audit, check ssh, keys) work from dist/.
// (was: 42 dynamic imports of `.ts` files left by tsc, so `bulwark audit verify` failed with ERR_MODULE_NOT_FOUND in
// the built package; and src/checks/files/test-helpers.ts, which imports test/helpers, was compiled into it.)
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { finishDist, rewriteDynamicImports, specifierProblems } from "../scripts/build.ts";
import { testDir } from "./helpers/scratch.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

describe("the build's specifier rewrite and checks", () => {
  it("points a dynamic import of a relative .ts literal at its .js, in either quotes, and nothing else", () => {
    const source = [
      `const { a } = await import("../../audit/index.ts");`,
      `const b = await import('./b.ts');`,
      `import { c } from "./c.js";`,
      `const d = await import("node:fs");`,
      `const e = await import(new URL(file, dir).href);`,
      `const note = "see ./x.ts";`,
    ].join("\n");
    const { text, rewritten } = rewriteDynamicImports(source);
    assert.equal(rewritten, 2);
    assert.match(text, /import\("\.\.\/\.\.\/audit\/index\.js"\)/);
    assert.match(text, /import\('\.\/b\.js'\)/);
    assert.ok(text.includes(`const note = "see ./x.ts";`), "a string that is not a specifier is left alone");
    assert.deepEqual(specifierProblems(text), []);
  });

  it("reports every specifier that would fail where the package is installed", () => {
    const problems = specifierProblems(
      [
        `import { x } from "./x.ts";`,
        `const y = await import("../y.ts");`,
        `import { diskTmpdir } from "../../../test/helpers/scratch.js";`,
        `import { after } from "node:test";`,
        `import fc from "fast-check";`,
        `import { SMTPServer } from "smtp-server";`,
        `import { Kysely } from "kysely";`,
        `import { readFileSync } from "node:fs";`,
      ].join("\n"),
      ["fast-check", "smtp-server"],
    );
    assert.equal(problems.length, 6, problems.join("\n"));
    for (const name of ["./x.ts", "../y.ts", "test/helpers/scratch.js", "node:test", "fast-check", "smtp-server"]) {
      assert.ok(problems.some((p) => p.includes(name)), `${name} is reported: ${problems.join("; ")}`);
    }
  });

  it("refuses a dist/ with a broken specifier left, naming the file", (t) => {
    const dir = testDir(t, "bulwark-build-refuse-");
    mkdirSync(join(dir, "cli"), { recursive: true });
    writeFileSync(join(dir, "cli", "main.js"), `import { x } from "./x.ts";\n`);
    assert.throws(() => finishDist(dir, []), /cli\/main\.js imports \.\/x\.ts/);
  });
});

describe("npm run build", () => {
  it("builds a package whose CLI runs its late-loaded commands from dist/, with no test support in it", (t) => {
    const dir = testDir(t, "bulwark-build-");
    // The package as installed: dist/, package.json, and its dependencies beside it. Types were checked by
    // `npm test` already; --noCheck emits the same JavaScript without checking them again.
    const pkg = join(dir, "pkg");
    const dist = join(pkg, "dist");
    execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json"), "--noCheck", "--outDir", dist], { stdio: ["ignore", "pipe", "pipe"] });
    copyFileSync(join(ROOT, "package.json"), join(pkg, "package.json"));
    symlinkSync(join(ROOT, "node_modules"), join(pkg, "node_modules"));
    const finished = spawnSync(process.execPath, [join(ROOT, "scripts/build.ts"), dist], { encoding: "utf8" });
    assert.equal(finished.status, 0, finished.stderr);
    assert.equal(existsSync(join(dist, "checks/files/test-helpers.js")), false, "test support is left out");

    const env: NodeJS.ProcessEnv = { ...process.env, BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent" };
    for (const key of ["BULWARK_DATABASE_URL", "BULWARK_MASTER_KEY", "NODE_OPTIONS"]) delete env[key];
    const cli = (args: string[]): { status: number | null; stdout: string; stderr: string } =>
      spawnSync(process.execPath, [join(dist, "cli/main.js"), ...args], { env, encoding: "utf8", input: "" });
    const init = cli(["init"]);
    assert.equal(init.status, 0, init.stderr);
    const verify = cli(["audit", "verify"]);
    assert.equal(verify.status, 0, verify.stderr);
    assert.match(verify.stdout, /^audit chain intact: \d+ events/);
    const sshd = join(dir, "sshd_config");
    writeFileSync(sshd, "PasswordAuthentication no\nPermitRootLogin no\n");
    const ssh = cli(["check", "ssh", "--config", sshd, "--json"]);
    assert.ok(ssh.status === 0 || ssh.status === 1, `check ssh ran: ${ssh.status} ${ssh.stderr}`);
    assert.ok(Array.isArray(JSON.parse(ssh.stdout).findings), ssh.stdout);
    // check authlog reads lines in a worker thread on a machine with two cores or more: its module is in dist/ too.
    assert.ok(existsSync(join(dist, "checks/authlog/line-worker.js")), "the line stage's worker module is built");
    const log = join(dir, "auth.log");
    writeFileSync(log, Array.from({ length: 6 }, (_, i) => `Nov 21 04:00:0${i} web sshd[${100 + i}]: Failed password for root from 203.0.113.9 port 22 ssh2\n`).join(""));
    const authlog = cli(["check", "authlog", log, "--json"]);
    assert.ok(authlog.status === 0 || authlog.status === 1, `check authlog ran: ${authlog.status} ${authlog.stderr}`);
    assert.deepEqual(JSON.parse(authlog.stdout).offenders, ["203.0.113.9"], authlog.stdout);
  });
});
