// Known-answer vectors from independent implementations (passlib, PHP, openssl, mkpasswd, hashcat,
// coreutils; see vectors/README.md): every scheme identifies, verifies and refuses as they say.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { systemRandom } from "../../lib/random.ts";
import { createPasswordContext } from "./context.ts";
import { saltedFromTemplate } from "./salted.ts";
import { SCHEME_IDS, type SchemeId } from "./scheme.ts";

interface Vector {
  scheme: SchemeId;
  password: string;
  hash?: string;
  template?: string;
  salt?: string;
  digest?: string;
  match: boolean;
  source: string;
  case?: string;
}

const FILES = ["passlib.json", "php.json", "tools.json", "hashcat.json"] as const;
const load = (file: string): Vector[] =>
  (JSON.parse(readFileSync(new URL(`./vectors/${file}`, import.meta.url), "utf8")) as { vectors: Vector[] }).vectors;
const all = FILES.flatMap((f) => load(f).map((v) => ({ ...v, file: f })));
const hashOf = (v: Vector): string => v.hash ?? saltedFromTemplate(v.template!, v.salt!, v.digest!);

// Cheap argon2id for the wrap layer: these tests are about the legacy formats, not argon2 itself.
const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });

describe("known-answer vectors", () => {
  test("cover every scheme id except the wrapped form, with positives and both kinds of negative", () => {
    for (const id of SCHEME_IDS.filter((s) => s !== "bulwark-wrapped")) {
      const mine = all.filter((v) => v.scheme === id);
      assert.ok(mine.filter((v) => v.match).length >= 3, `${id} has at least 3 positive vectors`);
      assert.ok(mine.some((v) => v.case === "wrong password"), `${id} has a wrong-password vector`);
      assert.ok(mine.some((v) => v.case === "tampered hash"), `${id} has a tampered-hash vector`);
    }
  });

  for (const file of FILES) {
    test(`identify and verify every vector of ${file}`, async () => {
      for (const v of all.filter((x) => x.file === file)) {
        const hash = hashOf(v);
        const label = `${v.scheme} ${v.case ?? "match"} ${JSON.stringify(v.password)} ${hash}`;
        assert.equal(passwords.identify(hash), v.scheme, label);
        assert.equal(await passwords.verify(v.password, hash), v.match, label);
      }
    });
  }

  test("unicode and empty passwords are among the vectors that match", () => {
    assert.ok(all.some((v) => v.match && v.password === ""));
    assert.ok(all.some((v) => v.match && /[^\x00-\x7f]/.test(v.password)));
  });

  test("a wrapped legacy hash verifies exactly when the legacy hash does", async () => {
    const fast = all.filter((v) => passwords.isWrappable(hashOf(v)));
    assert.ok(fast.length > 300);
    const seen = new Set<string>();
    for (const v of fast) {
      const hash = hashOf(v);
      const wrapped = await passwords.wrapLegacyHash(hash);
      seen.add(v.scheme);
      const label = `${v.scheme} ${v.case ?? "match"} ${hash} → ${wrapped}`;
      assert.equal(passwords.identify(wrapped), "bulwark-wrapped", label);
      assert.equal(await passwords.verify(v.password, wrapped), v.match, label);
    }
    assert.equal(seen.size, SCHEME_IDS.length - 5, "every fast scheme was wrapped (all but argon2id, argon2i, bcrypt, scrypt, wrapped)");
  });
});
