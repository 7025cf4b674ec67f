// Resource / NotResource reasoning over the bucket's ARN space: which part of the bucket an Allow
// reaches, and whether a Deny certainly covers that part.
import { hasWildcard, type PatternReasoner } from "./glob.ts";
import type { PolicyStatement } from "./policy-parse.ts";

export interface BucketTarget {
  /** `arn:aws:s3:::name`, or `arn:aws:s3:::*` when the bucket name is unknown. */
  bucketArn: string;
  /** `arn:aws:s3:::name/*`: every object key. */
  objectArn: string;
}

/**
 * The partition and bucket part of an S3 ARN (`arn:PARTITION:s3:::BUCKET[/KEY]`), and whether that bucket part names
 * one bucket (non-empty, no wildcard); null for anything else.
 *
 * @example
 * s3Bucket("arn:aws-cn:s3:::acme-*"); // { partition: "aws-cn", bucket: "acme-*", literal: false }
 */
export function s3Bucket(resource: string): { partition: string; bucket: string; literal: boolean } | null {
  const m = /^arn:([^:]*):s3:::([^/]*)/.exec(resource);
  if (!m) return null;
  const bucket = m[2] ?? "";
  return { partition: m[1] ?? "", bucket, literal: bucket !== "" && !hasWildcard(bucket) };
}

/**
 * The bucket's ARNs. Without a name, a bucket policy still names its own bucket in its Resources
 * (S3 refuses policies about other buckets), so the first concrete name there is used; failing
 * that the name stays a wildcard, which only makes Denies harder to prove (conservative). The partition
 * (`aws`, `aws-cn`, `aws-us-gov`…) is the one of a Resource naming the bucket; failing that, the one every S3
 * Resource of the policy has; a wildcard when they disagree or use one (a bucket lives in one partition, and a
 * China Region policy on `arn:aws-cn:s3:::acme-*` must not be read as about another partition's bucket).
 *
 * @example
 * bucketTarget("backups", []).objectArn; // "arn:aws:s3:::backups/*"
 */
export function bucketTarget(bucket: string | undefined, statements: readonly PolicyStatement[]): BucketTarget & { name: string | undefined; inferred: boolean } {
  let name = bucket;
  let named: string | undefined;
  let inferred = false;
  const partitions = new Set<string>();
  for (const st of statements) {
    for (const r of st.resources) {
      const s3 = s3Bucket(r);
      if (s3 === null) continue;
      partitions.add(s3.partition);
      if (!s3.literal || !/^aws[a-z-]*$/.test(s3.partition)) continue;
      if (name === undefined) {
        name = s3.bucket;
        inferred = true;
      }
      if (s3.bucket === name) named ??= s3.partition;
    }
  }
  const only = partitions.size === 1 ? [...partitions][0] : undefined;
  const partition = named ?? (partitions.size === 0 ? "aws" : only !== undefined && /^aws[a-z-]*$/.test(only) ? only : "*");
  const bucketArn = `arn:${partition}:s3:::${name ?? "*"}`;
  return { name, inferred, bucketArn, objectArn: `${bucketArn}/*` };
}

/**
 * The resource patterns through which an Allow reaches `target`; empty when it does not reach it.
 *
 * @example
 * allowRegions(reasoner, statement, "arn:aws:s3:::b/*"); // ["arn:aws:s3:::b/public/*"]
 */
export function allowRegions(p: PatternReasoner, statement: PolicyStatement, target: string): string[] {
  if (statement.notResource) return statement.resources.some((n) => p.covers(n, target)) ? [] : [target];
  return statement.resources.filter((r) => p.intersect(r, target));
}

/**
 * True when the statement's resources certainly include every resource of `region` within `target`.
 *
 * @example
 * denyCovers(reasoner, denyOnAllObjects, "arn:aws:s3:::b/public/*", "arn:aws:s3:::b/*"); // true
 */
export function denyCovers(p: PatternReasoner, statement: PolicyStatement, region: string, target: string): boolean {
  if (statement.notResource) return statement.resources.every((n) => !p.intersect(n, region) || !p.intersect(n, target));
  return statement.resources.some((r) => p.covers(r, region) || p.covers(r, target));
}

/**
 * True when the statement's resources touch `region` within `target` at all.
 *
 * @example
 * resourcesOverlap(reasoner, denyOnSecret, "arn:aws:s3:::b/*", "arn:aws:s3:::b/*"); // true
 */
export function resourcesOverlap(p: PatternReasoner, statement: PolicyStatement, region: string, target: string): boolean {
  if (statement.notResource) return !statement.resources.some((n) => p.covers(n, region) || p.covers(n, target));
  return statement.resources.some((r) => p.intersect(r, region) && p.intersect(r, target));
}
