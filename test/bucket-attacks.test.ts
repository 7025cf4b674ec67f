// Attacks on `bulwark check bucket`: a bucket that S3 in fact opens to anonymous callers or to any AWS account
// while Bulwark calls it private (false negatives), and hostile policy files that hang the check or flood its
// errors. Each verdict is compared with how S3 authorizes the request (IAM User Guide, "AWS global condition context
// keys", "Condition operators"; S3 User Guide, "Blocking public access", "Making requests over IPv6"). Tests that
// start with "attack:" were findings of this review, fixed since; "(was: …)" says what the check did before. In-process
// only; no files, no network.
// ASVS 8.2.2 (access restricted to consumers with explicit permissions), 16.5.3 (no fail-open on what we cannot
// decide), 1.3.3 (trim over-long input), 2.4.1 (excessive work).
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkBucket, type BucketCheckResult } from "../src/checks/bucket/check.ts";
import { BucketInputError } from "../src/checks/bucket/errors.ts";
import { parseBucketPolicy } from "../src/checks/bucket/policy-parse.ts";
import { judgeBucket, OWNER, type Statement } from "./helpers/bucket-check.ts";

const B = "arn:aws:s3:::acme-data";

const run = judgeBucket;

const ids = (r: BucketCheckResult): string[] => r.findings.map((f) => f.id).filter((id) => id !== "bucket.no-secure-transport").sort();
const publicRead: Statement = { Sid: "PublicRead", Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: `${B}/*` };
const guard = (condition: Record<string, unknown>): Statement => ({ Sid: "Guard", Effect: "Deny", Principal: "*", Action: "s3:*", Resource: [B, `${B}/*`], Condition: condition });

// ---------------------------------------------------------------------------------------------------------
// Condition keys whose presence or meaning the evaluator gets wrong
// ---------------------------------------------------------------------------------------------------------

// aws:PrincipalIsAWSService is "present in the request context for all signed API requests that use AWS
// credentials" (IAM User Guide, Availability): an unsigned request has no such key. A Deny on Bool "false" is then
// false for anonymous callers (a non-negated operator on a missing key), and a BoolIfExists Allow on "true" holds.
test("attack: a Deny on Bool aws:PrincipalIsAWSService=false does not stop unsigned callers (the key is absent for them), ASVS 8.2.2 (was: the key read \"false\" for every caller, so the Deny hid a public read)", () => {
  const r = run([publicRead, guard({ Bool: { "aws:PrincipalIsAWSService": "false" } })]);
  assert.equal(r.access.anonymous.read.allowed, true, "an anonymous GET carries no aws:PrincipalIsAWSService, so the Deny does not match it");
  assert.ok(ids(r).includes("bucket.anonymous-read"), `findings: ${ids(r).join(", ")}`);
});

test("attack: an Allow to \"*\" on BoolIfExists aws:PrincipalIsAWSService=true is open to unsigned callers (IfExists holds on a missing key), ASVS 8.2.2 (was: judged closed to them)", () => {
  const r = run([{ ...publicRead, Condition: { BoolIfExists: { "aws:PrincipalIsAWSService": "true" } } }]);
  assert.equal(r.access.anonymous.read.allowed, true);
});

// aws:PrincipalServiceName and aws:PrincipalServiceNamesList are present only when a service principal makes the
// request (IAM User Guide, Availability): absent for unsigned callers and for an account's own principals. A clause
// that needs them admits any account only through a service acting for it; one that holds on their absence
// (StringNotEquals, ForAllValues, IfExists) admits everyone else too.
test("attack: an Allow to \"*\" on aws:PrincipalServiceName holds for no unsigned caller when it needs the key, and for every one when it holds on its absence, ASVS 8.2.2 (red team 36, F3)", () => {
  const needs = run([{ ...publicRead, Condition: { StringEquals: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com" } } }]);
  assert.equal(needs.access.anonymous.read.allowed, false, "an unsigned request carries no service name");
  assert.equal(needs.access.anyAccount.read.allowed, true, "any account's own distribution signs as cloudfront.amazonaws.com");
  assert.equal(needs.access.policyPublic, false, "a service-only grant is not what AWS calls public");
  for (const condition of [
    { StringNotEquals: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com" } },
    { "ForAllValues:StringEquals": { "aws:PrincipalServiceNamesList": "cloudfront.amazonaws.com" } },
    { StringEqualsIfExists: { "aws:PrincipalServiceName": "cloudfront.amazonaws.com" } },
  ]) {
    const r = run([{ ...publicRead, Condition: condition }]);
    assert.equal(r.access.anonymous.read.allowed, true, `${JSON.stringify(condition)}: holds when the key is absent`);
  }
});

// aws:SourceIp "is included in the request context, except when the requester uses a VPC endpoint", and an IPv6
// caller on S3's dual-stack endpoint has an IPv6 aws:SourceIp that no IPv4 range holds. Any AWS account can make an
// S3 gateway endpoint in its own VPC (and an unsigned request goes through it too), so a Deny that matches "every
// address" does not match these callers.
test("attack: a Deny on IpAddress aws:SourceIp 0.0.0.0/0 (or ::/0, or Null=false) is dodged through a VPC endpoint or over IPv6, ASVS 8.2.2 (was: aws:SourceIp assumed always present and family-blind, so the Deny hid a public read)", () => {
  for (const condition of [
    { IpAddress: { "aws:SourceIp": "0.0.0.0/0" } },
    { IpAddress: { "aws:SourceIp": ["0.0.0.0/0", "::/0"] } },
    { Null: { "aws:SourceIp": "false" } },
  ]) {
    const r = run([publicRead, guard(condition)]);
    assert.equal(r.access.anonymous.read.allowed, true, `${JSON.stringify(condition)}: a caller through its own VPC endpoint has no aws:SourceIp`);
  }
});

test("attack: an Allow to \"*\" on NotIpAddress aws:SourceIp 0.0.0.0/0 is open over IPv6 and through a VPC endpoint, ASVS 8.2.2 (was: judged to match no caller)", () => {
  const r = run([{ ...publicRead, Condition: { NotIpAddress: { "aws:SourceIp": "0.0.0.0/0" } } }]);
  assert.equal(r.access.anonymous.read.allowed, true, "an IPv6 address is not in 0.0.0.0/0, and NotIpAddress is true on a missing key");
});

// aws:username is the IAM user's friendly name: unique within one account only. Any AWS account can create an IAM
// user of that name, so a fixed value pins nothing (it is not among the fixed values S3 calls non-public).
test("attack: an Allow to \"*\" restricted by StringEquals aws:username is open to any AWS account (user names are per account), ASVS 8.2.2 (was: a fixed user name pinned the caller)", () => {
  const r = run([{ ...publicRead, Condition: { StringEquals: { "aws:username": "backup-bot" } } }]);
  assert.equal(r.access.anyAccount.read.allowed, true, "an attacker creates IAM user backup-bot in their own account");
  assert.ok(ids(r).includes("bucket.any-aws-account-read"), `findings: ${ids(r).join(", ")}`);
});

test("attack: a Deny on StringNotEquals aws:username does not cancel a public read for other accounts, ASVS 8.2.2 (was: the Deny was credited for every account)", () => {
  const r = run([publicRead, guard({ StringNotEquals: { "aws:username": "backup-bot" } })]);
  assert.equal(r.access.anonymous.read.allowed, false, "anonymous callers have no user name: the Deny holds for them");
  assert.equal(r.access.anyAccount.read.allowed, true, "a foreign user named backup-bot is not denied");
});

// S3 bucket ARNs have no account field (arn:aws:s3:::name), and bucket names are first come, first served: a wildcard
// in the name is a wildcard in the identifying part, which the README says is "maybe" (S3 Inventory, for one, writes
// to a destination bucket of another account with aws:SourceArn = the attacker's source bucket).
test("attack: ArnLike aws:SourceArn with a wildcard S3 bucket ARN does not pin the caller (no account field to pin), ASVS 8.2.2 (was: the empty account field counted as a pin)", () => {
  for (const arn of ["arn:aws:s3:::*", "arn:aws:s3:::acme-*"]) {
    const r = run([{ Effect: "Allow", Principal: "*", Action: "s3:PutObject", Resource: `${B}/*`, Condition: { ArnLike: { "aws:SourceArn": arn } } }]);
    assert.ok(r.access.anonymous.write.allowed || r.access.anyAccount.write.allowed, `${arn}: any account can own a bucket that matches`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Actions outside the fixed read/write list
// ---------------------------------------------------------------------------------------------------------

// S3 counts s3:Put* and s3:Delete* as "bad actions" when it decides whether a policy is public. A lifecycle rule
// that expires every object deletes the bucket's content; ReplicateObject/ReplicateDelete let any account point its
// own replication at this bucket and overwrite or hide objects; neither is owner-only like PutBucketPolicy.
test("attack: s3:PutLifecycleConfiguration or s3:ReplicateObject granted to everyone is write exposure (expire or overwrite every object), ASVS 8.2.2 (was: a fixed list of eleven actions ignored them)", () => {
  for (const [action, resource] of [
    ["s3:PutLifecycleConfiguration", B],
    [["s3:ReplicateObject", "s3:ReplicateDelete"], `${B}/*`],
  ] as const) {
    const r = run([{ Effect: "Allow", Principal: { AWS: "*" }, Action: action, Resource: resource }]);
    assert.ok(ids(r).some((id) => id === "bucket.anonymous-write" || id === "bucket.any-aws-account-write"), `${JSON.stringify(action)}: findings ${ids(r).join(", ") || "(none)"}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Work bounds on hostile but in-bounds policies
// ---------------------------------------------------------------------------------------------------------

const accounts = (n: number): string[] => Array.from({ length: n }, (_, i) => String(100000000000 + i));

// The README: "Principals are indexed per statement, so a policy naming 69,000 accounts (1 MiB) is judged in ~3 s".
// The same accounts in an aws:PrincipalAccount condition are scanned per named caller and per action (with a regex
// per value): quadratic, 4,000 accounts take ~2 s and a 1 MiB policy (69,000) about ten minutes.
test("attack: 4,000 accounts in an aws:PrincipalAccount condition are judged (no quadratic scan), ASVS 2.4.1 (was: every value rescanned per caller and action, ~2 s)", () => {
  const text = JSON.stringify({ Statement: [{ ...publicRead, Condition: { StringEquals: { "aws:PrincipalAccount": accounts(4000) } } }] });
  const policy = parseBucketPolicy(text, "policy.json");
  // Tests hold no timing assertion: this one pins the verdict on the large input; its speed (quadratic before) shows
  // in the suite's run time, not in a pass or fail.
  const r = checkBucket({ policy, ownerAccount: OWNER });
  assert.equal(r.access.named.length, 4000);
});

// Action matching does not depend on the caller, yet it is redone for every named caller, every action and every
// statement, lower-casing each 2 KB pattern each time: a 0.95 MB policy (30,000 accounts, 250 long actions) takes ~55 s.
test("attack: long Action patterns are not re-matched once per named account (2,000 accounts x 200 patterns), ASVS 2.4.1 (was: matched and lower-cased per caller and action, ~2.3 s)", () => {
  const actions = [...Array.from({ length: 200 }, (_, i) => `s3:Nope${i}${"A".repeat(2000)}`), "s3:GetObject"];
  const policy = parseBucketPolicy(JSON.stringify({ Statement: [{ Effect: "Allow", Principal: { AWS: accounts(2000) }, Action: actions, Resource: `${B}/*` }] }), "policy.json");
  const r = checkBucket({ policy, ownerAccount: OWNER });
  assert.equal(r.access.named.filter((n) => n.read.allowed).length, 2000);
});

// Other messages quote at most 40 or 60 characters of the offending token (Effect, Permission, settings); these
// three echo a hostile key whole, so one 500 KB key becomes a 500 KB line on the operator's terminal.
test("attack: error messages quote a bounded excerpt of a hostile principal type, condition operator or condition key, ASVS 1.3.3 (was: echoed whole)", () => {
  const big = "X".repeat(100_000);
  for (const st of [
    { ...publicRead, Principal: { [big]: "*" } },
    { ...publicRead, Condition: { [big]: 5 } },
    { ...publicRead, Condition: { StringEquals: { [big]: [{}] } } },
  ]) {
    assert.throws(() => parseBucketPolicy(JSON.stringify({ Statement: [st] }), "policy.json"), (e: unknown) => {
      assert.ok(e instanceof BucketInputError);
      assert.ok(e.message.length < 1000, `message of ${e.message.length} characters`);
      return true;
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Attacks that held (pinned where no existing test covers them)
// ---------------------------------------------------------------------------------------------------------

test("an Allow in any action spelling S3 accepts is read exposure: mixed case, s3:*Object, s3:G?tObject, s3:Get*, *", () => {
  for (const action of ["S3:getobject", "s3:*Object", "s3:G?tObject", "s3:Get*", "*", ["s3:PutObject", "S3:GETOBJECT"]]) {
    assert.equal(run([{ ...publicRead, Action: action }]).access.anonymous.read.allowed, true, JSON.stringify(action));
  }
});

test("an Allow whose Resource reaches the bucket through a wildcard (name prefix, partition, \"*\") exposes it when --bucket is given", () => {
  for (const resource of ["arn:aws:s3:::acme-data*", "arn:*:s3:::acme-data/*", "arn:aws:s3:::acme-*/*", "*", "arn:aws:s3:::acme-dat?/*"]) {
    assert.equal(run([{ ...publicRead, Resource: resource }], { bucket: "acme-data" }).access.anonymous.read.allowed, true, resource);
  }
});

test("Principal {\"AWS\": [\"*\"]} (list form, or \"*\" among named accounts) takes in anonymous callers", () => {
  for (const principal of [{ AWS: ["*"] }, { AWS: ["444455556666", "*"] }, { AWS: "*", Service: "cloudtrail.amazonaws.com" }]) {
    assert.ok(ids(run([{ ...publicRead, Principal: principal }])).includes("bucket.anonymous-read"), JSON.stringify(principal));
  }
});

test("an Allow with NotResource excluding one prefix still exposes every other object; a Deny with NotResource leaves its exception open", () => {
  const notRes = run([{ ...publicRead, Resource: undefined, NotResource: `${B}/private/*` }]);
  assert.equal(notRes.access.anonymous.read.allowed, true);
  const denyExcept = run([publicRead, { Effect: "Deny", Principal: "*", Action: "s3:*", NotResource: `${B}/public/*` }]);
  assert.equal(denyExcept.access.anonymous.read.allowed, true, "objects under public/ are outside the Deny");
  const denyAll = run([publicRead, { Effect: "Deny", Principal: "*", Action: "s3:*", NotResource: "arn:aws:s3:::elsewhere/*" }], { bucket: "acme-data" });
  assert.equal(denyAll.access.anonymous.read.allowed, false, "a NotResource naming nothing in this bucket denies all of it");
});

test("a Deny on Bool aws:MultiFactorAuthPresent=false does not stop anonymous callers (no MFA key at all), but BoolIfExists does", () => {
  assert.equal(run([publicRead, guard({ Bool: { "aws:MultiFactorAuthPresent": "false" } })]).access.anonymous.read.allowed, true);
  assert.equal(run([publicRead, guard({ BoolIfExists: { "aws:MultiFactorAuthPresent": "false" } })]).access.anonymous.read.allowed, false);
});

test("condition keys match in any case, and an Allow on Null aws:PrincipalArn=true is open to anonymous callers", () => {
  const r = run([publicRead, guard({ StringNotEquals: { "AWS:PRINCIPALACCOUNT": OWNER } })]);
  assert.equal(r.access.anonymous.read.allowed, false);
  assert.equal(r.access.anyAccount.read.allowed, false);
  assert.equal(run([{ ...publicRead, Condition: { Null: { "aws:PrincipalArn": "true" } } }]).access.anonymous.read.allowed, true);
});

test("RestrictPublicBuckets does not hide a public ACL: with IgnorePublicAcls off, AllUsers READ stays anonymous read", () => {
  const acl = { Owner: { ID: "aaaa" }, Grants: [{ Grantee: { Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AllUsers" }, Permission: "READ" }] };
  const pab = { PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: false, BlockPublicPolicy: true, RestrictPublicBuckets: true } };
  const r = run([publicRead], { acl, pab });
  assert.equal(r.access.anonymous.read.allowed, true);
  assert.deepEqual(r.access.anonymous.read.grantedBy, ["Group AllUsers READ (grant #0)"]);
});

test("hostile operator and key spellings never crash and never make a Deny hide a public read", () => {
  for (const condition of [
    { "ForAnyValue:": { "aws:SourceVpce": "vpce-1" } },
    { IfExists: { "aws:PrincipalAccount": OWNER } },
    { __proto__Like: { ["__proto__"]: "x" } },
    { StringNotEquals: { "aws:PrincipalAccount": "${aws:PrincipalAccount" } },
    { "ForAllValues:NullIfExists": { constructor: "true" } },
  ]) {
    const r = run([publicRead, guard(condition)]);
    assert.equal(r.access.anonymous.read.allowed || r.access.anyAccount.read.allowed, true, JSON.stringify(condition));
  }
});

// A statement naming a member twice is read one way by JSON.parse (the last wins) and may be read another way by
// whatever stores or evaluates the policy: "Effect": "Deny" then "Effect": "Allow" in one statement judged as an Allow
// here, or the reverse, would be a verdict about a policy nobody else sees. Such a document is refused, by name.
test("attack: a key written twice in one object (plainly, or spelled with an escape) is refused by name, not judged as whichever came last (ASVS 16.5.3) (was: the last one counted, silently)", () => {
  const statement = `{"Sid":"S","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"${B}/*","Effect":"Allow"}`;
  const escaped = `{"Sid":"S","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"${B}/*","Eff\\u0065ct":"Deny"}`;
  for (const [what, text] of [
    ["in a statement", `{"Version":"2012-10-17","Statement":[${statement}]}`],
    ["spelled with an escape", `{"Version":"2012-10-17","Statement":[${escaped}]}`],
    ["at the top", `{"Version":"2012-10-17","Statement":[],"Statement":[${statement.replace(',"Effect":"Allow"', "")}]}`],
  ]) {
    assert.throws(() => parseBucketPolicy(text as string, "policy.json"), (e: unknown) => {
      assert.ok(e instanceof BucketInputError, what);
      assert.match((e as Error).message, /^policy\.json: the key "(Effect|Statement)" appears twice in one object/, what);
      return true;
    });
  }
  // A policy wrapped in get-bucket-policy's {"Policy": "…"} is checked inside too.
  const wrapped = JSON.stringify({ Policy: `{"Version":"2012-10-17","Statement":[${statement}]}` });
  assert.throws(() => parseBucketPolicy(wrapped, "policy.json"), /policy\.json \(Policy\): the key "Effect" appears twice/);
  // The same name in sibling objects, or as a value, is no repetition.
  const fine = `{"Version":"2012-10-17","Statement":[{"Sid":"Effect","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"${B}/*"},{"Sid":"B","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"${B}/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`;
  assert.equal(parseBucketPolicy(fine, "policy.json").statements.length, 2);
});
