// The bucket-exposure check: parsed inputs in, Findings and an access summary out.
import type { Finding } from "../finding.ts";
import type { BucketAccess, BucketInputs, CallerAccess } from "./evaluate.ts";
import { evaluateBucketAccess } from "./evaluate.ts";
import { bucketFindings } from "./findings.ts";
import { describeCaller } from "./callers.ts";

export interface BucketCheckResult {
  findings: Finding[];
  access: BucketAccess;
  /** A compact, JSON-friendly view of who can do what (printed as `access` by the CLI). */
  summary: Record<string, unknown>;
}

function brief(ca: CallerAccess): { read: boolean; write: boolean } {
  return { read: ca.read.allowed, write: ca.write.allowed };
}

/**
 * Evaluates a bucket's policy, ACL and Block Public Access settings and returns its findings.
 *
 * @example
 * const { findings } = checkBucket({ acl: parseBucketACL(text, "acl.json") });
 */
export function checkBucket(inputs: BucketInputs): BucketCheckResult {
  const access = evaluateBucketAccess(inputs);
  const findings = bucketFindings(access, inputs);
  const summary: Record<string, unknown> = {
    bucket: access.bucket ?? null,
    bucketInferred: access.bucketInferred,
    anonymous: brief(access.anonymous),
    anyAwsAccount: brief(access.anyAccount),
    named: access.named.map((n) => ({ grantee: describeCaller(n.caller), ...brief(n) })),
    policyPublic: access.policyPublic,
    restrictPublicBucketsApplied: access.restrictPublicBucketsApplied,
    ignoredPublicGrants: access.ignoredPublicGrants,
    cancelledAllows: access.cancelledAllows,
    pinnedGrants: access.pinnedGrants.map((g) => g.statement),
  };
  return { findings, access, summary };
}

/** Named callers the human summary lists one by one. */
const NAMED_LINES = 50;

/** Human lines for the CLI's summary. */
export function summaryLines(access: BucketAccess): string[] {
  const yn = (b: boolean): string => (b ? "yes" : "no");
  const lines = [
    `bucket: ${access.bucket ?? "(name unknown)"}${access.bucketInferred ? " (from the policy's Resources)" : ""}`,
    `anonymous:       read ${yn(access.anonymous.read.allowed)}, write ${yn(access.anonymous.write.allowed)}`,
    `any AWS account: read ${yn(access.anyAccount.read.allowed)}, write ${yn(access.anyAccount.write.allowed)}`,
  ];
  // A policy may name thousands of accounts: the first ones here, every one in --json.
  for (const n of access.named.slice(0, NAMED_LINES)) lines.push(`${describeCaller(n.caller)}: read ${yn(n.read.allowed)}, write ${yn(n.write.allowed)}`);
  if (access.named.length > NAMED_LINES) lines.push(`… and ${access.named.length - NAMED_LINES} more named accounts or users (--json lists every one)`);
  if (access.restrictPublicBucketsApplied) lines.push("RestrictPublicBuckets: the public policy grants nothing outside the owner account");
  if (access.ignoredPublicGrants.length > 0) lines.push(`IgnorePublicAcls: ignored ${access.ignoredPublicGrants.join("; ")}`);
  if (access.cancelledAllows.length > 0) lines.push(`Allows cancelled for outside callers by explicit Denies: ${access.cancelledAllows.join("; ")}`);
  if (access.pinnedGrants.length > 0) lines.push(`Open to outside callers at a pin only (address, endpoint, organisation...): ${access.pinnedGrants.map((g) => g.statement).join("; ")}`);
  return lines;
}
