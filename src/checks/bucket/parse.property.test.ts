// Property tests: random and hostile input (junk, deep nesting, huge strings, wrong types, unicode)
// gives a result or a BucketInputError, never a crash or a hang; and evaluation obeys the laws of
// S3 authorization on random policies (an unconditional Deny-all removes every exposure; removing
// Denies never removes exposure).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseBucketACL, parsePublicAccessBlock } from "./acl-parse.ts";
import { checkBucket } from "./check.ts";
import { BucketInputError } from "./errors.ts";
import { MAX_INPUT_BYTES } from "./json-input.ts";
import { parseBucketPolicy } from "./policy-parse.ts";

const PARSERS = [parseBucketPolicy, parseBucketACL, parsePublicAccessBlock] as const;

/** Runs every parser (and, when it parses, the evaluation) on `text`: only BucketInputError may escape. */
function survives(text: string): void {
  for (const parse of PARSERS) {
    try {
      const parsed = parse(text, "in.json");
      if (parse === parseBucketPolicy) checkBucket({ policy: parsed as ReturnType<typeof parseBucketPolicy> });
      if (parse === parseBucketACL) checkBucket({ acl: parsed as ReturnType<typeof parseBucketACL> });
    } catch (error) {
      assert.ok(error instanceof BucketInputError, `unexpected ${(error as Error)?.stack ?? String(error)}`);
      assert.match(error.message, /^in\.json/);
    }
  }
}

test("random JSON values of any shape give a result or a clear input error", () => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => survives(JSON.stringify(v) ?? "null")), { numRuns: 500 });
});

test("random policy-like objects with wrong types give a result or a clear input error", () => {
  const any = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }));
  const statement = fc.record({
    Sid: any, Effect: fc.oneof(fc.constantFrom("Allow", "Deny"), any), Principal: fc.oneof(fc.constant("*"), fc.record({ AWS: any }), any),
    Action: fc.oneof(fc.constantFrom("s3:*", "s3:Get*"), any), Resource: fc.oneof(fc.constant("arn:aws:s3:::b/*"), any),
    Condition: fc.oneof(fc.record({ StringEquals: fc.dictionary(fc.string(), any, { maxKeys: 2 }) }), any),
  }, { requiredKeys: [] });
  fc.assert(fc.property(fc.array(statement, { maxLength: 4 }), (sts) => {
    survives(JSON.stringify({ Statement: sts }));
    survives(JSON.stringify({ Policy: JSON.stringify({ Statement: sts }) }));
  }), { numRuns: 500 });
});

test("binary junk and arbitrary unicode give a clear input error", () => {
  fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 200 }), (s) => survives(s)), { numRuns: 100 });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => survives(Buffer.from(bytes).toString("utf8"))), { numRuns: 300 });
});

test("refuses deep nesting, huge input and over-long patterns with clear errors", () => {
  assert.throws(() => parseBucketPolicy("[".repeat(200_000), "in.json"), /in\.json: JSON nests deeper than/);
  assert.throws(() => parseBucketPolicy(JSON.stringify({ Policy: `${"{\"a\":".repeat(100)}1${"}".repeat(100)}` }), "in.json"), /in\.json \(Policy\): JSON nests deeper/);
  assert.throws(() => parseBucketPolicy(" ".repeat(MAX_INPUT_BYTES + 1), "in.json"), /larger than/);
  const long = { Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:*", Resource: `arn:aws:s3:::b/${"*a".repeat(2000)}` }] };
  assert.throws(() => parseBucketPolicy(JSON.stringify(long), "in.json"), /longer than 2048 characters/);
  // Brackets inside strings are text, not nesting.
  assert.doesNotThrow(() => parseBucketPolicy(JSON.stringify({ Statement: [], Note: "[".repeat(100_000) }), "in.json"));
});

test("a policy of many long wildcard patterns is refused as too complex instead of hanging", () => {
  const pattern = (c: string): string => `arn:aws:s3:::b/${`*${c}`.repeat(1000)}`;
  const statements = Array.from({ length: 60 }, (_, i) => ({
    Effect: i % 2 ? "Deny" : "Allow", Principal: "*", Action: "s3:*", Resource: [pattern(String.fromCharCode(97 + (i % 26)))],
  }));
  const policy = parseBucketPolicy(JSON.stringify({ Statement: statements }), "in.json");
  assert.throws(() => checkBucket({ policy }), (e: unknown) => e instanceof BucketInputError && /too complex/.test(e.message));
});

// Random well-formed policies over a small vocabulary, for the laws of evaluation.
const B = "arn:aws:s3:::b";
const principal = fc.constantFrom<unknown>("*", { AWS: "*" }, { AWS: "444455556666" }, { AWS: "arn:aws:iam::111122223333:root" }, { Service: "cloudfront.amazonaws.com" });
const action = fc.constantFrom("s3:*", "s3:Get*", "s3:GetObject", "s3:List*", "s3:PutObject", "s3:Delete*", "*", "s3:PutBucketAcl");
// "oth?r" reaches no part of b (a literal other bucket makes the policy refused outright: another bucket's).
const resource = fc.constantFrom(B, `${B}/*`, `${B}/public/*`, "*", "arn:aws:s3:::oth?r/*", `${B}*`);
const condition = fc.constantFrom<unknown>(undefined, { Bool: { "aws:SecureTransport": "false" } }, { StringNotEquals: { "aws:PrincipalAccount": "111122223333" } },
  { StringEquals: { "aws:SourceVpce": "vpce-1" } }, { IpAddress: { "aws:SourceIp": "0.0.0.0/0" } }, { IpAddress: { "aws:SourceIp": "10.0.0.0/8" } },
  { StringEqualsIfExists: { "aws:SourceVpc": "vpc-1" } }, { Null: { "aws:SourceVpce": "true" } }, { StringLike: { "aws:Referer": "x*" } });
const statement = fc.record({
  Effect: fc.constantFrom("Allow", "Deny"), neg: fc.boolean(), Principal: principal,
  Action: fc.array(action, { minLength: 1, maxLength: 2 }), Resource: fc.array(resource, { minLength: 1, maxLength: 2 }), Condition: condition,
}).map(({ neg, Condition, ...s }) => {
  const st: Record<string, unknown> = { ...s, ...(Condition ? { Condition } : {}) };
  if (neg) {
    st["NotAction"] = st["Action"];
    delete st["Action"];
  }
  return st;
});
const acl = fc.array(fc.record({
  Grantee: fc.constantFrom({ Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AllUsers" }, { Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AuthenticatedUsers" }, { Type: "CanonicalUser", ID: "foreign" }),
  Permission: fc.constantFrom("READ", "WRITE", "WRITE_ACP", "FULL_CONTROL", "READ_ACP"),
}), { maxLength: 3 });

function exposure(statements: unknown[], grants: unknown[]): { read: boolean; write: boolean } {
  const acl = parseBucketACL(JSON.stringify({ Owner: { ID: "owner" }, Grants: grants }), "a.json");
  const policy = parseBucketPolicy(JSON.stringify({ Statement: statements }), "p.json");
  const check = (p: typeof policy | undefined) => checkBucket({ policy: p, acl, ownerAccount: "111122223333", bucket: "b" }); // b given, not inferred
  let r: ReturnType<typeof check>;
  try {
    r = check(policy);
  } catch (e) {
    // A policy none of whose statements reaches b is another bucket's and refused; on b it grants and denies nothing.
    if (!/no statement of the policy/.test((e as Error).message)) throw e;
    r = check(undefined);
  }
  const who = [r.access.anonymous, r.access.anyAccount, ...r.access.named];
  return { read: who.some((c) => c.read.allowed), write: who.some((c) => c.write.allowed) };
}

test("an unconditional Deny of s3:* to everyone removes every exposure, whatever else the policy says", () => {
  fc.assert(fc.property(fc.array(statement, { maxLength: 6 }), acl, (sts, grants) => {
    const denyAll = { Effect: "Deny", Principal: "*", Action: "s3:*", Resource: [B, `${B}/*`] };
    assert.deepEqual(exposure([...sts, denyAll], grants), { read: false, write: false });
  }), { numRuns: 300 });
});

test("removing Deny statements never removes exposure (Denies only ever narrow)", () => {
  fc.assert(fc.property(fc.array(statement, { maxLength: 6 }), acl, (sts, grants) => {
    const withDenies = exposure(sts, grants);
    const without = exposure(sts.filter((s) => s["Effect"] === "Allow"), grants);
    if (withDenies.read) assert.equal(without.read, true);
    if (withDenies.write) assert.equal(without.write, true);
  }), { numRuns: 300 });
});
