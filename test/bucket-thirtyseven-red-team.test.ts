// Red team, round thirty-seven: `bulwark check bucket` after today's three changes — the --bucket refusal of a policy
// none of whose statements reach the bucket (evaluate.ts refuseOtherBucketsPolicy), aws:PrincipalServiceName and
// aws:PrincipalServiceNamesList as keys only a service principal's requests carry (conditions.ts situations,
// requiresAWSService), and StringLike ARN patterns with a `*` before the account field as able to match another
// account's ARN (conditions.ts canMatchForeign). Every expectation is what AWS does, per its documentation:
// - IAM User Guide, "IAM JSON policy elements: Condition operators": StringLike's `*` and `?` match anywhere in the
//   string ("*" any run, "?" exactly one character); ArnLike/ArnEquals check "each of the six colon-delimited
//   components of the ARN ... separately"; a negated operator (StringNotEquals, StringNotLike, ...) and any
//   ...IfExists operator are true when the key is absent; ForAllValues is true, and ForAnyValue false, over a key that
//   is absent.
// - IAM User Guide, "AWS global condition context keys": aws:PrincipalServiceName / aws:PrincipalServiceNamesList are
//   present only when an AWS service principal makes the request (not for IAM principals, not for anonymous callers);
//   condition key names are case-insensitive.
// - IAM API Reference, CreateRole, Path: any ASCII character from "!" (\u0021) through DEL (\u007F), so ":" is allowed.
// - S3 User Guide, "Blocking public access": with RestrictPublicBuckets a public policy admits "only AWS service
//   principals and authorized users within the bucket owner's account".
// - S3 PutBucketPolicy: a policy whose Resource names another bucket is refused ("MalformedPolicy: Policy has invalid
//   resource"; seen on AWS when a tutorial's policy named the input bucket instead of the one being configured). The
//   check's README rests on the same rule.
// - AWS General Reference, "Amazon Resource Names": the partition is "aws", "aws-cn" (China), "aws-us-gov" (GovCloud)...;
//   an S3 bucket in the China Regions is arn:aws-cn:s3:::name, and an arn:aws:s3::: pattern never matches it.
// Tests marked `todo: "finding: ..."` are attacks that succeed today (the assertion says what a correct check does).
// In-process unless the CLI's exit code is the point; temporary files only, no network, no timing assertions.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { BucketCheckResult } from "../src/checks/bucket/check.ts";
import { BucketInputError } from "../src/checks/bucket/errors.ts";
import { judgeBucket, OWNER, type Statement } from "./helpers/bucket-check.ts";
import { bulwarkHere } from "./helpers/cli.ts";

const B = "arn:aws:s3:::acme-data";
const PARTNER = "444455556666";
const ALL_ON = { PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true } };

const run = judgeBucket;
const ids = (r: BucketCheckResult): string[] => r.findings.map((f) => f.id).filter((id) => id !== "bucket.no-secure-transport").sort();
/** The critical exposure findings (anonymous / any-account), the ones a false all-clear lacks. */
const critical = (r: BucketCheckResult): string[] => r.findings.filter((f) => f.severity === "critical").map((f) => f.id).sort();
const publicRead: Statement = { Sid: "PublicRead", Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: `${B}/*` };
const guard = (condition: Record<string, unknown>): Statement => ({ Sid: "Guard", Effect: "Deny", Principal: "*", Action: "s3:*", Resource: [B, `${B}/*`], Condition: condition });
const cloudfrontRead: Statement = { Sid: "CloudFront", Effect: "Allow", Principal: { Service: "cloudfront.amazonaws.com" }, Action: "s3:GetObject", Resource: `${B}/*` };

/** Runs `f`, returning its result or the error it threw (so a test can accept either a refusal or a verdict). */
function attempt(f: () => BucketCheckResult): BucketCheckResult | Error {
  try {
    return f();
  } catch (error) {
    if (error instanceof Error) return error;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The --bucket refusal and the bucket's partition
// ---------------------------------------------------------------------------------------------------------------------

// resources.ts bucketTarget takes the partition only from a Resource that names the bucket literally
// (/^arn:(aws[a-z-]*):s3:::([^/*?]+)(?:\/|$)/ with that name); otherwise the target is arn:aws:s3:::<name>. A China
// bucket's policy written with a wildcard after the name ("arn:aws-cn:s3:::acme-data*", one pattern for the bucket and
// its objects) has no such Resource, so the target stays in the "aws" partition, no statement intersects it, and
// refuseOtherBucketsPolicy refuses the policy — naming "acme-data*", a pattern that matches acme-data — with exit 2.
// The same shape in the aws partition ("arn:aws:s3:::acme-data*") is judged (control below), and the README judges
// wildcard Resources such as "arn:aws:s3:::acme-*" as policies of the bucket; their aws-cn / aws-us-gov twins are the
// same policies in another partition. (Uncertain, and not relied on: exactly which wildcard bucket patterns S3's
// PutBucketPolicy validation keeps. The check's own model keeps them in the aws partition; it must not differ by
// partition.)
test("attack: --bucket acme-data with a China-Region policy on \"arn:aws-cn:s3:::acme-data*\" (or GovCloud \"arn:aws-us-gov:s3:::*\") is judged, not refused as another bucket's", () => {
  const control = run([{ ...publicRead, Resource: "arn:aws:s3:::acme-data*" }], { bucket: "acme-data" });
  assert.equal(control.access.anonymous.read.allowed, true, "control: the aws-partition twin is judged (anonymous read)");
  for (const resource of ["arn:aws-cn:s3:::acme-data*", "arn:aws-us-gov:s3:::*", "arn:aws-cn:s3:::acme-*/*"]) {
    const r = attempt(() => run([{ ...publicRead, Resource: resource }], { bucket: "acme-data" }));
    assert.ok(!(r instanceof Error), `${resource}: refused: ${r instanceof Error ? r.message : ""}`);
    assert.equal(r.access.anonymous.read.allowed, true, `${resource}: Principal "*" s3:GetObject on a pattern that matches acme-data's objects in its own partition`);
    assert.ok(critical(r).includes("bucket.anonymous-read"), `${resource}: findings ${ids(r).join(", ") || "(none)"}`);
  }
});

// Without --bucket the same policies are worse than refused: bucketTarget finds no literal bucket name, falls back to
// arn:aws:s3:::* (partition "aws"), and no aws-cn / aws-us-gov pattern intersects it, so every Allow "reaches nothing"
// and the check answers anonymous read no / write no — only the low TLS finding, exit 0 — about a GovCloud bucket that
// the policy opens to the internet for read and write.
test("attack: without --bucket, a GovCloud policy giving \"*\" GetObject and PutObject on \"arn:aws-us-gov:s3:::acme-*\" is reported as anonymous read and write", () => {
  const r = run([{ Sid: "OpenGov", Effect: "Allow", Principal: "*", Action: ["s3:GetObject", "s3:PutObject"], Resource: ["arn:aws-us-gov:s3:::acme-*", "arn:aws-us-gov:s3:::acme-*/*"] }]);
  assert.equal(r.access.anonymous.read.allowed, true, "an unsigned GetObject on any acme-* bucket's object in aws-us-gov is allowed");
  assert.equal(r.access.anonymous.write.allowed, true, "and PutObject");
  assert.ok(critical(r).includes("bucket.anonymous-write"), `findings: ${ids(r).join(", ") || "(none)"}`);
  const china = run([{ ...publicRead, Resource: "arn:aws-cn:s3:::acme-data*" }]);
  assert.equal(china.access.anonymous.read.allowed, true, "the China twin: arn:aws-cn:s3:::acme-data* matches the objects of acme-data, whatever the bucket is");
});

// The refusal fires only when NO statement reaches --bucket. A policy that is plainly another bucket's (its Allow
// names acme-data-prod, which S3 would refuse to keep on acme-data) escapes it as soon as one statement reaches
// acme-data by wildcard — a guard Deny on "arn:aws:s3:::acme-*", or a "Deny everything but my bucket" NotResource
// statement — and the mistyped run prints the all-clear the refusal exists to prevent: anonymous read no, no findings.
test("attack: --bucket acme-data (a typo for acme-data-prod) on acme-data-prod's public policy is refused or reported, even when a Deny reaches acme-data by wildcard or NotResource", () => {
  const prodRead: Statement = { ...publicRead, Resource: "arn:aws:s3:::acme-data-prod/*" };
  const reachingDenies: Statement[] = [
    { Sid: "NoDeletes", Effect: "Deny", Principal: "*", Action: "s3:DeleteBucket", Resource: "arn:aws:s3:::acme-*" },
    { Sid: "OnlyHere", Effect: "Deny", Principal: "*", Action: "s3:*", NotResource: ["arn:aws:s3:::acme-data-prod", "arn:aws:s3:::acme-data-prod/*"] },
  ];
  const plain = attempt(() => run([prodRead], { bucket: "acme-data" }));
  assert.ok(plain instanceof BucketInputError, "control: the policy alone is refused by name");
  for (const deny of reachingDenies) {
    const r = attempt(() => run([prodRead, deny], { bucket: "acme-data" }));
    if (r instanceof Error) {
      assert.ok(r instanceof BucketInputError, `${String(deny["Sid"])}: refused with ${r.message}`);
      assert.match(r.message, /acme-data-prod/);
      continue;
    }
    assert.ok(r.access.anonymous.read.allowed || ids(r).length > 0, `${String(deny["Sid"])}: an all-clear about a policy that is not acme-data's (findings: ${ids(r).join(", ") || "(none)"})`);
  }
});

// Judging a policy that reaches --bucket is never a false all-clear; refusing it would stop the user for nothing.
// (Legacy us-east-1 buckets may hold capitals; new names are lower-case; ARNs compare case-sensitively.)
test("held: --bucket is not refused for policies that reach that bucket: dots, a legacy mixed-case name, Resource \"*\", arn:aws:s3:::*, acme-*, bucket ARN only, Deny-only, NotResource, literal aws-cn / aws-us-gov ARNs", () => {
  const cases: { bucket: string; statements: Statement[]; anonymousRead: boolean }[] = [
    { bucket: "acme.data.eu", statements: [{ ...publicRead, Resource: "arn:aws:s3:::acme.data.eu/*" }], anonymousRead: true },
    { bucket: "Acme-Data", statements: [{ ...publicRead, Resource: "arn:aws:s3:::Acme-Data/*" }], anonymousRead: true },
    { bucket: "acme-data", statements: [{ ...publicRead, Resource: "*" }], anonymousRead: true },
    { bucket: "acme-data", statements: [{ ...publicRead, Resource: "arn:aws:s3:::*" }], anonymousRead: true },
    { bucket: "acme-data", statements: [{ ...publicRead, Resource: "arn:aws:s3:::acme-*" }], anonymousRead: true },
    { bucket: "acme-data", statements: [{ ...publicRead, Action: "s3:ListBucket", Resource: B }], anonymousRead: true },
    { bucket: "acme-data", statements: [guard({ Bool: { "aws:SecureTransport": "false" } })], anonymousRead: false },
    { bucket: "acme-data", statements: [{ Sid: "AllButSecret", Effect: "Allow", Principal: "*", Action: "s3:GetObject", NotResource: `${B}/secret/*` }], anonymousRead: true },
    { bucket: "acme-data", statements: [{ ...publicRead, Resource: "arn:aws-cn:s3:::acme-data/*" }], anonymousRead: true },
    { bucket: "acme-data", statements: [{ ...publicRead, Resource: ["arn:aws-us-gov:s3:::acme-data", "arn:aws-us-gov:s3:::acme-data/*"] }], anonymousRead: true },
  ];
  for (const { bucket, statements, anonymousRead } of cases) {
    const r = attempt(() => run(statements, { bucket }));
    assert.ok(!(r instanceof Error), `${bucket} ${JSON.stringify(statements)}: refused: ${r instanceof Error ? r.message : ""}`);
    assert.equal(r.access.anonymous.read.allowed, anonymousRead, `${bucket} ${JSON.stringify(statements)}`);
    assert.equal(r.access.bucket, bucket);
  }
});

test("held: the refusal quotes hostile Resources escaped (no raw control characters on the terminal), lists at most five, and a 500-statement policy of other buckets ends in an input error, not a hang or a crash", () => {
  const hostile = run.bind(null, [{ ...publicRead, Resource: ["arn:aws:s3:::evil\u001b[2J\u0007\n/*", ...Array.from({ length: 8 }, (_, i) => `arn:aws:s3:::other-${i}/*`)] }], { bucket: "acme-data" });
  const r = attempt(hostile);
  assert.ok(r instanceof BucketInputError, "another bucket's policy is refused");
  assert.doesNotMatch(r.message, /[\u0000-\u001f\u007f]/, "control characters are escaped");
  assert.match(r.message, /and 4 more/, "nine names: five quoted, the rest counted");
  const many: Statement[] = Array.from({ length: 500 }, (_, i) => ({ Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: Array.from({ length: 40 }, (_, j) => `arn:aws:s3:::o${i}-${j}*/*`) }));
  const big = attempt(() => run(many, { bucket: "acme-data" }));
  assert.ok(big instanceof BucketInputError, `a clear input error (refusal or work bound), got ${big instanceof Error ? big.message : "a verdict"}`);
});

describe("the CLI with --bucket on a legitimate policy", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-bucket-37-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const policyFile = (name: string, statements: Statement[]): string => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify({ Policy: JSON.stringify({ Version: "2012-10-17", Statement: statements }) }));
    return file;
  };

  test("held: a dotted bucket's public-read policy checked with --bucket exits 1 with the anonymous-read finding", async () => {
    const file = policyFile("dotted.json", [{ ...publicRead, Resource: "arn:aws:s3:::assets.acme.example/*" }]);
    const r = await bulwarkHere(["check", "bucket", "--policy", file, "--bucket", "assets.acme.example", "--owner-account", OWNER]);
    assert.equal(r.code, 1, `stderr: ${r.stderr}`);
    assert.match(r.stdout, /anonymous-read/);
  });

  test("attack: a China-Region bucket's public-read policy on \"arn:aws-cn:s3:::acme-data*\" checked with --bucket acme-data exits 1 (exposure), not 2 (\"no statement reaches this bucket\")", async () => {
    const file = policyFile("china.json", [{ ...publicRead, Resource: "arn:aws-cn:s3:::acme-data*" }]);
    const r = await bulwarkHere(["check", "bucket", "--policy", file, "--bucket", "acme-data", "--owner-account", OWNER]);
    assert.doesNotMatch(r.stderr, /no statement of the policy/);
    assert.equal(r.code, 1, `stderr: ${r.stderr}`);
    assert.match(r.stdout, /anonymous-read/);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// aws:PrincipalServiceName / aws:PrincipalServiceNamesList
// ---------------------------------------------------------------------------------------------------------------------

// Keys only a service principal's request carries: a clause false when the key is absent keeps out unsigned callers
// and every IAM principal, but any account can have CloudFront (or another service) act for a resource of its own, and
// RestrictPublicBuckets lets service principals through. Condition key names are case-insensitive.
test("held: with all Block Public Access on, \"*\" gated on the service-name keys (odd key case, Null false, ForAnyValue:StringLike \"*\") is service-only: no anonymous access, any account critical", () => {
  for (const condition of [
    { StringEquals: { "AWS:PRINCIPALSERVICENAME": "cloudfront.amazonaws.com" } },
    { Null: { "aws:principalServiceName": "false" } },
    { "ForAnyValue:StringLike": { "aws:PrincipalServiceNamesList": "*" } },
  ]) {
    const r = run([{ ...publicRead, Condition: condition }], { pab: ALL_ON });
    assert.equal(r.access.anonymous.read.allowed, false, `${JSON.stringify(condition)}: unsigned requests carry no service name`);
    assert.equal(r.access.anyAccount.read.allowed, true, `${JSON.stringify(condition)}: a service acting for any account passes RestrictPublicBuckets`);
    assert.ok(critical(r).includes("bucket.any-aws-account-read"), `${JSON.stringify(condition)}: findings ${ids(r).join(", ") || "(none)"}`);
    assert.equal(r.access.restrictPublicBucketsApplied, false, "a service-only grant does not make the policy public");
  }
});

test("held: \"*\" on a service-name clause that holds when the key is absent (StringEqualsIfExists, ForAllValues:StringEquals, Null true, StringNotEquals) is open to unsigned callers", () => {
  for (const condition of [
    { StringEqualsIfExists: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com" } },
    { "ForAllValues:StringEquals": { "aws:PrincipalServiceNamesList": "cloudfront.amazonaws.com" } },
    { Null: { "aws:PrincipalServiceName": "true" } },
    { StringNotEquals: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com" } },
  ]) {
    const r = run([{ ...publicRead, Condition: condition }]);
    assert.equal(r.access.anonymous.read.allowed, true, `${JSON.stringify(condition)}: true for a request without the key`);
    assert.ok(critical(r).includes("bucket.anonymous-read"), `${JSON.stringify(condition)}: findings ${ids(r).join(", ") || "(none)"}`);
    assert.equal(r.access.policyPublic, true, `${JSON.stringify(condition)}: not service-only, so public`);
  }
});

// A Deny on the service-name keys stops unsigned callers when it holds on the key's absence, but never certainly stops
// an account: its own principals lack the key, while a service acting for it carries whatever name that service has.
test("held: guards \"Deny unless aws:PrincipalServiceName = cloudfront\" (StringNotEquals) and \"Deny if no service name\" (Null true) stop anonymous callers but are not credited against any account", () => {
  for (const condition of [
    { StringNotEquals: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com" } },
    { Null: { "aws:PrincipalServiceName": "true" } },
    { StringNotEqualsIfExists: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com" } },
  ]) {
    const r = run([publicRead, guard(condition)]);
    assert.equal(r.access.anonymous.read.allowed, false, `${JSON.stringify(condition)}: the key is absent for unsigned callers, so the Deny applies`);
    assert.equal(r.access.anyAccount.read.allowed, true, `${JSON.stringify(condition)}: any account's CloudFront distribution escapes it`);
    assert.ok(r.access.anyAccount.read.uncertainDenies.some((u) => u.statement.includes("Guard")), "listed as uncertain, not credited");
    assert.ok(critical(r).includes("bucket.any-aws-account-read"));
  }
});

test("held: a Deny on ForAnyValue:StringNotEquals aws:PrincipalServiceNamesList does not stop unsigned callers (ForAnyValue is false over an absent key), while ForAllValues:StringNotEquals does", () => {
  const anyValue = run([publicRead, guard({ "ForAnyValue:StringNotEquals": { "aws:PrincipalServiceNamesList": "cloudfront.amazonaws.com" } })]);
  assert.equal(anyValue.access.anonymous.read.allowed, true);
  assert.ok(critical(anyValue).includes("bucket.anonymous-read"));
  const allValues = run([publicRead, guard({ "ForAllValues:StringNotEquals": { "aws:PrincipalServiceNamesList": "cloudfront.amazonaws.com" } })]);
  assert.equal(allValues.access.anonymous.read.allowed, false, "ForAllValues over no values is true: the Deny applies");
  assert.equal(allValues.access.anyAccount.read.allowed, true, "but not certainly to a service acting for an account");
});

test("held: a Service principal with a matching aws:PrincipalServiceName is any-account exposure that survives RestrictPublicBuckets; pinned to the owner's own distribution by aws:SourceArn it is not", () => {
  const open = run([{ ...cloudfrontRead, Condition: { StringEquals: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com" } } }], { pab: ALL_ON });
  assert.equal(open.access.anyAccount.read.allowed, true);
  assert.ok(critical(open).includes("bucket.any-aws-account-read"), `findings: ${ids(open).join(", ")}`);
  const owners = run([{ ...publicRead, Condition: { StringEquals: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com", "aws:SourceArn": `arn:aws:cloudfront::${OWNER}:distribution/E1OWNER` } } }], { pab: ALL_ON });
  assert.equal(owners.access.anyAccount.read.allowed, false, "only CloudFront acting for the owner's distribution E1OWNER carries that aws:SourceArn");
  assert.deepEqual(critical(owners), []);
  const partner = run([{ ...publicRead, Condition: { StringEquals: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com", "aws:SourceAccount": PARTNER } } }], { pab: ALL_ON });
  assert.ok(ids(partner).includes("bucket.pinned-grant"), `a partner's distribution is reported for review: ${ids(partner).join(", ")}`);
});

// ---------------------------------------------------------------------------------------------------------------------
// StringLike vs ArnLike on ARNs
// ---------------------------------------------------------------------------------------------------------------------

// "arn:aws:*::OWNER:role/Reader" under StringLike: the * may swallow "iam::444455556666:role/p", so another account's
// role "arn:aws:iam::444455556666:role/p::111122223333:role/Reader" (path "/p::111122223333:role/", name "Reader")
// matches: "arn:aws:" + "iam::444455556666:role/p" + "::111122223333:role/Reader".
test("held: Allow \"*\" on StringLike aws:PrincipalArn \"arn:aws:*::OWNER:role/Reader\" (a * in the service field) is open to any account", () => {
  const r = run([{ ...publicRead, Condition: { StringLike: { "aws:PrincipalArn": `arn:aws:*::${OWNER}:role/Reader` } } }]);
  assert.equal(r.access.anonymous.read.allowed, false, "unsigned requests have no aws:PrincipalArn");
  assert.equal(r.access.anyAccount.read.allowed, true, `arn:aws:iam::${PARTNER}:role/p::${OWNER}:role/Reader matches`);
  assert.ok(critical(r).includes("bucket.any-aws-account-read"));
});

// "arn:aws:iam:*:OWNER:role/Reader" under StringNotLike in a guard: the * (region field) may swallow
// ":444455556666:role/p", so another account's role "arn:aws:iam::444455556666:role/p:111122223333:role/Reader" (path
// "/p:111122223333:role/") matches the exception and escapes the Deny. The Deny is not credited.
test("held: a guard \"Deny unless StringNotLike aws:PrincipalArn arn:aws:iam:*:OWNER:role/Reader\" (a * in the region field) is not credited against any account", () => {
  const r = run([publicRead, guard({ StringNotLike: { "aws:PrincipalArn": `arn:aws:iam:*:${OWNER}:role/Reader` } })]);
  assert.equal(r.access.anonymous.read.allowed, false, "the negated operator holds for an absent key: the Deny applies to unsigned callers");
  assert.equal(r.access.anyAccount.read.allowed, true);
  assert.ok(!r.access.cancelledAllows.some((s) => s.includes("PublicRead")));
  assert.ok(critical(r).includes("bucket.any-aws-account-read"), `findings: ${ids(r).join(", ")}`);
});

// `?` is exactly one character: "arn:aw?:iam::OWNER:*" matches a text only if its 13 first characters are "arn:aw",
// one character and ":iam::", and the next twelve are OWNER — every foreign principal ARN
// (arn:<partition>:iam|sts::<account>:...) fails at the account. So the guard certainly applies to every other account
// (and to unsigned callers, having no aws:PrincipalArn), and crediting it is right.
test("held: a guard \"Deny unless StringNotLike aws:PrincipalArn arn:aw?:iam::OWNER:*\" (a ? in the partition) cancels the public read", () => {
  const r = run([publicRead, guard({ StringNotLike: { "aws:PrincipalArn": `arn:aw?:iam::${OWNER}:*` } })]);
  assert.equal(r.access.anonymous.read.allowed, false);
  assert.equal(r.access.anyAccount.read.allowed, false);
  assert.deepEqual(critical(r), []);
  assert.ok(r.access.cancelledAllows.some((s) => s.includes("PublicRead")));
});

// ArnLike matches each of the six components separately, so "arn:*:iam::OWNER:*" under ArnNotLike pins the account
// field: every foreign caller's ARN has another account there and the Deny applies. The code compiles ArnLike as a
// plain glob (conditions.ts fixedMatcher), where * does cross ':'; that matcher is used only for values the check knows
// (aws:PrincipalAccount of a named account...), never for a principal ARN, so it cannot over-credit here.
test("held: a guard \"Deny unless ArnNotLike aws:PrincipalArn arn:*:iam::OWNER:*\" cancels the public read (field-wise), and its named-account twin is not over-credited", () => {
  const r = run([publicRead, guard({ ArnNotLike: { "aws:PrincipalArn": `arn:*:iam::${OWNER}:*` } })]);
  assert.equal(r.access.anonymous.read.allowed, false);
  assert.equal(r.access.anyAccount.read.allowed, false);
  assert.deepEqual(critical(r), []);
  // A partner's role granted by name, and a Deny whose exception names that very role with * in the partition: the
  // role's ARN matches, the Deny does not apply to it, the partner keeps its read.
  const partner = run([
    { Sid: "PartnerRead", Effect: "Allow", Principal: { AWS: `arn:aws:iam::${PARTNER}:role/Reader` }, Action: "s3:GetObject", Resource: `${B}/*` },
    guard({ ArnNotLike: { "aws:PrincipalArn": [`arn:*:iam::${PARTNER}:role/Reader`, `arn:aws:iam::${OWNER}:*`] } }),
  ]);
  const named = partner.access.named.find((n) => n.caller.kind === "account" && n.caller.account === PARTNER);
  assert.equal(named?.read.allowed, true, "the partner's Reader role is the Deny's exception");
  assert.ok(ids(partner).includes("bucket.cross-account"), `findings: ${ids(partner).join(", ")}`);
});
