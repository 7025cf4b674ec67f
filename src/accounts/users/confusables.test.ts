// The confusable skeleton (confusables.ts): identifiers that read alike share one, ASCII is never folded into ASCII,
// and the table holds only what its header says it holds. ASVS 1.1.1 (look-alike identifiers), UTS #39 §4.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CONFUSABLE_COUNT, confusableSkeleton as skeleton, READS_AS } from "./confusables.ts";
import { identifierKey } from "./normalise.ts";

describe("confusable skeletons", () => {
  it("whole-script look-alikes read as the Latin name: Cyrillic, Greek, Armenian, Cherokee, capitals included", () => {
    const pairs: Array<[string, string]> = [
      ["\u0455\u0441\u043e\u0440\u0435", "scope"], // ѕсоре
      ["\u0440\u0430\u0443@example.org", "pay@example.org"], // рау@
      ["\u0405\u0441\u043e\u0440\u0435", "Scope"], // Ѕсоре, a Cyrillic capital Ѕ
      ["\u0412\u041e\u0412", "bob"], // ВОВ, Cyrillic capitals
      ["\u0391\u03a1\u03a1", "app"], // ΑΡΡ, Greek capitals
      ["g\u0585\u0585gle", "google"], // Armenian օ
      ["\u13aa\u13a0\u13b7\u13a5N", "admin"], // Cherokee ᎪᎠᎷᎥ and a Latin N
      ["\u0261ithub", "github"], // Latin script g (ɡ), beyond ASCII
    ];
    for (const [lookalike, plain] of pairs) assert.equal(skeleton(lookalike), skeleton(plain), `${lookalike} / ${plain}`);
  });

  it("an accented look-alike meets the accented Latin letter (NFD first): ё is ë", () => {
    assert.equal(skeleton("\u0451l"), skeleton("\u00ebl"));
    assert.equal(skeleton("\u0435\u0308l"), skeleton("\u00ebl"));
  });

  it("ASCII is never folded into ASCII: ian and lan, bob1 and bobl, rn and m stay apart (they are different people's names)", () => {
    for (const [a, b] of [["ian", "lan"], ["bob1", "bobl"], ["arnie", "amie"], ["0scar", "oscar"]]) assert.notEqual(skeleton(a as string), skeleton(b as string), `${a} / ${b}`);
  });

  it("letters with no Latin look-alike stay themselves: a Russian name does not meet a Latin one", () => {
    // борис: б, о, р and с have look-alikes (6, o, p, c), и has none, so it stays Cyrillic and meets no Latin name.
    assert.equal(skeleton("\u0431\u043e\u0440\u0438\u0441"), "6op\u0438c");
    assert.notEqual(skeleton("\u0431\u043e\u0440\u0438\u0441"), skeleton("boris"));
    assert.notEqual(skeleton("\u0436\u0435\u043d\u044f"), skeleton("zhenya"));
  });

  it("a plain identifier's skeleton is its lookup key, and a skeleton is its own skeleton", () => {
    for (const plain of ["Ana.Silva@Example.org", " bob ", "x_y-z.9"]) assert.equal(skeleton(plain), identifierKey(plain));
    for (const any of ["\u0455\u0441\u043e\u0440\u0435", "Ёжик", "g\u0585\u0585gle", "Stra\u00dfe"]) assert.equal(skeleton(skeleton(any)), skeleton(any));
  });

  it("the table holds what its header says: 475 single code points, none ASCII, none changed by NFKC or NFD, each read as ASCII letters or digits", () => {
    let entries = 0;
    for (const [ascii, lookalikes] of Object.entries(READS_AS)) {
      assert.match(ascii, /^[A-Za-z0-9]+$/);
      for (const c of lookalikes) {
        entries++;
        assert.ok(c.codePointAt(0)! > 0x7f, `U+${c.codePointAt(0)!.toString(16)} is ASCII`);
        assert.equal(c.normalize("NFKC"), c, `U+${c.codePointAt(0)!.toString(16)} changes under NFKC`);
        assert.equal(c.normalize("NFD"), c, `U+${c.codePointAt(0)!.toString(16)} changes under NFD`);
      }
    }
    assert.equal(entries, 475);
    assert.equal(CONFUSABLE_COUNT, entries + 1, "no look-alike is listed under two readings; the dotless j is the one addition");
  });

  it("each look-alike reads as what it is drawn as: I-shaped capitals as I, digit ones as 1, digit zeros as 0, two-letter ones as both letters", () => {
    const pairs: Array<[string, string]> = [
      ["\u0422\u0406\u041c", "tim"], // ТІМ: Cyrillic capitals, І drawn as I
      ["\ua4ee\ua4d3\ua4df\ua4f2\ua4e0", "admin"], // ꓮꓓꓟꓲꓠ: Lisu
      ["bob\u0661", "bob1"], // Arabic-Indic one
      ["agent\u09e6\u09e67", "agent007"], // Bengali zeros
      ["bi\u01c1", "bill"], // ǁ: "ll"
      ["g\ua74fgle", "google"], // ꝏ: "oo"
    ];
    for (const [lookalike, plain] of pairs) assert.equal(skeleton(lookalike), skeleton(plain), `${lookalike} / ${plain}`);
  });

  it("a capital the table lacks reads as its small letter does, and a dot drawn back on a dotless i or j vanishes", () => {
    assert.equal(skeleton("\u04ba\u043e\u0440\u0435"), skeleton("hope")); // Һоре: the capital of һ
    assert.equal(skeleton("adm\u0131\u0307n"), skeleton("admin")); // ı + U+0307
    assert.equal(skeleton("\u0237\u0307ohn"), skeleton("john")); // ȷ + U+0307
    assert.equal(skeleton("\u0130van"), skeleton("ivan")); // İ
  });
});
