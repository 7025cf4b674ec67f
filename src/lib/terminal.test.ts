// What reaches an operator's terminal from untrusted text (ASVS 16.4.1).
import assert from "node:assert/strict";
import { it } from "node:test";
import { escapeControls, inertJSON } from "./terminal.ts";

it("attack: controls, bidirectional overrides and unpaired surrogates are shown, never sent; pairs and ordinary text are kept", () => {
  assert.equal(escapeControls("a\u001b[2Jb\u009b"), "a\\x1b[2Jb\\x9b");
  // "invoice<RLO>fdp.sh" would show as "invoicehs.pdf".
  assert.equal(escapeControls("invoice\u202efdp.sh \u2066x\u2069 \u200f"), "invoice\\u202efdp.sh \\u2066x\\u2069 \\u200f");
  // A byte of a non-UTF-8 file name (checks/files) is shown as that byte; another lone surrogate by its code.
  assert.equal(escapeControls("run\udcfe \ud800z \udc10"), "run\\xfe \\ud800z \\udc10");
  assert.equal(escapeControls("Clé 鍵 \ud83d\ude00 tab\tend"), "Clé 鍵 \ud83d\ude00 tab\\x09end");
});

it("attack: inertJSON writes U+2028 and U+2029 escaped, so a reader splitting lines the Unicode way still sees one value per line", () => {
  const value = { reason: "fraud review\u2028[]\u2029", rlo: "x\u202egnp.sh", csi: "\u009b2J" };
  const json = inertJSON(value);
  assert.equal(json, "{\"reason\":\"fraud review\\u2028[]\\u2029\",\"rlo\":\"x\\u202egnp.sh\",\"csi\":\"\\u009b2J\"}");
  assert.equal(/[\u2028\u2029]/.test(json), false);
  assert.deepEqual(JSON.parse(json), value);
});

it("attack: default-ignorable characters (zero-width space, soft hyphen, BOM, word joiner, tag characters) are shown as \\uNNNN, so a twin never reads as the genuine name", () => {
  // "setup.exe" + U+200B, "set" + U+00AD + "up.exe", … all read "setup.exe" on a terminal.
  assert.equal(escapeControls("setup.exe\u200b set\u00adup.exe \ufeffsetup.exe setup\u2060.exe"), "setup.exe\\u200b set\\u00adup.exe \\ufeffsetup.exe setup\\u2060.exe");
  // A character past U+FFFF (a tag character, invisible) is written as its two surrogates, as JSON writes it.
  assert.equal(escapeControls("a\u{e0041}b"), "a\\udb40\\udc41b");
  const value = { name: "setup.exe\u200b", tag: "x\u{e0041}", joined: "\u{1f469}\u200d\u{1f4bb}" };
  const json = inertJSON(value);
  assert.equal(json, "{\"name\":\"setup.exe\\u200b\",\"tag\":\"x\\udb40\\udc41\",\"joined\":\"\u{1f469}\\u200d\u{1f4bb}\"}");
  assert.deepEqual(JSON.parse(json), value);
});
