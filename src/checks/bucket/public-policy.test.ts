// AWS's test of a public bucket policy, which alone switches RestrictPublicBuckets on (S3 User Guide, "The meaning of
// 'public'"): a statement AWS may read as non-public must not make the evaluator drop grants AWS still serves.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePublicAccessBlock } from "./acl-parse.ts";
import { checkBucket } from "./check.ts";
import { parseBucketPolicy } from "./policy-parse.ts";
import { mayBeNonPublicToAWS } from "./public-policy.ts";

const OWNER = "111122223333";
const PARTNER = "444455556666";
const B = "arn:aws:s3:::acme-data";
const ALL = { PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true } };
const partner = { Sid: "Partner", Effect: "Allow", Principal: { AWS: `arn:aws:iam::${PARTNER}:root` }, Action: "s3:GetObject", Resource: `${B}/*` };
const open = (condition?: Record<string, unknown>) => ({ Sid: "Open", Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: `${B}/*`, ...(condition ? { Condition: condition } : {}) });

function statementOf(condition: Record<string, unknown>) {
  return parseBucketPolicy(JSON.stringify({ Statement: [open(condition)] }), "p.json").statements[0]!;
}

function check(statements: object[]) {
  return checkBucket({
    policy: parseBucketPolicy(JSON.stringify({ Statement: statements }), "p.json"),
    publicAccessBlock: parsePublicAccessBlock(JSON.stringify(ALL), "pab.json"),
    ownerAccount: OWNER,
  });
}

test("fixed values of the keys AWS lists may be non-public; wildcards, variables, negations and ranges past AWS's line are public", () => {
  for (const condition of [
    { StringEquals: { "s3:DataAccessPointAccount": OWNER } },
    { ArnLike: { "s3:DataAccessPointArn": `arn:aws:s3:us-west-2:${OWNER}:accesspoint/*` } },
    { StringEquals: { "aws:SourceVpce": "vpce-1a2b3c4d" } },
    { IpAddress: { "aws:SourceIp": ["10.0.0.0/8", "11.0.0.0/8"] } },
    { IpAddressIfExists: { "aws:SourceIp": "198.51.100.7/32" } },
    { IpAddress: { "aws:SourceIp": "2001:db8::/32" } },
    { StringLike: { "aws:userid": "AROAEXAMPLEID:*" } },
  ]) assert.equal(mayBeNonPublicToAWS(statementOf(condition)), true, JSON.stringify(condition));
  for (const condition of [
    { StringLike: { "aws:SourceVpc": "vpc-*" } },
    { ArnLike: { "s3:DataAccessPointArn": "arn:aws:s3:us-west-2:*:accesspoint/*" } },
    { StringEquals: { "aws:SourceAccount": "${aws:PrincipalAccount}" } },
    { StringNotEquals: { "aws:SourceVpce": "vpce-1a2b3c4d" } },
    { IpAddress: { "aws:SourceIp": "10.0.0.0/7" } },
    { IpAddress: { "aws:SourceIp": "2001:db8::/31" } },
    { StringLike: { "aws:userid": "AROA*" } },
    { Bool: { "aws:SecureTransport": "true" } },
  ]) assert.equal(mayBeNonPublicToAWS(statementOf(condition)), false, JSON.stringify(condition));
});

test("RestrictPublicBuckets is applied only to a policy AWS certainly calls public: a partner's grant survives beside a union of /8s", () => {
  const union = check([open({ IpAddress: { "aws:SourceIp": ["10.0.0.0/8", "11.0.0.0/8"] } }), partner]);
  assert.equal(union.access.restrictPublicBucketsApplied, false);
  // Not restricted, so both grants are reported: the union is as wide as a /7 (anonymous read), and the partner's.
  assert.equal(union.access.anonymous.read.allowed, true);
  assert.equal(union.access.named.find((n) => n.caller.kind === "account" && n.caller.account === PARTNER)?.read.allowed, true);
  const plain = check([open(), partner]);
  assert.equal(plain.access.restrictPublicBucketsApplied, true);
  assert.deepEqual(plain.findings.filter((f) => f.id !== "bucket.no-secure-transport"), []);
});
