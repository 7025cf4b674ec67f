// The new-password policy: length in code points, no composition rules, common passwords, context
// words and breached-password lookups, each rejection with a stable code and a message.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createCommonPasswordList } from "./common-list.ts";
import { PasswordPolicyConfigError, PasswordPolicyInputError } from "./errors.ts";
import { createPasswordPolicy, type PasswordPolicyOptions } from "./policy.ts";
import type { BreachChecker, BreachVerdict, PolicyResult } from "./types.ts";

const common = createCommonPasswordList(["password", "iloveyou", "correcthorsebatterystaple", "qwertyuiopasdfgh"]);
const policy = (options: PasswordPolicyOptions = {}) => createPasswordPolicy({ commonPasswords: common, ...options });
const codes = (result: PolicyResult): string[] => (result.ok ? [] : result.reasons.map((r) => r.code));
const GOOD = "violet tugboat evening cactus";

function fakeChecker(verdict: BreachVerdict, seen: string[] = []): BreachChecker {
  return {
    name: "fake",
    check: async (password) => {
      seen.push(password);
      return verdict;
    },
  };
}

describe("length", () => {
  test("requires 15 characters by default and accepts exactly 15", async () => {
    // ASVS 6.2.1: at least 8, 15 strongly recommended (NIST SP 800-63B-4 single-factor).
    const p = policy();
    assert.equal(p.minLength, 15);
    assert.deepEqual(codes(await p.check("a".repeat(14) + "Z")), []);
    assert.deepEqual(codes(await p.check("abcdefghijklmn")), ["too-short"]);
    assert.deepEqual(await p.check("abcdefghijklmno"), { ok: true });
  });

  test("names the minimum in the too-short message", async () => {
    const result = await policy().check("short one");
    assert.equal(result.ok, false);
    assert.match(result.ok ? "" : (result.reasons[0]?.message ?? ""), /at least 15 characters/);
  });

  test("accepts a configured minimum of 8 and refuses a configuration below 8", () => {
    // ASVS 6.2.1: never below 8.
    assert.equal(policy({ minLength: 8 }).minLength, 8);
    assert.throws(() => policy({ minLength: 7 }), (error: unknown) => {
      assert.ok(error instanceof PasswordPolicyConfigError);
      assert.equal(error.code, "BULWARK_ERR_PASSWORD_POLICY_CONFIG");
      assert.match(error.message, /minLength must be at least 8.*got 7/);
      return true;
    });
    assert.throws(() => policy({ minLength: 0 }), PasswordPolicyConfigError);
    assert.throws(() => policy({ minLength: 12.5 }), /integer/);
  });

  test("accepts passwords of 64 and of 128 characters by default", async () => {
    // ASVS 6.2.9: at least 64 characters permitted.
    const p = policy();
    assert.deepEqual(await p.check("x".repeat(63) + "!"), { ok: true });
    // Not "y" × 128: one character repeated is refused as a repetition (below).
    assert.deepEqual(await p.check("y".repeat(127) + "!"), { ok: true });
    assert.deepEqual(codes(await p.check("y".repeat(129))), ["too-long"]);
  });

  test("refuses a maximum below 64, above 1024, or below the minimum", () => {
    assert.throws(() => policy({ maxLength: 63 }), /maxLength must be an integer between 64 and 1024/);
    assert.throws(() => policy({ maxLength: 1025 }), PasswordPolicyConfigError);
    assert.throws(() => policy({ minLength: 100, maxLength: 80 }), /must not be below minLength/);
    assert.equal(policy({ maxLength: 1024 }).maxLength, 1024);
  });

  test("counts length in code points, not UTF-16 units or bytes", async () => {
    // NIST SP 800-63B-4 §3.1.1.2: each Unicode code point counts as one character.
    const emoji = "🔑".repeat(14) + "🚪"; // 30 UTF-16 units, 60 bytes
    assert.deepEqual(await policy().check(emoji), { ok: true });
    assert.deepEqual(codes(await policy().check("🔑".repeat(13) + "🚪")), ["too-short"]);
    const p = policy({ maxLength: 64 });
    assert.deepEqual(await p.check("🔑".repeat(63) + "🚪"), { ok: true });
    assert.deepEqual(codes(await p.check("🔑".repeat(65))), ["too-long"]);
  });
});

describe("composition and exactness", () => {
  test("accepts any composition: only lower case, only digits, spaces, symbols, any script", async () => {
    // ASVS 6.2.5: no rules on character classes.
    for (const password of ["onlylowercaseletters", "907315846203917", "               x", "¡™£¢∞§¶•ªº–≠œ∑´", "пароль на русском языке", "长城脚下的小猫喜欢吃新鲜的鱼干"]) {
      assert.deepEqual(await policy().check(password), { ok: true }, password);
    }
  });

  test("checks the password exactly as received: surrounding spaces count towards the length", async () => {
    // ASVS 6.2.8: no trimming, so these 15 code points are 15 characters.
    assert.deepEqual(await policy().check("  thirteen ch  "), { ok: true });
    assert.deepEqual(codes(await policy().check(" fourteen ch   ".slice(0, 14))), ["too-short"]);
  });

  test("refuses a value that is not a string with an input error", async () => {
    const p = policy();
    await assert.rejects(p.check(12345678901234567 as unknown as string), PasswordPolicyInputError);
    await assert.rejects(p.check(undefined as unknown as string), /password must be a string, got undefined/);
  });
});

describe("common passwords", () => {
  test("rejects a password on the list, in any case and in compatibility forms", async () => {
    // ASVS 6.2.4. Comparisons are case-insensitive after NFKC; the password itself is not changed.
    const p = policy({ minLength: 8 });
    assert.deepEqual(codes(await p.check("password")), ["common"]);
    assert.deepEqual(codes(await p.check("PassWord")), ["common"]);
    assert.deepEqual(codes(await p.check("ｐａｓｓｗｏｒｄ")), ["common"]); // full-width forms
    assert.deepEqual(codes(await p.check("CorrectHorseBatteryStaple")), ["common"]);
    assert.deepEqual(await p.check("password but longer"), { ok: true });
  });

  test("reports every reason at once", async () => {
    const result = await policy().check("iloveyou");
    assert.deepEqual(codes(result), ["too-short", "common"]);
    assert.ok(!result.ok && result.reasons.every((r) => r.message.length > 0 && !r.message.includes("iloveyou")));
  });

  test("loads the list once, lazily, and preload loads it ahead of time", async () => {
    let loads = 0;
    const p = createPasswordPolicy({
      commonPasswords: async () => {
        loads++;
        return common;
      },
    });
    assert.equal(loads, 0);
    await p.preload();
    assert.equal(loads, 1);
    await Promise.all([p.check(GOOD), p.check("password is common"), p.check(GOOD)]);
    assert.equal(loads, 1);
  });

  test("retries a failed list load on the next check instead of caching the failure", async () => {
    let attempts = 0;
    const p = createPasswordPolicy({
      commonPasswords: async () => {
        if (++attempts === 1) throw new Error("disk hiccup");
        return common;
      },
    });
    await assert.rejects(p.check(GOOD), /disk hiccup/);
    assert.deepEqual(await p.check(GOOD), { ok: true });
    assert.equal(attempts, 2);
  });
});

describe("repetitions", () => {
  test("attack: a character or a short piece repeated past the minimum is refused, in any case and with a cut-short last copy", async () => {
    // ASVS 6.2.4, NIST SP 800-63B-4 §3.1.1.2: "repeat the word" is among the first rules a cracker runs.
    const p = policy();
    for (const password of ["1".repeat(16), " ".repeat(15), "iloveyou".repeat(2), "password".repeat(3), "qwerty".repeat(3), "abc123".repeat(3), "PasswordPASSWORDpassword", "abcabcabcabcabcab", "🔑".repeat(15)]) {
      const result = await p.check(password);
      assert.ok(codes(result).includes("repeated"), password);
      assert.ok(!result.ok && result.reasons.every((r) => !r.message.includes(password)), "no message holds the password");
    }
    assert.match(JSON.stringify(await p.check("qwerty".repeat(3))), /Do not build the password by repeating a short or common piece/);
  });

  test("attack: a listed password repeated is refused even when it reaches a lowered minimum, as is a listed repetition repeated", async () => {
    const p = policy({ minLength: 8, commonPasswords: createCommonPasswordList(["iloveyou", "abcdefghabcdefgh"]) });
    assert.deepEqual(codes(await p.check("iloveyou".repeat(2))), ["repeated"]);
    assert.deepEqual(codes(await p.check("ILoveYou".repeat(3) + "ILo")), ["repeated"]);
    // "abcdefgh" is not listed, but "abcdefgh" × 2 is, and "abcdefgh" × 4 is that said twice.
    assert.deepEqual(codes(await p.check("abcdefgh".repeat(4))), ["repeated"]);
    // A piece that would pass alone is no weaker said twice.
    assert.deepEqual(await p.check("zq8#kfp2".repeat(2)), { ok: true });
  });

  test("accepts a passphrase that merely repeats a word, and one said twice whose piece passes alone", async () => {
    const p = policy();
    for (const password of ["copper meadow whistles softly", "a long passphrase of several words", "the cat and the other cat", GOOD + " " + GOOD]) {
      assert.deepEqual(await p.check(password), { ok: true }, password);
    }
  });
});

describe("invisible characters", () => {
  test("attack: zero-width and other default-ignorable characters do not count towards the minimum length", async () => {
    // NIST SP 800-63B-4 §3.1.1.2: "password" and seven U+200B are 8 characters to a guesser.
    const p = policy({ commonPasswords: createCommonPasswordList([]) });
    for (const invisible of ["\u200B", "\u2060", "\u00AD", "\uFEFF", "\u200D", "\uFE0F"]) {
      const result = await p.check("violetkettle" + invisible.repeat(7));
      assert.deepEqual(codes(result), ["too-short"], JSON.stringify(invisible));
      assert.match(result.ok ? "" : (result.reasons[0]?.message ?? ""), /has 12, not counting invisible characters/);
    }
    assert.deepEqual(codes(await p.check("\u200B".repeat(15))), ["too-short"]);
  });

  test("attack: an invisible character inside or around a listed password does not hide it from the list", async () => {
    const p = policy({ minLength: 8 });
    for (const password of ["pass\u00ADword", "\uFEFFpassword", "pass\u200Bword\u2060", "i\u200Cloveyou"]) {
      assert.deepEqual(codes(await p.check(password)), ["common"], JSON.stringify(password));
    }
  });

  test("accepts emoji sequences and joiners, and checks the password exactly as received, invisible characters included", async () => {
    // ASVS 6.2.5: any characters; ASVS 6.2.8: nothing is removed from what is looked up and hashed.
    const seen: string[] = [];
    const p = policy({ breachCheckers: [fakeChecker({ status: "clean" }, seen)] });
    const password = "❤\uFE0F family 👨\u200D👩\u200D👧 on the hill";
    assert.deepEqual(await p.check(password), { ok: true });
    assert.deepEqual(seen, [password]);
  });
});

describe("context words", () => {
  test("rejects passwords containing the email, its local part, the username or the service name", async () => {
    // ASVS 6.2.11: context-specific words.
    const p = policy();
    const context = { email: "Jane.Doe@example.org", username: "jdoe1987", serviceName: "Acme Portal" };
    assert.deepEqual(codes(await p.check("jane.doe@example.org!", context)), ["context-word"]);
    assert.deepEqual(codes(await p.check("my name is JANE and I like tea", context)), ["context-word"]);
    assert.deepEqual(codes(await p.check("xx-jdoe1987-tomato-soup", context)), ["context-word"]);
    assert.deepEqual(codes(await p.check("acmeacmeacmeacme", context)), ["repeated", "context-word"]);
    assert.deepEqual(codes(await p.check("portal to another world", context)), ["context-word"]);
    assert.deepEqual(await p.check(GOOD, context), { ok: true });
  });

  test("names which context the password was built from", async () => {
    const result = await policy().check("alice-at-bulwark-rocks", { username: "alice", serviceName: "Bulwark" });
    assert.equal(result.ok, false);
    assert.equal(result.ok ? "" : result.reasons[0]?.message, "Do not build the password from your username or the name of this service.");
  });

  test("rejects extra site-specific words", async () => {
    const result = await policy().check("I love Widgetron so much", { extraWords: ["widgetron"] });
    assert.deepEqual(codes(result), ["context-word"]);
  });

  test("attack: the holder's name without its accents, or with them, is still the name (ASVS 6.2.11)", async () => {
    const p = policy();
    assert.deepEqual(codes(await p.check("angstrom copper meadow dawn", { extraWords: ["Zoë Ångström"] })), ["context-word"]);
    assert.deepEqual(codes(await p.check("ilker copper meadow dawn", { extraWords: ["İLKER YILMAZ"] })), ["context-word"]);
    assert.deepEqual(codes(await p.check("copper yilmaz meadow dawn", { extraWords: ["İlker Yılmaz"] })), ["context-word"]);
    assert.deepEqual(codes(await p.check("Ångström copper meadow dawn", { username: "angstrom" })), ["context-word"]);
    assert.deepEqual(codes(await p.check("lukasz copper meadow dawn", { email: "Łukasz.Nowak@example.pl" })), ["context-word"]);
  });

  test("ignores context words shorter than the configured minimum", async () => {
    assert.deepEqual(await policy().check("bob is a builder, yes", { username: "bob" }), { ok: true });
    assert.deepEqual(codes(await policy({ minContextWordLength: 3 }).check("bob is a builder, yes", { username: "bob" })), ["context-word"]);
    assert.throws(() => policy({ minContextWordLength: 0 }), PasswordPolicyConfigError);
  });
});

describe("breached passwords", () => {
  test("rejects a password a breach checker reports, with the count", async () => {
    // ASVS 6.2.12: checked against a set of breached passwords.
    const result = await policy({ breachCheckers: [fakeChecker({ status: "breached", count: 42 })] }).check(GOOD);
    assert.deepEqual(codes(result), ["breached"]);
    assert.match(result.ok ? "" : (result.reasons[0]?.message ?? ""), /42 times/);
  });

  test("accepts a password every checker reports clean", async () => {
    const checkers = [fakeChecker({ status: "clean" }), fakeChecker({ status: "clean" })];
    assert.deepEqual(await policy({ breachCheckers: checkers }).check(GOOD), { ok: true });
  });

  test("fails closed when a fail-closed checker is unavailable, and tells the hook", async () => {
    const events: unknown[] = [];
    const p = policy({
      breachCheckers: [fakeChecker({ status: "unavailable", reason: "HTTP 503", failClosed: true })],
      onBreachCheckUnavailable: (event) => events.push(event),
    });
    assert.deepEqual(codes(await p.check(GOOD)), ["breach-check-unavailable"]);
    assert.deepEqual(events, [{ checker: "fake", reason: "HTTP 503", failClosed: true }]);
  });

  test("fails open when a fail-open checker is unavailable, but still asks the next checker", async () => {
    const unavailable = fakeChecker({ status: "unavailable", reason: "timeout", failClosed: false });
    assert.deepEqual(await policy({ breachCheckers: [unavailable] }).check(GOOD), { ok: true });
    const offline = fakeChecker({ status: "breached", count: 3 });
    assert.deepEqual(codes(await policy({ breachCheckers: [unavailable, offline] }).check(GOOD)), ["breached"]);
  });

  test("does not look up a password that is already rejected", async () => {
    const seen: string[] = [];
    const p = policy({ breachCheckers: [fakeChecker({ status: "clean" }, seen)] });
    await p.check("too short");
    await p.check("Password");
    await p.check("x".repeat(500));
    assert.deepEqual(seen, []);
    await p.check(GOOD);
    assert.deepEqual(seen, [GOOD]); // passed exactly as received
  });
});
