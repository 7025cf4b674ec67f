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

  test("keeps extra words whole and ignores empty context", () => {
    assert.deepEqual(keys({ extraWords: ["Mega Corp", "x"] }), ["mega corp"]);
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
});
