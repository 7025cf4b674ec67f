// Resource / NotResource reasoning over the bucket's ARN space: which part of the bucket an Allow
// reaches, and whether a Deny certainly covers that part.
import type { PatternReasoner } from "./glob.ts";
import type { PolicyStatement } from "./policy-parse.ts";

export interface BucketTarget {
  /** `arn:aws:s3:::name`, or `arn:aws:s3:::*` when the bucket name is unknown. */
  bucketArn: string;
  /** `arn:aws:s3:::name/*`: every object key. */
  objectArn: string;
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
      const s3 = /^arn:([^:]*):s3:::/.exec(r);
      if (s3) partitions.add(s3[1] ?? "");
      const m = /^arn:(aws[a-z-]*):s3:::([^/*?]+)(?:\/|$)/.exec(r);
      if (!m) continue;
      if (name === undefined) {
        name = m[2];
        inferred = true;
      }
      if (m[2] === name) named ??= m[1];
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
