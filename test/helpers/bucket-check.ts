// For the bucket check's attack files: one bucket's policy statements (and ACL, public access block) judged in process
// for the account that owns it, as `bulwark check bucket` judges the files `aws s3api` prints.
import { parseBucketACL, parsePublicAccessBlock } from "../../src/checks/bucket/acl-parse.ts";
import { checkBucket, type BucketCheckResult } from "../../src/checks/bucket/check.ts";
import { parseBucketPolicy } from "../../src/checks/bucket/policy-parse.ts";

/** The owning account the attack files use. */
export const OWNER = "111122223333";

export type Statement = Record<string, unknown>;

/**
 * `statements` as a policy of OWNER's bucket, with an ACL, a public access block and a --bucket when given.
 *
 * @example
 * judgeBucket([{ Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: "arn:aws:s3:::b/*" }]).access;
 */
export function judgeBucket(statements: Statement[], extra: { acl?: unknown; pab?: unknown; bucket?: string } = {}): BucketCheckResult {
  return checkBucket({
    policy: parseBucketPolicy(JSON.stringify({ Version: "2012-10-17", Statement: statements }), "policy.json"),
    acl: extra.acl ? parseBucketACL(JSON.stringify(extra.acl), "acl.json") : undefined,
    publicAccessBlock: extra.pab ? parsePublicAccessBlock(JSON.stringify(extra.pab), "pab.json") : undefined,
    ownerAccount: OWNER,
    bucket: extra.bucket,
  });
}
