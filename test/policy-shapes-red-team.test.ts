// Red-team round "policy shapes": `bulwark check bucket` read by an insider or intruder who holds s3:PutBucketPolicy in
// the victim's account and wants a bucket readable or writable from outside (a leaked backup, the Sentry kind of
// exposure) while the operator's daily `bulwark check bucket --policy … --public-access-block … --owner-account …`
// reports nothing, or reports it below the default --fail-on high. The attacker knows Bulwark's source and docs and
// writes policy shapes that mean "open to me" to AWS but that the checker reads otherwise. Verdicts are compared with
// AWS's documented semantics: S3 User Guide, "Blocking public access to your Amazon S3 storage", section "The meaning
// of 'public'" (awsdocs/amazon-s3-userguide, doc_source/access-control-block-public-access.md), IAM User Guide,
// "Condition operators" and "AWS global condition context keys".
//
// Tried and already pinned elsewhere (not repeated): Principal "*" / {"AWS":"*"} / {"AWS":["*"]} / a list mixing an
// account and "*"; NotPrincipal with Allow; Effect "allow" (refused); Statement as one object; action wildcards and
// case (S3:GETOBJECT, s3:*Object, s3:G?tObject, "*"); NotAction; Resource forms (bucket*, "*", arn:aws:s3:::*/*,
// wildcard partition); Bool aws:SecureTransport; StringEqualsIfExists aws:SourceVpc; Referer; keys written twice
// (refused); service principals; pins on the Allow (IP, endpoint, organisation); wide IPv4 unions; RestrictPublicBuckets
// with a public ACL; IgnorePublicAcls. Held and pinned below: look-alike letters and blanks in a guard Deny's key or
// operator; AWS's own examples of public conditions (StringLike aws:SourceVpc vpc-*; IpAddressIfExists; a
// wildcard-account s3:DataAccessPointArn).
//
// Found (fixed since: 1 and the aws:userid half of 2, a certain Deny's exception on a pin key that is not the owner's
// own is a pin, so the Allow it spares there is bucket.pinned-grant (pins.ts denyPins, evaluate.ts pinnedGrants); 2, the
// accounts of aws:PrincipalArn, aws:SourceArn and aws:SourceAccount values are named callers (evaluate.ts namedCallers);
// 3, s3:DataAccessPointAccount/Arn are fixed-value keys like the KMS key (conditions.ts), and RestrictPublicBuckets is
// applied only when AWS certainly calls the policy public (public-policy.ts); 4, IPv6 pins up to a /32, AWS's line; 5,
// the KMS key id is a pin key, the owner's own key excepted):
//   1. A pin written as a Deny ("Allow *; Deny unless at vpce-X / 198.51.100.7 / o-X / distribution of account X")
//      is reported by nothing, while the same access written as the Allow's own condition is bucket.pinned-grant.
//   2. A Deny exception naming a foreign principal by aws:PrincipalArn or aws:userid is reported by nothing, while the
//      same exception by aws:PrincipalAccount or NotPrincipal is bucket.cross-account.
//   3. RestrictPublicBuckets is applied to a policy AWS does not call public (a fixed s3:DataAccessPointAccount or
//      s3:DataAccessPointArn: AWS's recommended access-point delegation), so a grant to the intruder's account, which
//      AWS serves, is dropped; the summary even says the policy "grants nothing outside the owner account".
//   4. An Allow to "*" on an IPv6 aws:SourceIp range broader than /32 (which AWS calls public) is only a medium pinned
//      grant: exit 0 at the default --fail-on high.
//   5. An Allow to "*" pinned only by s3:x-amz-server-side-encryption-aws-kms-key-id to another account's KMS key
//      (write for whoever may use that key; non-public to AWS, so it survives every Block Public Access setting) is
//      reported by nothing.
// In-process only: no files, no network.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePublicAccessBlock } from "../src/checks/bucket/acl-parse.ts";
import { checkBucket, type BucketCheckResult } from "../src/checks/bucket/check.ts";
import { parseBucketPolicy } from "../src/checks/bucket/policy-parse.ts";

const OWNER = "111122223333";
const INTRUDER = "444455556666";
const B = "arn:aws:s3:::acme-backups";
type Statement = Record<string, unknown>;

/** All four Block Public Access settings on: the default for a new bucket since April 2023. */
const ALL_BLOCKS = { PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true } };

function check(statements: Statement[], pab?: unknown): BucketCheckResult {
  return checkBucket({
    policy: parseBucketPolicy(JSON.stringify({ Version: "2012-10-17", Statement: statements }), "policy.json"),
    publicAccessBlock: pab === undefined ? undefined : parsePublicAccessBlock(JSON.stringify(pab), "pab.json"),
    ownerAccount: OWNER,
  });
}

/** Findings other than the ones every policy without a TLS Deny or a full block configuration gets. */
const exposure = (r: BucketCheckResult): BucketCheckResult["findings"] =>
  r.findings.filter((f) => f.id !== "bucket.no-secure-transport" && f.id !== "bucket.block-public-access-off");
const shown = (r: BucketCheckResult): string =>
  JSON.stringify({ findings: r.findings.map((f) => [f.id, f.severity]), access: r.summary });
/** Whether some exposure finding at medium or above names the statement (its label, `"Sid" (#n)`, in the detail). */
const reportedAtLeastMedium = (r: BucketCheckResult, sid: string): boolean =>
  exposure(r).some((f) => ["critical", "high", "medium"].includes(f.severity) && f.detail.includes(`"${sid}" (#`));

const read: Statement = { Sid: "Read", Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: `${B}/*` };
const unless = (condition: Record<string, unknown>): Statement =>
  ({ Sid: "OnlyFromThere", Effect: "Deny", Principal: "*", Action: "s3:*", Resource: [B, `${B}/*`], Condition: condition });

// ---------------------------------------------------------------------------------------------------------------------
// 1. The pin moved from the Allow into a Deny
// ---------------------------------------------------------------------------------------------------------------------

// IAM evaluation: an explicit Deny applies only when its condition holds. "Deny * unless aws:SourceVpce = E" does not
// hold for a request through E (StringNotEquals is false there), so "Allow *; Deny unless E" gives exactly what
// "Allow * if aws:SourceVpce = E" gives: every caller at E, unsigned ones included. The same for NotIpAddress (a /32
// the intruder holds), aws:PrincipalOrgID (the intruder's organisation) and aws:SourceArn (CloudFront Developer Guide,
// "Restricting access to an Amazon S3 origin": OAC requests carry the distribution's ARN, here the intruder's own).
// docs/checks.md promises bucket.pinned-grant for "an Allow that would reach anonymous callers or any account but for a
// fixed source address, VPC, VPC endpoint, organisation, source resource": the Allow here would, but for the Deny.
// evaluate.ts pinnedGrants only asks unattributedPins(st) of the Allow's own conditions, and the Deny "certainly
// applies" to callers in general, so the Allow is filed under cancelledAllows and nothing is reported. (The unit test
// "a Deny that every outsider meets (StringNotEquals aws:SourceVpce) removes public access" in evaluate.test.ts predates
// the pinned-grant rule and pins this silence; the caller at the endpoint is an outsider who does not meet it.)
test("attack: the intruder fences an Allow to \"*\" with a Deny \"unless from my VPC endpoint / my /32 / my organisation / my CloudFront distribution\" instead of a condition on the Allow — the grant is reported for review like its Allow-side twin (bucket.pinned-grant), not silently filed as cancelled (ASVS 8.2.2, 8.4.1) (was: filed under cancelledAllows, no finding)", () => {
  // Controls that hold today: the Allow-side twin is reported; a Deny fencing to the owner's own account or
  // distribution is not exposure.
  const twin = check([{ ...read, Condition: { StringEquals: { "aws:SourceVpce": "vpce-0a1b2c3d4e5f67890" } } }]);
  assert.ok(reportedAtLeastMedium(twin, "Read"), `control, the Allow-side pin: ${shown(twin)}`);
  const cloudFront: Statement = { Sid: "Read", Effect: "Allow", Principal: { Service: "cloudfront.amazonaws.com" }, Action: "s3:GetObject", Resource: `${B}/*` };
  for (const [what, statements] of [
    ["owner account", [read, unless({ StringNotEquals: { "aws:PrincipalAccount": OWNER } })]],
    ["owner distribution", [cloudFront, unless({ StringNotEquals: { "aws:SourceArn": `arn:aws:cloudfront::${OWNER}:distribution/EOWN` } })]],
  ] as const) {
    const r = check([...statements]);
    assert.deepEqual(exposure(r), [], `control, fenced to the ${what}: ${shown(r)}`);
  }

  const missed: string[] = [];
  for (const [what, statements] of [
    ["the intruder's VPC endpoint", [read, unless({ StringNotEquals: { "aws:SourceVpce": "vpce-0a1b2c3d4e5f67890" } })]],
    ["the intruder's host", [read, unless({ NotIpAddress: { "aws:SourceIp": "198.51.100.7/32" } })]],
    ["the intruder's organisation", [read, unless({ StringNotEquals: { "aws:PrincipalOrgID": "o-intruder01" } })]],
    ["the intruder's CloudFront distribution", [cloudFront, unless({ StringNotEquals: { "aws:SourceArn": `arn:aws:cloudfront::${INTRUDER}:distribution/EINTRUDER` } })]],
  ] as const) {
    const r = check([...statements]);
    if (!reportedAtLeastMedium(r, "Read")) missed.push(`${what}: ${shown(r)}`);
  }
  assert.deepEqual(missed, [], "every caller standing at the Deny's exception reads every object (AWS applies no Deny there), yet no finding names the Allow \"Read\": it is listed under cancelledAllows only");
});

// ---------------------------------------------------------------------------------------------------------------------
// 2. A foreign account's exception written with aws:PrincipalArn
// ---------------------------------------------------------------------------------------------------------------------

// "Allow *; Deny * unless aws:PrincipalArn like arn:aws:iam::INTRUDER:*" leaves exactly account INTRUDER with read
// (StringNotLike is false for its principals, so the Deny does not apply; IAM User Guide, aws:PrincipalArn). The check
// reports the same exception written with aws:PrincipalAccount, or as a Deny's NotPrincipal, as bucket.cross-account
// (medium); written with aws:PrincipalArn (or aws:userid, the intruder role's unique id), nothing. namedCallers
// (evaluate.ts) and createVerdicts (verdicts.ts) take named accounts only from principals and aws:PrincipalAccount
// values, and pinnedGrants does not look at Denies (as in 1).
test("attack: the intruder exempts its own account from an \"everyone else\" Deny with aws:PrincipalArn (or its role's aws:userid) rather than aws:PrincipalAccount — the account keeps read, and the check reports it (cross-account; pinned-grant for a role id) as it does the aws:PrincipalAccount and NotPrincipal spellings (ASVS 8.2.2, 8.4.1) (was: no finding, the Allow filed as cancelled)", () => {
  // Controls that hold today.
  for (const [what, deny] of [
    ["aws:PrincipalAccount", unless({ StringNotEquals: { "aws:PrincipalAccount": INTRUDER } })],
    ["NotPrincipal", { Sid: "OnlyFromThere", Effect: "Deny", NotPrincipal: { AWS: `arn:aws:iam::${INTRUDER}:root` }, Action: "s3:*", Resource: [B, `${B}/*`] }],
  ] as const) {
    const r = check([read, deny]);
    assert.ok(exposure(r).some((f) => f.id === "bucket.cross-account" && f.detail.includes(INTRUDER)), `control, ${what}: ${shown(r)}`);
  }

  const missed: string[] = [];
  for (const [what, condition] of [
    ["StringNotLike aws:PrincipalArn", { StringNotLike: { "aws:PrincipalArn": `arn:aws:iam::${INTRUDER}:*` } }],
    ["ArnNotEquals aws:PrincipalArn", { ArnNotEquals: { "aws:PrincipalArn": `arn:aws:iam::${INTRUDER}:role/backup-sync` } }],
    ["StringNotLike aws:userid (role id)", { StringNotLike: { "aws:userid": "AROAINTRUDERROLE0001:*" } }],
  ] as const) {
    const r = check([read, unless(condition)]);
    if (!reportedAtLeastMedium(r, "Read")) missed.push(`${what}: ${shown(r)}`);
  }
  assert.deepEqual(missed, [], `account ${INTRUDER}'s principals (or the intruder's role) are outside the Deny and read every object, yet no finding names the Allow "Read"`);
});

// ---------------------------------------------------------------------------------------------------------------------
// 3. RestrictPublicBuckets applied to a policy AWS does not call public
// ---------------------------------------------------------------------------------------------------------------------

// "The meaning of 'public'": a bucket policy is non-public when it grants only to fixed values of, among others,
// s3:DataAccessPointArn ("this value can contain a wildcard for the access point name without rendering the policy
// public, as long as the account id is fixed") and s3:DataAccessPointAccount. AWS's recommended delegation to access
// points (S3 User Guide, "Delegating access control to access points": Principal {"AWS":"*"}, Action "*", StringEquals
// s3:DataAccessPointAccount = owner) is therefore non-public, and "RestrictPublicBuckets only applies to buckets that
// have public policies" (same page: "if you remove statement 3 … Account-2 regains access … even if you leave
// RestrictPublicBuckets enabled"). The check reads s3:DataAccessPointAccount as an unknown key ("maybe"), counts the
// policy as public, and drops every grant outside the owner account: the intruder's own statement, which AWS's
// BlockPublicPolicy accepted and AWS serves, vanishes. A delegation to the intruder's account (its own cross-account
// access point on this bucket) vanishes the same way. The README's "access points are not covered" is about access
// point policies as inputs; here the bucket policy alone is misjudged, and the check fails open (16.5.3).
test("attack: with all four Block Public Access settings on, the intruder adds a grant to its account beside the owner's documented access-point delegation (or delegates to its own account's access points) — AWS calls the policy non-public and serves the grant, so RestrictPublicBuckets is not applied and the grant is reported (ASVS 8.2.2, 8.4.1, 16.5.3) (was: s3:DataAccessPoint* read as caller-chosen, the policy called public, the intruder's grant dropped)", () => {
  const delegate = (account: string, condition?: Record<string, unknown>): Statement => ({
    Sid: "DelegateToAccessPoints", Effect: "Allow", Principal: { AWS: "*" }, Action: "*", Resource: [B, `${B}/*`],
    Condition: condition ?? { StringEquals: { "s3:DataAccessPointAccount": account } },
  });
  const intruder: Statement = { Sid: "Intruder", Effect: "Allow", Principal: { AWS: `arn:aws:iam::${INTRUDER}:root` }, Action: "s3:GetObject", Resource: `${B}/*` };
  // Control that holds today: the intruder's grant alone, under the same settings, is reported.
  const alone = check([intruder], ALL_BLOCKS);
  assert.ok(exposure(alone).some((f) => f.id === "bucket.cross-account"), `control: ${shown(alone)}`);

  for (const [what, delegation] of [
    ["s3:DataAccessPointAccount = owner", delegate(OWNER)],
    ["s3:DataAccessPointArn = owner's access points in one Region", delegate(OWNER, { ArnLike: { "s3:DataAccessPointArn": `arn:aws:s3:us-east-1:${OWNER}:accesspoint/*` } })],
  ] as const) {
    const r = check([delegation, intruder], ALL_BLOCKS);
    assert.equal(r.access.restrictPublicBucketsApplied, false, `${what}: the check applied RestrictPublicBuckets to a policy AWS does not call public: ${shown(r)}`);
    assert.ok(exposure(r).some((f) => f.id === "bucket.cross-account" && f.detail.includes(INTRUDER)),
      `${what}: account ${INTRUDER} reads every object (AWS keeps the grant: the policy is non-public) but the check reports no cross-account access: ${shown(r)}`);
  }
  const toIntruder = check([delegate(INTRUDER)], ALL_BLOCKS);
  assert.ok(reportedAtLeastMedium(toIntruder, "DelegateToAccessPoints"),
    `a delegation to account ${INTRUDER}'s access points (non-public to AWS, so RestrictPublicBuckets leaves it) lets that account in through an access point of its own, yet nothing names it: ${shown(toIntruder)}`);
});

// ---------------------------------------------------------------------------------------------------------------------
// 4. IPv6 ranges AWS calls public, rated as pins
// ---------------------------------------------------------------------------------------------------------------------

// "The meaning of 'public'", note under aws:SourceIp: "Bucket policies that grant access conditioned on the aws:SourceIp
// condition key with very broad IP ranges … are evaluated as 'public.' This includes values broader than /8 for IPv4 and
// /32 for IPv6". The check's line for IPv6 is a /16 (conditions.ts WIDEST_PINNING_PREFIX; README: "IPv6: a /15"), 2^16
// times wider than AWS's: a /17, /24 or /31 (2^97 to 2^111 addresses, each more than all of IPv4 many times over) is
// called a pin, reported as bucket.pinned-grant (medium), and `bulwark check bucket` exits 0 at the default --fail-on
// high. The IPv4 counterpart (a /7) is anonymous read, critical. The docs say the check goes beyond AWS's "public" on
// purpose; here it stops well short of it.
test("attack: the intruder grants read to \"*\" from an IPv6 range broader than /32 — AWS calls that public, so the check reports anonymous read (critical), not a medium pin that exits 0 (ASVS 8.2.2) (was: IPv6 ranges up to a /16 read as pins, medium, exit 0)", () => {
  // Controls that hold today: /32 and narrower are pins (AWS agrees they are non-public), reported for review.
  for (const range of ["2001:db8::/32", "2001:db8:1234::/48"]) {
    const r = check([{ ...read, Condition: { IpAddress: { "aws:SourceIp": range } } }]);
    assert.ok(exposure(r).some((f) => f.id === "bucket.pinned-grant"), `control ${range}: ${shown(r)}`);
  }
  const missed: string[] = [];
  for (const range of ["2600::/17", "2600:1f00::/24", "2a05:d000::/31"]) {
    const r = check([{ ...read, Condition: { IpAddress: { "aws:SourceIp": range } } }]);
    const f = r.findings.find((x) => x.id === "bucket.anonymous-read");
    if (!r.access.anonymous.read.allowed || f?.severity !== "critical") missed.push(`${range}: ${shown(r)}`);
  }
  assert.deepEqual(missed, [], "AWS evaluates an aws:SourceIp grant broader than /32 (IPv6) as public, but the check calls it a pin and rates it medium");
});

// ---------------------------------------------------------------------------------------------------------------------
// 5. A pin on a KMS key the check forgets to report
// ---------------------------------------------------------------------------------------------------------------------

// s3:x-amz-server-side-encryption-aws-kms-key-id is the key ARN a PutObject asks S3 to encrypt with; a key of another
// account is named by its full ARN, and the request succeeds for any principal that the key's own policy lets use it
// (S3 User Guide, "Specifying server-side encryption with AWS KMS (SSE-KMS)": a KMS key of another account may be used
// by its ARN, given permission on the key; such requests must be SigV4-signed, so not anonymous). So "Allow * PutObject
// if the KMS key is arn:aws:kms:…:INTRUDER:key/…" lets every principal the intruder allows on its key overwrite or plant
// objects, encrypted under a key the intruder can later disable (ransom). AWS calls the policy non-public (a fixed
// value of that key is on its list), so BlockPublicPolicy accepts it and RestrictPublicBuckets leaves it. The check
// judges the key "never" for outside callers (conditions.ts situations: [ABSENT, FOREIGN]) but pins.ts PIN_KEYS does not
// list it, so unattributedPins returns undefined and no pinned-grant is made: nothing at all is reported.
test("attack: with all four Block Public Access settings on, the intruder allows \"*\" to PutObject when the object is encrypted under the intruder's own KMS key — write for every principal that key admits, reported for review (bucket.pinned-grant), not silent (ASVS 8.2.2, 8.4.1) (was: the key judged a pin but missing from the pin keys, no finding)", () => {
  const upload = (keyAccount: string): Statement => ({
    Sid: "UploadsWithOurKey", Effect: "Allow", Principal: "*", Action: "s3:PutObject", Resource: `${B}/*`,
    Condition: { StringEquals: { "s3:x-amz-server-side-encryption-aws-kms-key-id": `arn:aws:kms:us-east-1:${keyAccount}:key/1234abcd-12ab-34cd-56ef-1234567890ab` } },
  });
  // Control that holds today: the owner's own key is the owner's own pin.
  const own = check([upload(OWNER)], ALL_BLOCKS);
  assert.deepEqual(exposure(own), [], `control, the owner's key: ${shown(own)}`);
  const r = check([upload(INTRUDER)], ALL_BLOCKS);
  assert.ok(reportedAtLeastMedium(r, "UploadsWithOurKey"),
    `any principal allowed to use account ${INTRUDER}'s KMS key can write every object of acme-backups, yet no finding names "UploadsWithOurKey": ${shown(r)}`);
});

// ---------------------------------------------------------------------------------------------------------------------
// Held (pinned here; not pinned elsewhere)
// ---------------------------------------------------------------------------------------------------------------------

// "The meaning of 'public'" gives {"StringLike": {"aws:SourceVpc": "vpc-*"}} as a public policy (a wildcard is not a
// fixed value); IpAddressIfExists holds when aws:SourceIp is absent, which it is through any VPC endpoint (IAM User
// Guide, aws:SourceIp availability), and any account can make one; an s3:DataAccessPointArn whose account is a
// wildcard admits access points of any account (AWS: non-public only "as long as the account id is fixed").
test("attack: conditions that look like pins but are public to AWS (aws:SourceVpc vpc-*, IpAddressIfExists on one /32, an access point ARN of any account) — reported as anonymous exposure, critical (ASVS 8.2.2)", () => {
  for (const [condition, cls] of [
    [{ StringLike: { "aws:SourceVpc": "vpc-*" } }, "write"],
    [{ IpAddressIfExists: { "aws:SourceIp": "198.51.100.7/32" } }, "read"],
    [{ ArnLike: { "s3:DataAccessPointArn": "arn:aws:s3:us-east-1:*:accesspoint/*" } }, "read"],
  ] as const) {
    const action = cls === "write" ? "s3:PutObject" : "s3:GetObject";
    const r = check([{ Sid: "LooksPinned", Effect: "Allow", Principal: "*", Action: action, Resource: "*", Condition: condition }]);
    const f = r.findings.find((x) => x.id === `bucket.anonymous-${cls}`);
    assert.equal(f?.severity, "critical", `${JSON.stringify(condition)}: ${shown(r)}`);
  }
});

// A Deny is credited only when every clause is understood and certainly true. IAM matches condition keys by name (case
// aside): a key spelled with a look-alike letter, a zero-width space or a leading blank is another key, absent from
// every request, so a positive operator on it never holds and the Deny never applies (an unknown operator is no
// operator at all). "Deny unsigned requests" written so must not be credited as the genuine guard: the anonymous read
// stays reported.
test("attack: a guard Deny \"StringEquals aws:PrincipalType Anonymous\" whose key or operator is a look-alike (Cyrillic Т, Greek Ε, zero-width space, leading blank) — not credited, the anonymous read stays reported critical (ASVS 8.2.2)", () => {
  // The genuine spelling is credited (the control): unsigned requests are denied.
  const genuine = check([read, unless({ StringEquals: { "aws:PrincipalType": "Anonymous" } })]);
  assert.equal(genuine.access.anonymous.read.allowed, false, `control: ${shown(genuine)}`);
  for (const condition of [
    { StringEquals: { "aws:PrincipalТype": "Anonymous" } },
    { StringEquals: { "aws:Principal\u200bType": "Anonymous" } },
    { StringEquals: { " aws:PrincipalType": "Anonymous" } },
    { "StringΕquals": { "aws:PrincipalType": "Anonymous" } },
  ]) {
    const r = check([read, unless(condition)]);
    assert.ok(r.findings.some((f) => f.id === "bucket.anonymous-read" && f.severity === "critical"), `${JSON.stringify(condition)}: ${shown(r)}`);
  }
});
