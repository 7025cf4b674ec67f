// Context words (ASVS 6.2.11): which words are derived from the email, username and service name,
// and how a password is matched against them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { contextWords, matchContextWords } from "./context-words.ts";

const keys = (context: Parameters<typeof contextWords>[0], min = 4): string[] => contextWords(context, min).map((w) => w.key);

describe("contextWords", () => {
  test("derives the email, its local part and the local part's pieces, but not the domain", () => {
    assert.deepEqual(keys({ email: "John.Smith+news@Example.com" }), ["john.smith+news@example.com", "john.smith+news", "john", "smith", "news"]);
  });

  test("splits usernames and service names on separators and drops short pieces and repeats", () => {
    assert.deepEqual(keys({ username: "dark_knight-99", serviceName: "Dark Knight Rises" }), [
      "dark_knight-99",
      "dark",
      "knight",
      "dark knight rises",
      "rises",
    ]);
  });

  test("uses the local part of an email whose local part contains @ up to the last @", () => {
    assert.deepEqual(keys({ email: '"odd@name"@example.com' }), ['"odd@name"@example.com', '"odd@name"', "name"]);
  });

  test("splits extra words (a display name) into pieces like a username, and ignores empty context", () => {
    assert.deepEqual(keys({ extraWords: ["Mega Corp", "x"] }), ["mega corp", "mega", "corp"]);
    assert.deepEqual(keys({ extraWords: ["William Gibson"] }), ["william gibson", "william", "gibson"]);
    assert.deepEqual(keys({}), []);
    assert.deepEqual(keys({ username: "" }), []);
  });

  test("skips context values longer than any real email or name instead of normalising them", () => {
    const huge = "a".repeat(2000);
    assert.deepEqual(keys({ email: `${huge}@example.com`, username: huge, serviceName: huge, extraWords: [huge] }), []);
    assert.deepEqual(keys({ username: "b".repeat(1024) }).length, 1);
  });
});

describe("matchContextWords", () => {
  test("finds words anywhere in the password, case-insensitively and after NFKC", () => {
    const words = contextWords({ username: "Alice", email: "bob.stone@example.com" }, 4);
    assert.deepEqual(matchContextWords("xxALICExx", words), ["username"]);
    assert.deepEqual(matchContextWords("ＡＬＩＣＥ in wonderland", words), ["username"]);
    assert.deepEqual(matchContextWords("rolling-stones-alice", words), ["email", "username"]); // in derivation order
    assert.deepEqual(matchContextWords("nothing to see here", words), []);
  });

  test("attack: separators in the password do not hide a context word (j.smith, a-l-i-c-e), and short bare pieces match nothing", () => {
    const words = contextWords({ username: "jsmith", email: "alice@example.com", serviceName: "Acme Corp" }, 4);
    assert.deepEqual(matchContextWords("j.smith-battery-horse-staple", words), ["username"]);
    assert.deepEqual(matchContextWords("a-l-i-c-e in wonderland again", words), ["email"]);
    assert.deepEqual(matchContextWords("my a c m e c o r p password", words), ["service name"]);
    // "j.s." strips to "js": too short to mean anything, so an unrelated "js" does not match.
    assert.deepEqual(matchContextWords("i write js for a living", contextWords({ username: "j.s." }, 4)), []);
  });

  test("attack: accents do not hide a name, either way round: folded on both sides (ASVS 6.2.11)", () => {
    const words = contextWords({ extraWords: ["Zoë Ångström", "İLKER YILMAZ", "Søren Łukasz Strauß"] }, 4);
    assert.deepEqual(matchContextWords("angstrom copper meadow dawn", words), ["site-specific word"]);
    assert.deepEqual(matchContextWords("ilker copper meadow dawn", words), ["site-specific word"]);
    assert.deepEqual(matchContextWords("copper-soren-meadow", words), ["site-specific word"]);
    assert.deepEqual(matchContextWords("lukasz in the meadow", words), ["site-specific word"]);
    assert.deepEqual(matchContextWords("johann strauss waltz", words), ["site-specific word"]);
    assert.deepEqual(matchContextWords("a-n-g-s-t-r-o-m at dawn", words), ["site-specific word"]);
    // The account spelt plainly, the password with accents.
    assert.deepEqual(matchContextWords("Ångström copper meadow dawn", contextWords({ username: "angstrom" }, 4)), ["username"]);
    assert.deepEqual(matchContextWords("copper meadow whistles softly", words), []);
  });

  test("a word folded shorter than the minimum is not matched folded (a Devanagari name without its vowel signs)", () => {
    // अनिल (Anil) is 4 code points, 3 once its vowel sign ि is dropped: too short to mean anything folded.
    const words = contextWords({ username: "\u0905\u0928\u093f\u0932" }, 4);
    assert.deepEqual(words, [{ source: "username", key: "\u0905\u0928\u093f\u0932" }]);
    assert.deepEqual(matchContextWords("my \u0905\u0928\u0932 is long enough", words), []);
    assert.deepEqual(matchContextWords("my \u0905\u0928\u093f\u0932 is long enough", words), ["username"]);
  });

  test("a name in a script with combining marks stays whole (not cut at every vowel sign)", () => {
    const words = contextWords({ username: "\u0905\u0928\u093f\u0932_kumar" }, 4); // अनिल (Anil), with the vowel sign ि
    assert.deepEqual(words.map((w) => w.key), ["\u0905\u0928\u093f\u0932_kumar", "\u0905\u0928\u093f\u0932", "kumar"]);
    assert.deepEqual(matchContextWords("my name is \u0905\u0928\u093f\u0932 and this is long", words), ["username"]);
  });
});
