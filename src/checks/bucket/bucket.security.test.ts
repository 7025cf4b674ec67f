// Attacks on the bucket evaluator that must fail: exposure hidden by a Deny the attacker can dodge,
// a strict policy hiding a permissive ACL (seed 004), and the anchors' gaps (Prowler ignores explicit
// Deny and reports cancelled Allows as public; ScoutSuite evaluates no Deny at all).
// ASVS 8.2.2 (data access restricted to consumers with explicit permissions), ASVS 13.3.2 (least privilege).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { Finding } from "../finding.ts";
import { parseBucketACL, parsePublicAccessBlock } from "./acl-parse.ts";
import { checkBucket } from "./check.ts";
import { parseBucketPolicy } from "./policy-parse.ts";

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
const B = "arn:aws:s3:::acme-data";
const ids = (fs: Finding[]): string[] => fs.map((f) => f.id).filter((id) => id !== "bucket.no-secure-transport").sort();

function withDeny(denyCondition: Record<string, unknown> | undefined, denyOver: Record<string, unknown> = {}): Finding[] {
  const doc = {
    Statement: [
      { Sid: "Public", Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: `${B}/*` },
      { Sid: "Guard", Effect: "Deny", Principal: "*", Action: "s3:*", Resource: [B, `${B}/*`], ...(denyCondition ? { Condition: denyCondition } : {}), ...denyOver },
    ],
  };
  return checkBucket({ policy: parseBucketPolicy(JSON.stringify(doc), "policy.json"), ownerAccount: "111122223333" }).findings;
}

test("Prowler gap: a public Allow fully cancelled by an explicit Deny produces no finding at all", () => {
  const r = checkBucket({ policy: parseBucketPolicy(fixture("public-cancelled-policy.json"), "public-cancelled-policy.json"), ownerAccount: "111122223333" });
  assert.deepEqual(r.findings, []);
  assert.equal(r.access.anonymous.read.allowed, false);
  assert.equal(r.access.anyAccount.read.allowed, false);
  assert.deepEqual(r.access.cancelledAllows, ['"PublicRead" (#0)']);
});

test("ScoutSuite gap: an unconditional Deny on everyone is evaluated and removes the public Allow", () => {
  assert.deepEqual(ids(withDeny(undefined)), []);
});

test("Sentry (seed 004): a policy limited to the owner account does not cancel an ACL grant to AuthenticatedUsers", () => {
  const r = checkBucket({
    policy: parseBucketPolicy(fixture("sentry-policy.json"), "sentry-policy.json"),
    acl: parseBucketACL(fixture("sentry-acl.json"), "sentry-acl.json"),
    ownerAccount: "111122223333",
  });
  assert.deepEqual(ids(r.findings), ["bucket.any-aws-account-read", "bucket.conflicting-statements"]);
  const f = r.findings.find((x) => x.id === "bucket.any-aws-account-read");
  assert.equal(f?.severity, "critical");
  assert.deepEqual(f?.evidence["grantedBy"], ["Group AuthenticatedUsers READ (grant #1)"]);
  assert.equal(r.access.anonymous.read.allowed, false, "AuthenticatedUsers is not anonymous");
});

test("attack: dodging a SecureTransport Deny by using HTTPS keeps the bucket public", () => {
  const fs = withDeny({ Bool: { "aws:SecureTransport": "false" } });
  assert.deepEqual(ids(fs), ["bucket.anonymous-read"]);
  const f = fs.find((x) => x.id === "bucket.anonymous-read");
  assert.deepEqual(f?.evidence["uncertainDenies"], [{ statement: '"Guard" (#1)', undecidedKeys: ["aws:securetransport"] }]);
});

test("attack: a Deny keyed on a spoofable Referer does not hide exposure and is flagged as a conflict", () => {
  const fs = withDeny({ StringNotLike: { "aws:Referer": "https://www.example.org/*" } });
  assert.deepEqual(ids(fs), ["bucket.anonymous-read", "bucket.conflicting-statements"]);
});

test("attack: a Deny on one bad IP range leaves every other address in", () => {
  // The Deny never concerns an arbitrary caller, so it is not even a conflict for this class.
  assert.deepEqual(ids(withDeny({ IpAddress: { "aws:SourceIp": "198.51.100.0/24" } })), ["bucket.anonymous-read"]);
});

test("attack: a Deny for requests without a VPC endpoint is dodged through the attacker's own endpoint", () => {
  assert.deepEqual(ids(withDeny({ Null: { "aws:SourceVpce": "true" } })), ["bucket.anonymous-read", "bucket.conflicting-statements"]);
});

test("attack: a Deny with a condition operator or key we do not understand never hides exposure", () => {
  assert.deepEqual(ids(withDeny({ StringEqualsFancy: { "aws:SomethingNew": "x" } })), ["bucket.anonymous-read", "bucket.conflicting-statements"]);
});

test("attack: a Deny on an invalid partial-wildcard principal is not trusted to cover other accounts", () => {
  assert.deepEqual(ids(withDeny(undefined, { Principal: { AWS: "arn:aws:iam::*:root" } })), ["bucket.anonymous-read"]);
});

test("a Deny whose action is written in another case still applies (IAM actions are case-insensitive)", () => {
  assert.deepEqual(ids(withDeny(undefined, { Action: "S3:GETOBJECT" })), []);
});

test("attack: a Deny on objects only leaves an ACL's public listing open", () => {
  const r = checkBucket({
    policy: parseBucketPolicy(JSON.stringify({ Statement: [{ Effect: "Deny", Principal: "*", Action: "s3:*", Resource: `${B}/*` }] }), "p.json"),
    acl: parseBucketACL(JSON.stringify({ Owner: { ID: "aaaa" }, Grants: [{ Grantee: { Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AllUsers" }, Permission: "READ" }] }), "a.json"),
  });
  assert.deepEqual(ids(r.findings), ["bucket.anonymous-read", "bucket.conflicting-statements"]);
});

// Review of 2 December 2026: exposures the evaluator called private, each as AWS evaluates it (IAM User Guide,
// "Condition operators", "Multivalued context keys", "Policy variables").
const review = (statements: object[]) =>
  checkBucket({ policy: parseBucketPolicy(JSON.stringify({ Statement: statements }), "p.json"), ownerAccount: "111122223333", bucket: "backups" });
const publicRead = { Sid: "PublicRead", Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: "arn:aws:s3:::backups/*" };
const denyAll = (condition: Record<string, unknown>) => ({ Sid: "Guard", Effect: "Deny", Principal: "*", Action: "s3:*", Resource: "arn:aws:s3:::backups/*", Condition: condition });

test("attack: a ForAnyValue Deny on a key the caller lacks does not apply (over no values it is false), so the public read stays public", () => {
  const r = review([publicRead, denyAll({ "ForAnyValue:StringNotLike": { "aws:PrincipalOrgPaths": ["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*"] } })]);
  assert.equal(r.access.anonymous.read.allowed, true, "anonymous callers have no org paths: the Deny is false for them");
  assert.equal(r.access.anyAccount.read.allowed, true, "nor has an account outside any organisation");
});

test("attack: an account in no AWS Organization has no aws:PrincipalOrgID — a Null-true condition lets it in", () => {
  const r = review([{ ...publicRead, Condition: { Null: { "aws:PrincipalOrgID": "true", "aws:PrincipalArn": "false" } } }]);
  assert.equal(r.access.anyAccount.read.allowed, true);
});

test("attack: a policy variable in a condition takes the caller's own value — no fixed reading of it is sound; the owner's own variables stay fixed", () => {
  for (const condition of [
    { StringEquals: { "aws:PrincipalOrgID": "${aws:PrincipalOrgID}" } },
    { StringEquals: { "aws:PrincipalAccount": "${aws:PrincipalAccount}" } },
    { ArnLike: { "aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:*" } },
  ]) {
    assert.equal(review([{ ...publicRead, Condition: condition }]).access.anyAccount.read.allowed, true, JSON.stringify(condition));
  }
  const neverMatches = review([publicRead, denyAll({ StringNotEquals: { "aws:PrincipalAccount": "${aws:PrincipalAccount}" } })]);
  assert.equal(neverMatches.access.anyAccount.read.allowed, true, "a Deny that can never match removes nothing");
  // The "same organisation as the bucket" idiom names the owner's values, not the caller's: still private to others.
  const ownOrg = review([{ ...publicRead, Condition: { StringEquals: { "aws:PrincipalOrgID": "${aws:ResourceOrgID}" } } }]);
  assert.equal(ownOrg.access.anonymous.read.allowed, false);
  assert.equal(ownOrg.access.anyAccount.read.allowed, false);
});

test("NumericNotEquals and DateNotEquals are negated operators: true when the key is absent, like StringNotEquals", () => {
  for (const op of ["StringNotEquals", "NumericNotEquals", "DateNotEquals"]) {
    const r = review([{ ...publicRead, Condition: { [op]: { "aws:PrincipalTag/level": "5" } } }]);
    assert.equal(r.access.anonymous.read.allowed, true, `${op}: an anonymous caller has no tags, so the condition holds`);
  }
});

test("thousands of named accounts: every one is judged (the index agrees with a scan), and the human summary lists the first 50", async () => {
  const { inSet, inSetScan } = await import("./principals.ts");
  const { summaryLines } = await import("./check.ts");
  const ids = Array.from({ length: 3000 }, (_, i) => String(100000000000 + i));
  const aws = [...ids.slice(0, 1500), ...ids.slice(1500, 2000).map((id) => `arn:aws:iam::${id}:role/app`), ...ids.slice(2000).map((id) => `arn:aws:iam::${id}:root`)];
  const r = review([{ Effect: "Allow", Principal: { AWS: aws }, Action: "s3:GetObject", Resource: "arn:aws:s3:::backups/*" }]);
  assert.equal(r.access.named.length, 3000);
  assert.equal(r.access.named.filter((n) => n.read.allowed).length, 3000);
  const set = { everyone: false, aws: [...aws, "arn:aws:iam::999988887777:user/*"], canonicalUser: ["c1"], service: [], federated: [] };
  for (const caller of [{ kind: "anonymous" }, { kind: "any-account" }, { kind: "account", account: ids[10] }, { kind: "account", account: ids[1700] }, { kind: "account", account: ids[2500] }, { kind: "account", account: "555566667777" }, { kind: "canonical", id: "c1" }, { kind: "canonical", id: "c2" }] as const) {
    assert.equal(inSet(set as never, caller as never), inSetScan(set as never, caller as never), JSON.stringify(caller));
  }
  const lines = summaryLines(r.access);
  assert.equal(lines.filter((l) => /^account \d{12}: read/.test(l)).length, 50);
  assert.match(lines.join("\n"), /… and 2950 more named accounts or users \(--json lists every one\)/);
  const detail = r.findings.map((f) => f.detail).join("\n");
  assert.ok(detail.length < 5000, `finding text stays short: ${detail.length} characters`);
});

// AWS IAM User Guide, "The confused deputy problem": a service acts for whichever customer's resource asks it, so a
// grant to a service principal is any account's unless aws:SourceArn / SourceAccount / SourceOrgID fix whose.
const oac = (condition?: Record<string, unknown>) => ({
  Sid: "CloudFront", Effect: "Allow", Principal: { Service: "cloudfront.amazonaws.com" }, Action: "s3:GetObject", Resource: "arn:aws:s3:::backups/*",
  ...(condition ? { Condition: condition } : {}),
});
const allBlocks = { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };

test("attack: a service grant with no source pin, or pinned only by a wildcard, is read access for any AWS account (ASVS 8.2.2)", () => {
  for (const condition of [undefined, { ArnLike: { "aws:SourceArn": "arn:aws:cloudfront::*:distribution/*" } }, { StringLike: { "aws:SourceAccount": "*" } }]) {
    const r = review([oac(condition)]);
    assert.deepEqual(ids(r.findings), ["bucket.any-aws-account-read"], JSON.stringify(condition));
    const f = r.findings.find((x) => x.id === "bucket.any-aws-account-read")!;
    assert.equal(f.severity, "critical");
    assert.deepEqual(f.evidence["throughServices"], ['"CloudFront" (#0)']);
    assert.match(f.detail, /AWS service principal without a fixed aws:SourceArn/);
  }
  // Unsigned callers are no service: the anonymous class stays closed.
  assert.equal(review([oac()]).access.anonymous.read.allowed, false);
});

test("a service grant pinned to the owner's own distribution or account is not exposure; one pinned to another account is a grant to review", () => {
  assert.deepEqual(ids(review([oac({ StringEquals: { "AWS:SourceArn": "arn:aws:cloudfront::111122223333:distribution/E2EXAMPLE" } })]).findings), []);
  assert.deepEqual(ids(review([oac({ StringEquals: { "aws:SourceAccount": "111122223333" } })]).findings), []);
  const foreign = review([oac({ StringEquals: { "aws:SourceAccount": "999988887777" } })]);
  assert.deepEqual(ids(foreign.findings), ["bucket.pinned-grant"]);
  assert.equal(foreign.findings.find((f) => f.id === "bucket.pinned-grant")!.severity, "medium");
});

test("attack: RestrictPublicBuckets does not hide a service grant: AWS lets service principals through it, and does not call the policy public", () => {
  const pab = parsePublicAccessBlock(JSON.stringify(allBlocks), "pab.json");
  const run = (statements: object[]) => checkBucket({ policy: parseBucketPolicy(JSON.stringify({ Statement: statements }), "p.json"), publicAccessBlock: pab, ownerAccount: "111122223333", bucket: "backups" });
  assert.deepEqual(ids(run([oac()]).findings), ["bucket.any-aws-account-read"]);
  const gated = { ...publicRead, Sid: "ServicesOnly", Condition: { Bool: { "aws:PrincipalIsAWSService": "true" } } };
  assert.deepEqual(ids(run([gated]).findings), ["bucket.any-aws-account-read"]);
  // Not public in AWS's sense, so RestrictPublicBuckets leaves a named partner's grant in place too.
  const partner = { Sid: "Partner", Effect: "Allow", Principal: { AWS: "444455556666" }, Action: "s3:GetObject", Resource: "arn:aws:s3:::backups/*" };
  const both = run([oac(), partner]);
  assert.equal(both.access.restrictPublicBucketsApplied, false);
  assert.equal(both.access.named.find((n) => n.caller.kind === "account" && n.caller.account === "444455556666")?.read.allowed, true);
  // BoolIfExists holds for unsigned callers (no key): that grant is public, and RestrictPublicBuckets drops it.
  const ifExists = run([{ ...gated, Condition: { BoolIfExists: { "aws:PrincipalIsAWSService": "true" } } }]);
  assert.equal(ifExists.access.restrictPublicBucketsApplied, true);
  assert.deepEqual(ids(ifExists.findings), []);
  // A public policy is restricted: the "*" read goes, the service grant stays.
  const restricted = run([publicRead, oac()]);
  assert.equal(restricted.access.restrictPublicBucketsApplied, true);
  assert.deepEqual(restricted.access.anyAccount.read.grantedBy, ['"CloudFront" (#1)']);
});

test("attack: a Deny on Bool aws:PrincipalIsAWSService=false does not certainly stop any account: its service requests carry true", () => {
  const r = review([publicRead, denyAll({ Bool: { "aws:PrincipalIsAWSService": "false" } })]);
  assert.equal(r.access.anyAccount.read.allowed, true);
});

test("Service entries: the principal index agrees with a scan", async () => {
  const { inSet, inSetScan } = await import("./principals.ts");
  const set = { everyone: false, aws: ["111122223333"], canonicalUser: [], service: ["cloudfront.amazonaws.com"], federated: [] };
  for (const caller of [{ kind: "anonymous" }, { kind: "any-account" }, { kind: "account", account: "111122223333" }, { kind: "canonical", id: "c1" }] as const) {
    assert.equal(inSet(set as never, caller as never), inSetScan(set as never, caller as never), JSON.stringify(caller));
  }
  assert.equal(inSet(set as never, { kind: "any-account" } as never), "maybe");
});
