// Names shown to people (usernames, passkey and token names) must show what they hold.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { validateUsername } from "../accounts/users/normalise.ts";
import { hidesSomething } from "./visible-text.ts";

describe("hidesSomething", () => {
  it("flags characters that show nothing or break the line, and names with nothing visible", () => {
    const hidden = [
      "\u3164", "admin\u3164", "\u115f", "a\uffa0", "a\u034fb", "\u2800", "key\u2028safe", "key\u2029safe",
      "a\u200bb", "a\u202eb", "a\u0007b", "a\ud800", "\ufe0f", "   ", "\u{e0061}tag",
    ];
    assert.deepEqual(hidden.filter((name) => !hidesSomething(name)).map((n) => JSON.stringify(n)), []);
  });

  it("leaves ordinary names of every script, emoji in their coloured form and punctuation alone", () => {
    const shown = ["YubiKey 5 NFC", "Clé de secours", "Ключ", "鍵", "مفتاح", "कुंजी", "\u2764\ufe0f", "laptop (work) #2", "éa\u0301"];
    assert.deepEqual(shown.filter(hidesSomething), []);
  });

  it("attack: a username that is another one plus a Hangul filler (a second \"admin\") is refused", () => {
    assert.equal(validateUsername("admin"), "admin");
    assert.throws(() => validateUsername("admin\u3164"), /invisible/);
    assert.throws(() => validateUsername("\u2800"), /invisible/);
  });
});
