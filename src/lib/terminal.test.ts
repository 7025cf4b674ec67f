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
