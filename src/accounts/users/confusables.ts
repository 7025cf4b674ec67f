// Confusable skeletons of identifiers (UTS #39 §4 "skeleton", narrowed): two identifiers with the same skeleton read
// alike to a person, though they are different text with different lookup keys. "ѕсоре" (all Cyrillic) and "scope",
// or "рау@example.org" and "pay@example.org", have one skeleton: an account whose identifier has the skeleton of
// another account's is refused (migration 23 stores them). ASVS 1.1.1 / UTS #39 §5.
//
// The table: every entry of UTS #39 confusables.txt (version 14.0.0, https://www.unicode.org/reports/tr39) whose
// prototype is ASCII letters or digits and whose source is one code point that is not ASCII, that NFKC leaves as it
// is (compatibility characters — full-width, styled and mathematical letters — are refused outright by
// normalise.ts) and that NFD leaves as it is (an accented one is split first and its base letter mapped). 475 entries:
// Cyrillic, Greek, Armenian, Cherokee, Lisu, Coptic, Canadian syllabics, Latin letters beyond ASCII (ɑ, ı, ᴏ, æ as
// "ae", ǁ as "ll") and a few symbols (×, ∨, ∞ as "oo"), grouped by the ASCII text they read as.
//
// Narrower than the standard's skeleton on purpose: it does not fold ASCII into ASCII (UTS #39 maps "I" and "1" to
// "l", "0" to "O", "rn" to "m"). Those pairs are distinct, common names in Latin text ("ian" and "lan", "bob1" and
// "bobl"): refusing them would turn away real, different people, while characters of other scripts that read as Latin
// have no honest use in a name that reads as Latin. One consequence: the standard sends its I-shaped capitals, its
// digit ones and its digit zeros to "l" and "O" only because it folds "I", "1" and "0" there too; here each reads as
// what it is drawn as — an I-shaped capital (Greek Ι, Cyrillic І, Lisu ꓲ) as "I", a digit one (Arabic-Indic ١) as "1",
// a digit zero (Bengali ০) as "0" — so "ТІМ" meets "tim" and "bob١" meets "bob1". A vertical stroke that is neither (the
// Hebrew vav ו, the click ǀ) stays "l": it meets "l" but not "i" or "1", the one reading a single skeleton can hold.
// After the mapping the text is lower-cased, as lookup keys are: "Ѕcope" (a Cyrillic capital Ѕ) reads as "Scope", the
// same account as "scope" to anyone reading a list; a letter the table lacks is looked up by its other case (Һ as һ,
// Cherokee ꭰ as Ꭰ). A combining dot above on i or j (a dotless ı or ȷ with U+0307 drawn back on) is dropped: it shows nothing.

/** For each ASCII text, the characters UTS #39 says read as it (see the header). */
export const READS_AS: Readonly<Record<string, string>> = {
  "0": "\u07C0\u0966\u09E6\u0A66\u0AE6\u0B20\u0B66\u0BE6\u0C66\u0CE6\u0D66\u0E50\u0ED0\u1040\u3007" +
    "\u{114D0}\u{118E0}",
  "1": "\u0627\u0661\u06F1\u{1E8C7}",
  "2": "\u01A7\u03E8\u14BF\uA644\uA6EF\uA75A",
  "3": "\u01B7\u021C\u0417\u04E0\u2CCC\uA76A\uA7AB\u{118CA}\u{16F3B}\u{1D206}",
  "4": "\u13CE\u{118AF}",
  "5": "\u01BC\u{118BB}",
  "6": "\u0431\u13EE\u2CD2\u{118D5}",
  "7": "\u{104D2}\u{118C6}\u{1D212}",
  "8": "\u0222\u0223\u09EA\u0A6A\u0B03\u{1031A}\u{1E8CB}",
  "9": "\u09ED\u0A67\u0B68\u0D6D\u2CCA\uA76E\u{118AC}\u{118CC}\u{118D6}",
  A: "\u0391\u0410\u13AA\u15C5\uA4EE\u{102A0}\u{16F40}",
  "AA": "\uA732",
  "AE": "\u00C6\u04D4",
  "AO": "\uA734",
  "AR": "\u{1F707}",
  "AU": "\uA736",
  "AV": "\uA738\uA73A",
  "AY": "\uA73C",
  B: "\u0392\u0412\u13F4\u15F7\uA4D0\uA7B4\u{10282}\u{102A1}\u{10301}",
  C: "\u0421\u13DF\u2CA4\uA4DA\u{102A2}\u{10302}\u{10415}\u{1051C}\u{118E9}\u{118F2}\u{1F74C}",
  D: "\u13A0\u15DE\u15EA\uA4D3",
  E: "\u0395\u0415\u13AC\u22FF\u2D39\uA4F0\u{10286}\u{118A6}\u{118AE}",
  F: "\u03DC\u15B4\uA4DD\uA798\u{10287}\u{102A5}\u{10525}\u{118A2}\u{118C2}\u{1D213}",
  G: "\u050C\u13C0\u13F3\uA4D6",
  H: "\u0397\u041D\u13BB\u157C\u2C8E\uA4E7\u{102CF}",
  I: "\u0196\u0399\u0406\u04C0\u16C1\u23FD\u2C92\uA4F2\u{1028A}\u{10309}\u{10320}\u{16F28}",
  J: "\u037F\u0408\u13AB\u148D\uA4D9\uA7B2",
  K: "\u039A\u041A\u13E6\u16D5\u2C94\uA4D7\u{10518}",
  L: "\u13DE\u14AA\u2CD0\uA4E1\u{1041B}\u{10526}\u{118A3}\u{118B2}\u{16F16}\u{1D22A}",
  M: "\u039C\u03FA\u041C\u13B7\u15F0\u16D6\u2C98\uA4DF\u{102B0}\u{10311}",
  "MB": "\u{1F76B}",
  N: "\u039D\u2C9A\uA4E0\u{10513}",
  O: "\u039F\u041E\u0555\u12D0\u2C9E\u2D54\uA4F3\u{10292}\u{102AB}\u{10404}\u{104C2}\u{10516}\u{118B5}",
  "OE": "\u0152",
  "OO": "\uA698\uA74E",
  P: "\u03A1\u0420\u13E2\u146D\u2CA2\uA4D1\u{10295}",
  Q: "\u2D55",
  "QE": "\u{1F700}",
  R: "\u01A6\u13A1\u13D2\u1587\uA4E3\u{104B4}\u{16F35}\u{1D216}",
  S: "\u0405\u054F\u13D5\u13DA\uA4E2\u{10296}\u{10420}\u{16F3A}",
  T: "\u03A4\u0422\u13A2\u22A4\u27D9\u2CA6\uA4D4\u{10297}\u{102B1}\u{10315}\u{118BC}\u{16F0A}\u{1F768}",
  "T3": "\uA728",
  U: "\u054D\u1200\u144C\u222A\u22C3\uA4F4\u{104CE}\u{118B8}\u{16F42}",
  V: "\u0474\u0667\u06F7\u13D9\u142F\u2D38\uA4E6\uA6DF\u{1051D}\u{118A0}\u{16F08}\u{1D20D}",
  "VB": "\u{1F76C}",
  W: "\u051C\u13B3\u13D4\uA4EA\u{118E6}\u{118EF}",
  X: "\u03A7\u0425\u166D\u16B7\u2573\u2CAC\u2D5D\uA4EB\uA7B3\u{10290}\u{102B4}\u{10317}\u{10322}" +
    "\u{10527}\u{118EC}",
  Y: "\u03A5\u0423\u04AE\u13A9\u13BD\u2CA8\uA4EC\u{102B2}\u{118A4}\u{16F43}",
  Z: "\u0396\u13C3\uA4DC\u{102F5}\u{118A9}\u{118E5}",
  a: "\u0251\u03B1\u0430\u237A",
  "aa": "\uA733",
  "ae": "\u00E6\u04D5",
  "ao": "\uA735",
  "au": "\uA737",
  "av": "\uA739\uA73B",
  "ay": "\uA73D",
  b: "\u0184\u042C\u13CF\u1472\u15AF",
  "bl": "\u042B",
  c: "\u0441\u1D04\u2CA5\uABAF\u{1043D}",
  d: "\u0501\u13E7\u146F\uA4D2",
  "dz": "\u02A3",
  e: "\u0435\u04BD\u212E\uAB32",
  f: "\u0584\u1E9D\uA799\uAB35",
  g: "\u018D\u0261\u0581\u1D83",
  h: "\u04BB\u0570\u13C2",
  i: "\u0131\u0269\u026A\u03B9\u0456\u04CF\u13A5\u2373\uA647\uAB75\u{118C3}",
  j: "\u03F3\u0458",
  l: "\u01C0\u05C0\u05D5\u05DF\u07CA\u2223\u2D4F",
  "lO": "\u042E",
  "ll": "\u01C1\u05F0\u2016\u2225",
  "ls": "\u02AA",
  "lt": "\u20B6",
  "lz": "\u02AB",
  n: "\u0578\u057C",
  o: "\u03BF\u03C3\u043E\u0585\u05E1\u0647\u0665\u06BE\u06C1\u06D5\u06F5\u0C02\u0C82\u0D02\u0D20\u0D82" +
    "\u101D\u10FF\u1D0F\u1D11\u2C9F\uAB3D\u{1042C}\u{104EA}\u{118C8}\u{118D7}",
  "oe": "\u0153",
  "oo": "\u221E\uA699\uA74F",
  p: "\u03C1\u0440\u2374\u2CA3",
  q: "\u051B\u0563\u0566",
  r: "\u0433\u1D26\u2C85\uAB47\uAB48\uAB81",
  "rn": "\u{11700}\u{118E3}",
  s: "\u01BD\u0455\uA731\uABAA\u{10448}\u{118C1}",
  "sss": "\u{1F75C}",
  "tf": "\uA777",
  "ts": "\u02A6",
  u: "\u028B\u03C5\u057D\u1D1C\uA79F\uAB4E\uAB52\u{104F6}\u{118D8}",
  "ue": "\u1D6B",
  "uo": "\uAB63",
  v: "\u03BD\u0475\u05D8\u1D20\u2228\u22C1\uABA9\u{11706}\u{118C0}",
  w: "\u026F\u0461\u051D\u0561\u1D21\uAB83\u{1170A}\u{1170E}\u{1170F}",
  x: "\u00D7\u0445\u1541\u157D\u166E\u292B\u292C\u2A2F",
  y: "\u0263\u028F\u03B3\u0443\u04AF\u10E7\u1D8C\u1EFF\uAB5A\u{118DC}",
  z: "\u1D22\uAB93\u{118C4}",
};

/**
 * Look-alikes UTS #39 14.0.0 does not list, with the ASCII they read as: the dotless j (ȷ, U+0237) is a j without its
 * dot, and with a combining dot above (U+0307) it is drawn exactly as j (the dotless ı is listed, as i).
 */
const NOT_LISTED: Readonly<Record<string, string>> = { "\u0237": "j" };

const TO_ASCII: ReadonlyMap<string, string> = new Map([
  ...Object.entries(READS_AS).flatMap(([ascii, lookalikes]) => [...lookalikes].map((c) => [c, ascii] as const)),
  ...Object.entries(NOT_LISTED),
]);

/**
 * The reading of `c` through its other case, when the table lists only that one: a capital by its small letter (Һ as
 * һ), a small letter by its capital (Cherokee ꭰ as Ꭰ, ʀ as Ʀ). Either spelling has the same lookup key, so it must
 * get the same answer. Only a one-character case mapping counts.
 */
function byOtherCase(c: string): string | undefined {
  for (const other of [c.toLowerCase(), c.toUpperCase()]) {
    if (other !== c && [...other].length === 1) {
      const ascii = TO_ASCII.get(other);
      if (ascii !== undefined) return ascii;
    }
  }
  return undefined;
}

/** A combining dot above (U+0307) right after i or j: drawn over a letter that shows a dot already. */
const DOT_ON_DOTTED = /([ij])\u0307/g;

/**
 * The skeleton of an identifier as the account shows it (an email address or a username, before any lookup-key
 * folding): NFD, each look-alike replaced by the ASCII it reads as (a letter the table lacks by its other case's),
 * lower case, a dot above on i or j dropped, NFC.
 *
 * @example
 * confusableSkeleton("\u0455\u0441\u043e\u0440\u0435") === confusableSkeleton("scope") // true: ѕсоре, all Cyrillic
 * confusableSkeleton("Scope") === "scope" // and a plain one is its lookup key
 * confusableSkeleton("lan") === confusableSkeleton("ian") // false: ASCII is never folded into ASCII
 */
export function confusableSkeleton(identifier: string): string {
  let mapped = "";
  for (const c of identifier.trim().normalize("NFD")) mapped += TO_ASCII.get(c) ?? byOtherCase(c) ?? c;
  return mapped.toLowerCase().replace(DOT_ON_DOTTED, "$1").normalize("NFC");
}

/** The number of look-alikes mapped (for tests and docs). */
export const CONFUSABLE_COUNT = TO_ASCII.size;
