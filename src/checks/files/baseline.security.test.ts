// Attacks on the baseline that must fail: an intruder who can write the baseline file but lacks the
// keyring's signing key edits it to hide a change. Each edit must surface as files.baseline-tampered
// (critical), while the compare still runs. ASVS 11.4.3 (integrity through a signed SHA-256 digest).
import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { ManualClock } from "../../lib/clock.ts";
import { toBase64URL } from "../../lib/encoding.ts";
import { signedMessage } from "./baseline-format.ts";
import { compareBaseline, createBaseline } from "./check.ts";
import { tempDir, testSigner } from "./test-helpers.ts";
import { createHash } from "node:crypto";

describe("baseline tampering", () => {
  let root: string;
  let tree: string;
  let file: string;
  let pristine: string;
  const signer = testSigner("sk_ours");
  const clock = new ManualClock();

  before(async () => {
    root = tempDir("bulwark-tamper-");
    tree = join(root, "tree");
    mkdirSync(join(tree, "bin"), { recursive: true });
    writeFileSync(join(tree, "bin/tool"), "original\n", { mode: 0o755 });
    writeFileSync(join(tree, "notes"), "n\n");
    file = join(root, "b.jsonl");
    await createBaseline({ paths: [tree], out: file, signer, clock });
    pristine = readFileSync(file, "utf8");
  });
  beforeEach(() => writeFileSync(file, pristine));
  after(() => rmSync(root, { recursive: true, force: true }));

  const lines = (): string[] => pristine.split("\n").filter((l) => l !== "");
  const save = (ls: string[]): void => writeFileSync(file, `${ls.join("\n")}\n`);
  const compare = (): ReturnType<typeof compareBaseline> => compareBaseline({ baseline: file, signer });
  async function assertTampered(): Promise<void> {
    const r = await compare();
    assert.equal(r.integrity.trusted, false);
    const t = r.findings.find((f) => f.id === "files.baseline-tampered");
    assert.ok(t, "files.baseline-tampered is reported");
    assert.equal(t.severity, "critical");
  }

  it("trusts the untouched baseline", async () => {
    const r = await compare();
    assert.equal(r.integrity.trusted, true);
    assert.deepEqual(r.findings, []);
  });

  it("detects one changed byte in an entry (a hash edited to hide a trojaned binary)", async () => {
    const ls = lines();
    const i = ls.findIndex((l) => l.includes("/bin/tool"));
    ls[i] = (ls[i] as string).replace(/"sha256":"(.)/, (_m, c: string) => `"sha256":"${c === "a" ? "b" : "a"}`);
    save(ls);
    await assertTampered();
  });

  it("detects a removed entry line", async () => {
    const kept = lines().filter((l) => !l.includes(`"${tree}/notes"`));
    assert.equal(kept.length, lines().length - 1);
    save(kept);
    await assertTampered();
  });

  it("detects an added entry line", async () => {
    const ls = lines();
    const extra = (ls[1] as string).replace(tree, `${tree}/zz-planted`);
    ls.splice(ls.length - 1, 0, extra);
    save(ls);
    await assertTampered();
  });

  it("detects reordered lines", async () => {
    const ls = lines();
    [ls[1], ls[2]] = [ls[2] as string, ls[1] as string];
    save(ls);
    await assertTampered();
  });

  it("detects an edited header (roots narrowed to skip a directory)", async () => {
    const ls = lines();
    ls[0] = (ls[0] as string).replace(tree, join(tree, "bin"));
    save(ls);
    await assertTampered();
  });

  it("detects a changed signature", async () => {
    const ls = lines();
    const t = JSON.parse(ls[ls.length - 1] as string) as Record<string, unknown>;
    const sig = Buffer.from(t["signature"] as string, "base64url");
    sig[0] = (sig[0] as number) ^ 1;
    t["signature"] = sig.toString("base64url");
    ls[ls.length - 1] = JSON.stringify(t);
    save(ls);
    await assertTampered();
  });

  it("detects content re-signed with the attacker's own key under our key id, with a matching digest", async () => {
    writeFileSync(join(tree, "bin/tool"), "trojaned\n");
    const forger = testSigner("sk_ours");
    const forgedTree = await createBaseline({ paths: [tree], out: file, signer: forger, clock });
    assert.ok(forgedTree.entries > 0);
    const r = await compare();
    writeFileSync(join(tree, "bin/tool"), "original\n");
    assert.equal(r.integrity.trusted, false);
    assert.ok(r.findings.some((f) => f.id === "files.baseline-tampered"));
  });

  it("detects a trailer whose digest was recomputed for edited content (the signature still fails)", async () => {
    const ls = lines();
    ls[1] = (ls[1] as string).replace('"uid":0', '"uid":1');
    const body = `${ls.slice(0, -1).join("\n")}\n`;
    const t = JSON.parse(ls[ls.length - 1] as string) as Record<string, unknown>;
    t["sha256"] = createHash("sha256").update(body).digest("hex");
    ls[ls.length - 1] = JSON.stringify(t);
    save(ls);
    await assertTampered();
  });

  it("detects a signature by a key the keyring never held", async () => {
    const ls = lines();
    const t = JSON.parse(ls[ls.length - 1] as string) as Record<string, unknown>;
    const other = testSigner("sk_other");
    t["keyId"] = "sk_other";
    t["signature"] = toBase64URL(other.sign(signedMessage(Buffer.from(t["sha256"] as string, "hex"))));
    ls[ls.length - 1] = JSON.stringify(t);
    save(ls);
    await assertTampered();
  });

  it("detects a removed trailer (truncation)", async () => {
    save(lines().slice(0, -1));
    await assertTampered();
  });

  it("detects lines appended after the trailer", async () => {
    appendFileSync(file, `${lines()[1]}\n`);
    await assertTampered();
  });

  it("still compares when the baseline is tampered: the hidden change is reported anyway", async () => {
    writeFileSync(join(tree, "notes"), "changed\n");
    try {
      const ls = lines();
      ls.splice(1, 0, "garbage that is not JSON");
      save(ls);
      const r = await compare();
      assert.ok(r.findings.some((f) => f.id === "files.baseline-tampered"));
      assert.ok(r.findings.some((f) => f.id === "files.changed"));
      assert.equal(r.integrity.skippedLines, 1);
    } finally {
      writeFileSync(join(tree, "notes"), "n\n");
    }
  });
});
