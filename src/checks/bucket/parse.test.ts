// Parsing of AWS CLI output: both policy shapes, ACLs, public-access blocks, and clear errors
// that name the file and the path of what is wrong.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBucketACL, parsePublicAccessBlock } from "./acl-parse.ts";
import { BucketInputError } from "./errors.ts";
import { parseBucketPolicy } from "./policy-parse.ts";

const doc = { Version: "2012-10-17", Statement: [{ Sid: "A", Effect: "Allow", Principal: { AWS: ["111122223333"] }, Action: "s3:GetObject", Resource: "arn:aws:s3:::b/*" }] };

test("reads a policy document and get-bucket-policy's {\"Policy\": string} wrapper alike", () => {
  const a = parseBucketPolicy(JSON.stringify(doc), "p.json");
  const b = parseBucketPolicy(JSON.stringify({ Policy: JSON.stringify(doc) }), "p.json");
  assert.deepEqual(a, b);
  assert.equal(a.statements[0]?.label, '"A" (#0)');
  assert.deepEqual(a.statements[0]?.principals.aws, ["111122223333"]);
});

test("accepts a single Statement object and lower-cases condition keys", () => {
  const p = parseBucketPolicy(JSON.stringify({ Statement: { Effect: "Deny", Principal: "*", NotAction: "s3:Get*", NotResource: "x", Condition: { Bool: { "aws:SecureTransport": false } } } }), "p.json");
  assert.equal(p.statements[0]?.notAction, true);
  assert.deepEqual(p.statements[0]?.conditions, [{ operator: "Bool", key: "aws:securetransport", values: ["false"] }]);
});

for (const [what, bad, message] of [
  ["malformed JSON", "{", /p\.json: not valid JSON/],
  ["a missing Statement", "{}", /p\.json: the policy has no Statement/],
  ["a wrong Effect", JSON.stringify({ Statement: [{ ...doc.Statement[0], Effect: "allow" }] }), /p\.json: Statement\[0\]\.Effect must be "Allow" or "Deny"/],
  ["both Action and NotAction", JSON.stringify({ Statement: [{ ...doc.Statement[0], NotAction: "x" }] }), /exactly one of Action or NotAction/],
  ["a numeric Resource", JSON.stringify({ Statement: [{ ...doc.Statement[0], Resource: 5 }] }), /Statement\[0\]\.Resource must be a string or a non-empty list of strings, got a number/],
  ["an unknown principal type", JSON.stringify({ Statement: [{ ...doc.Statement[0], Principal: { Bogus: "x" } }] }), /unknown principal type "Bogus"/],
  ["a Policy that is not a string", JSON.stringify({ Policy: {} }), /p\.json: Policy must be a string/],
  ["a broken inner Policy", JSON.stringify({ Policy: "{" }), /p\.json \(Policy\): not valid JSON/],
  ["a nested condition value", JSON.stringify({ Statement: [{ ...doc.Statement[0], Condition: { Bool: { k: [{}] } } }] }), /Condition\.Bool\.k values must be strings/],
] as const) {
  test(`refuses a policy with ${what}, naming the file and the problem`, () => {
    assert.throws(() => parseBucketPolicy(bad, "p.json"), (e: unknown) => e instanceof BucketInputError && message.test(e.message) && e.code === "BULWARK_ERR_BUCKET_INPUT");
  });
}

test("reads get-bucket-acl output", () => {
  const acl = parseBucketACL(JSON.stringify({
    Owner: { DisplayName: "ops", ID: "abc" },
    Grants: [{ Grantee: { Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AllUsers" }, Permission: "READ" },
      { Grantee: { Type: "AmazonCustomerByEmail", EmailAddress: "x@example.org" }, Permission: "WRITE" }],
  }), "a.json");
  assert.equal(acl.ownerId, "abc");
  assert.deepEqual(acl.grants.map((g) => g.label), ["Group AllUsers READ (grant #0)", "AmazonCustomerByEmail x@example.org WRITE (grant #1)"]);
});

test("refuses an ACL grant with an unknown permission or a grantee without its id", () => {
  assert.throws(() => parseBucketACL(JSON.stringify({ Grants: [{ Grantee: { Type: "Group", URI: "u" }, Permission: "ALL" }] }), "a.json"), /a\.json: Grants\[0\]\.Permission must be one of/);
  assert.throws(() => parseBucketACL(JSON.stringify({ Grants: [{ Grantee: { Type: "CanonicalUser" }, Permission: "READ" }] }), "a.json"), /a\.json: Grants\[0\]\.Grantee\.ID must be a non-empty string/);
  assert.throws(() => parseBucketACL("[]", "a.json"), /a\.json: an ACL must be a JSON object, got an array/);
});

test("reads get-public-access-block output and the bare configuration; absent flags are false", () => {
  assert.deepEqual(parsePublicAccessBlock('{"PublicAccessBlockConfiguration":{"IgnorePublicAcls":true}}', "b.json"),
    { BlockPublicAcls: false, IgnorePublicAcls: true, BlockPublicPolicy: false, RestrictPublicBuckets: false });
  assert.equal(parsePublicAccessBlock('{"RestrictPublicBuckets":true}', "b.json").RestrictPublicBuckets, true);
  assert.throws(() => parsePublicAccessBlock('{"PublicAccessBlockConfiguration":{"IgnorePublicAcls":"yes"}}', "b.json"), /b\.json: IgnorePublicAcls must be true or false, got a string/);
  assert.throws(() => parsePublicAccessBlock('{"BlockEverything":true}', "b.json"), /unknown setting "BlockEverything"/);
});

test("names inherited object keys as unknown settings and principal types instead of accepting them or crashing", () => {
  for (const key of ["toString", "constructor", "hasOwnProperty", "__proto__"]) {
    const pab = `{"BlockPublicAcls":true,"IgnorePublicAcls":true,"BlockPublicPolicy":true,"RestrictPublicBuckets":true,"${key}":false}`;
    assert.throws(() => parsePublicAccessBlock(pab, "pab.json"), (e: unknown) => e instanceof BucketInputError && e.message.includes(`unknown setting "${key}"`), key);
    const policy = `{"Statement":[{"Effect":"Allow","Principal":{"${key}":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}`;
    assert.throws(() => parseBucketPolicy(policy, "policy.json"), (e: unknown) => e instanceof BucketInputError && e.message.includes(`unknown principal type "${key}"`), key);
  }
});
