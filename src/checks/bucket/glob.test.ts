import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { globCovers, globMatch, globsIntersect } from "./glob.ts";

test("matches IAM action wildcards case-insensitively when asked", () => {
  assert.equal(globMatch("s3:Get*", "s3:GetObject", { ignoreCase: true }), true);
  assert.equal(globMatch("S3:GETOBJECT", "s3:GetObject", { ignoreCase: true }), true);
  assert.equal(globMatch("s3:Get?bject", "s3:GetObject"), true);
  assert.equal(globMatch("s3:Put*", "s3:GetObject"), false);
  assert.equal(globMatch("arn:aws:s3:::b/*", "arn:aws:s3:::b"), false);
  assert.equal(globMatch("*", ""), true);
});

test("finds a common string for two wildcard patterns when there is one", () => {
  assert.equal(globsIntersect("arn:aws:s3:::b/public/*", "arn:aws:s3:::b/*"), true);
  assert.equal(globsIntersect("arn:aws:s3:::other/*", "arn:aws:s3:::b/*"), false);
  assert.equal(globsIntersect("a*c", "*b*"), true);
  assert.equal(globsIntersect("a?", "?b"), true);
  assert.equal(globsIntersect("ab", "a"), false);
});

test("covers only when every string of the inner pattern matches the outer one", () => {
  assert.equal(globCovers("arn:aws:s3:::b/*", "arn:aws:s3:::b/secret/*"), true);
  assert.equal(globCovers("arn:aws:s3:::b/secret/*", "arn:aws:s3:::b/*"), false);
  assert.equal(globCovers("*", "anything*?"), true);
  assert.equal(globCovers("a?c", "a*c"), false);
});

const small = fc.stringMatching(/^[ab*?]{0,4}$/);
const word = fc.stringMatching(/^[ab]{0,8}$/);

function allWords(maxLen: number): string[] {
  const out = [""];
  for (let i = 0; i < out.length; i++) if (out[i]!.length < maxLen) out.push(`${out[i]}a`, `${out[i]}b`);
  return out;
}
const WORDS = allWords(8);

test("globsIntersect agrees with brute force on small patterns", () => {
  fc.assert(
    fc.property(small, small, (a, b) => {
      // Two patterns of length <= 4 that share a string share one of length <= 8.
      const brute = WORDS.some((w) => globMatch(a, w) && globMatch(b, w));
      assert.equal(globsIntersect(a, b), brute);
    }),
    { numRuns: 400 },
  );
});

test("globCovers never claims a cover that a string disproves (it is sound)", () => {
  fc.assert(
    fc.property(small, small, word, (outer, inner, w) => {
      if (globCovers(outer, inner) && globMatch(inner, w)) assert.equal(globMatch(outer, w), true);
    }),
    { numRuns: 2000 },
  );
});
