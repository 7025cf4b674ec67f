// Compares the evaluator with the real `sshd -T` (and `-T -C` for each context listed in a file's
// "# contexts:" header) on the corpus in fixtures/corpus. Skips LOUDLY when openssh-server is absent:
// CI installs it (apt-get install -y openssh-server; mkdir -p /run/sshd).
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { differences, ensurePrivsepDir, findSshd, runSshdTest, sshdTestContext, systemGroups } from "./cross-check.ts";
import { evaluate } from "./evaluate.ts";
import { parseMatchSpec, type MatchContext } from "./match.ts";
import { SshConfigError } from "./errors.ts";
import { loadSshdConfig } from "./parser.ts";

const corpus = join(import.meta.dirname, "fixtures", "corpus");
const sshd = findSshd();
const usable = sshd !== null && ensurePrivsepDir();
if (!usable) {
  process.stderr.write("\n*** SKIPPING the sshd -T corpus comparison: sshd (openssh-server) is not installed or /run/sshd cannot be created ***\n\n");
}

const work = mkdtempSync(join(tmpdir(), "bulwark-ssh-corpus-"));
after(() => rmSync(work, { recursive: true, force: true }));
cpSync(corpus, work, { recursive: true });
// Include paths in the corpus are written @DIR@/inc/...: point them at this copy.
for (const dir of [work, join(work, "inc")]) {
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".conf"))) {
    const path = join(dir, name);
    writeFileSync(path, readFileSync(path, "latin1").replaceAll("@DIR@", work), "latin1");
  }
}
const files = readdirSync(work).filter((n) => n.endsWith(".conf")).sort();

describe("evaluator agrees with sshd -T on the corpus", { skip: usable ? false : "sshd not installed" }, () => {
  test("the corpus holds at least 25 configurations", () => {
    assert.ok(files.length >= 25, `only ${files.length} configurations`);
  });
  for (const name of files) {
    const path = join(work, name);
    const header = /^# contexts: (.*)$/m.exec(readFileSync(path, "latin1"));
    const plain = !/^# plain: no/m.test(readFileSync(path, "latin1"));
    const contexts: Array<MatchContext | undefined> = [...(plain ? [undefined] : []), ...(header?.[1] ?? "").split("|").map((s) => s.trim()).filter(Boolean).map(parseMatchSpec)];
    for (const ctx of contexts) {
      test(`${name}${ctx ? ` for ${JSON.stringify(ctx)}` : ""}`, async () => {
        const config = loadSshdConfig(path, { includeBase: work });
        const match = ctx === undefined ? undefined : { ...ctx, ...(ctx.user !== undefined ? { groups: systemGroups(ctx.user) } : {}) };
        const ours = evaluate(config, match === undefined ? {} : { match }).effective;
        // sshd -T refuses Match LocalPort without an lport: give it one no criterion names (cross-check.ts).
        const theirs = await runSshdTest(sshd as string, path, sshdTestContext(config, ctx));
        assert.ok(theirs.ok, theirs.ok ? "" : theirs.message);
        assert.deepEqual(differences(ours, theirs.values), []);
      });
    }
  }
});

const invalid = join(import.meta.dirname, "fixtures", "corpus-invalid");

describe("configurations sshd -T rejects are rejected too, at the same line", { skip: usable ? false : "sshd not installed" }, () => {
  for (const name of readdirSync(invalid).filter((n) => n.endsWith(".conf")).sort()) {
    test(name, async () => {
      const path = join(invalid, name);
      const theirs = await runSshdTest(sshd as string, path);
      assert.equal(theirs.ok, false, "sshd accepted it: the fixture is wrong");
      let ours: unknown;
      try {
        loadSshdConfig(path, { includeBase: work });
      } catch (error) {
        ours = error;
      }
      assert.ok(ours instanceof SshConfigError, `we accepted ${name}`);
      const sshdLine = /line (\d+)/.exec(theirs.ok ? "" : theirs.message);
      if (sshdLine) assert.equal(ours.line, Number(sshdLine[1]));
    });
  }
});
