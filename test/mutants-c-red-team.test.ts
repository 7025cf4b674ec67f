// Red team: mutation testing of the defences, third batch. Bulwark says its security properties are "tested as attacks
// that must fail"; this round checks that claim outside the first two batches' areas (test/mutants-red-team.test.ts,
// test/mutants-b-red-team.test.ts) by breaking one defence at a time in a private clone (a mutant: one or two lines a
// careless refactor could plausibly change) and running the test files most likely to notice. Each test here is an
// attack that passes on the product and failed on the mutant that survived the suite (proven by running it against
// that mutant).
// Who: whoever the defence is against (a sign-up choosing a username that draws as nothing, a second account on the
// host reading a master key file left group-readable, a log forger whose refused root logins should count, someone
// who edits a signed file baseline's trailer, a shared cache between a victim and the link page's lookup).
// Tried: 26 mutants over src/lib (terminal escaping, inert JSON, visible text), src/accounts/users/normalise.ts
// (final sigma, the NFKC @, mixed scripts, the trailing dot), src/http/pages (no-store, the referrer meta, the account
// lookup's no-store), src/store/database.ts (world-readable, symbolic link, the tightening of an empty file),
// src/lib/os-user.ts (group-writable), src/crypto/master-key.ts (group bits), src/app/config.ts (bounds, the NUL
// byte), src/store/unheld.ts (busy_timeout 0), src/checks/ssh/parser.ts (Include depth), src/checks/authlog (nft
// sets, the ignore list, ROOT LOGIN REFUSED), src/checks/files (lstat, the signature's canonical base64url); see the
// round's report for the table.
// Survived and equivalent in effect (a second layer holds): the link pages' <meta name="referrer"> (every response
// carries Referrer-Policy: no-referrer from security-headers.ts); config's NUL-byte refusal for BULWARK_DATA_DIR (node:fs
// refuses a path holding NUL anyway, with a less helpful message).
// Survived, real, not pinned in the time box: withoutWaiting (src/store/unheld.ts) without its PRAGMA busy_timeout = 0
// (bookkeeping writes would wait out the 10 s busy timeout behind a held lock instead of skipping).
// Survived and real, pinned below: a username of combining marks only (identifierHidesSomething's "nothing
// visible" half), a master key file readable by its group, ROOT LOGIN REFUSED counted as a failure, a baseline
// trailer whose signature is not canonical base64url, no-store on POST /confirm-email/account's answer.
// Found: nothing the product itself gets wrong; every test here passes on main.
// Loopback and temp dirs only.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { validateUsername } from "../src/accounts/users/normalise.ts";
import { classifySshdMessage } from "../src/checks/authlog/sshd-messages.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import { tempDir, testSigner } from "../src/checks/files/test-helpers.ts";
import { readMasterKeyFile } from "../src/crypto/master-key.ts";
import { authFixture } from "../src/http/auth/test-client.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { authFlows, EMAIL_LINK } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

describe("mutants that survived the suite, third batch", () => {
  it("attack: a sign-up picks a username made of combining marks only, which draws as nothing or as an accent on the next character of whatever it is shown beside — refused, as every identifier must show something (ASVS 6.2.x, 1.1.1) (a mutant of src/lib/visible-text.ts:identifierHidesSomething survived the suite)", () => {
    for (const name of ["\u0301", "\u0301\u0308\u0323", "\u20dd"]) {
      assert.throws(() => validateUsername(name), (e: Error) => /control or invisible/.test(e.message),
        `a username of combining marks only (${JSON.stringify(name)}) was accepted: it shows nothing a reader can tell apart`);
    }
    // Control: a name with a real letter and an accent on it is fine.
    assert.equal(validateUsername("re\u0301my"), "r\u00e9my");
  });

  it("attack: a master key file left readable by its group (mode 640: a backup or web group on the host) is refused, not read — the key is readable by nobody else (ASVS 11.1.3, 13.3.2) (a mutant of src/crypto/master-key.ts:keyFileProblem survived the suite)", () => {
    const dir = tempDir("bulwark-mutc-key-");
    try {
      const path = join(dir, "master.key");
      writeFileSync(path, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
      assert.ok(readMasterKeyFile(path) !== null, "control: a 600 key file is read");
      for (const mode of [0o640, 0o620, 0o660]) {
        chmodSync(path, mode);
        assert.throws(() => readMasterKeyFile(path), (e: Error) => /readable or writable by other users/.test(e.message),
          `a master key file of mode ${mode.toString(8)} was read: the group may copy (or choose) the key every data key is wrapped under`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("attack: an attacker's root logins that sshd refuses (ROOT LOGIN REFUSED FROM …, PermitRootLogin no on old sshd) count as failures from their address, so the offenders list and the nft sets include them (ASVS 16.3.1) (a mutant of src/checks/authlog/sshd-messages.ts:classifySshdMessage survived the suite)", () => {
    for (const line of ["ROOT LOGIN REFUSED FROM 203.0.113.9", "ROOT LOGIN REFUSED FROM 2001:db8::9 port 4242"]) {
      const e = classifySshdMessage(line);
      assert.ok(e !== null, `not recognised: ${line}`);
      assert.equal(e.effect, "fail", `a refused root login (${line}) is not counted as a failure (effect ${e.effect}): a brute force against root on such a host is never reported`);
      assert.equal(e.user, "root");
      assert.match(e.address ?? "", /^(203\.0\.113\.9|2001:db8::9)$/);
    }
  });

  describe("a signed files baseline", () => {
    let root: string;
    let file: string;
    let pristine: string;
    const signer = testSigner("sk_mutc");
    before(async () => {
      root = tempDir("bulwark-mutc-baseline-");
      const tree = join(root, "tree");
      mkdirSync(tree);
      writeFileSync(join(tree, "tool"), "original\n", { mode: 0o755 });
      file = join(root, "b.jsonl");
      await createBaseline({ paths: [tree], out: file, signer, clock: new ManualClock() });
      pristine = readFileSync(file, "utf8");
    });
    after(() => rmSync(root, { recursive: true, force: true }));

    it("attack: someone edits the last character of a baseline's trailer signature to a non-canonical base64url spelling of the same bytes (the file changed, the signature still decodes to a valid one) — the baseline is not trusted, as it is not the file that was signed (ASVS 6.x integrity, 13.x) (a mutant of src/checks/files/baseline-read.ts:BaselineReader survived the suite)", async () => {
      const control = await compareBaseline({ baseline: file, signer });
      assert.equal(control.integrity.trusted, true, "control: the untouched baseline is trusted");
      const lines = pristine.split("\n").filter((l) => l !== "");
      const trailer = JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
      const sig = trailer["signature"] as string;
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      // 64 bytes: 86 characters, the last of which carries 2 bits; its 4 low bits must be zero. Set one.
      const last = alphabet.indexOf(sig.charAt(sig.length - 1));
      const edited = `${sig.slice(0, -1)}${alphabet.charAt(last ^ 1)}`;
      assert.deepEqual(Buffer.from(edited, "base64url"), Buffer.from(sig, "base64url"), "the edit decodes to the same signature");
      trailer["signature"] = edited;
      lines[lines.length - 1] = JSON.stringify(trailer);
      writeFileSync(file, `${lines.join("\n")}\n`);
      const r = await compareBaseline({ baseline: file, signer });
      assert.equal(r.integrity.trusted, false, "a baseline whose trailer was edited (a non-canonical signature) is trusted as signed");
      assert.ok(r.findings.some((f) => f.id === "files.baseline-tampered"), "files.baseline-tampered is reported");
    });
  });

  describe("the confirm-email page's account lookup", () => {
    const fx = sharedFixture(() => authFixture({ BULWARK_REGISTRATION: "open" }));
    const flows = authFlows(() => fx);
    it("attack: a shared cache (a proxy, the browser's back-forward cache) between a victim and POST /confirm-email/account keeps the answer naming the account a link moves — the answer is sent with Cache-Control: no-store (ASVS 14.3.2) (a mutant of src/http/pages/pages.ts:registerPages survived the suite)", async () => {
      const owner = await flows.signedIn("mutc-owner@corp.example");
      const target = "mutc-new@corp.example";
      assert.equal((await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } })).statusCode, 202);
      const token = await flows.tokenIn(target, EMAIL_LINK);
      const shown = await fx.browser({ newDevice: true }).request("POST", "/confirm-email/account", { body: { token } });
      assert.equal(shown.statusCode, 200, shown.body);
      assert.ok((JSON.parse(shown.body) as { account?: string }).account, "control: the account is named (masked)");
      assert.equal(shown.headers["cache-control"], "no-store", `the answer naming the account may be stored by a cache (cache-control: ${String(shown.headers["cache-control"])})`);
    });
  });
});
