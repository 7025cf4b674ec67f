// The S3 actions that make a bucket readable or writable, how ACL permissions map to them, and
// Action/NotAction matching (IAM action names are case-insensitive and take `*` and `?`).
import type { ACLPermission } from "./acl-parse.ts";
import { globMatch } from "./glob.ts";
import type { PolicyStatement } from "./policy-parse.ts";

export type AccessClass = "read" | "write";

export interface S3Action {
  name: string;
  class: AccessClass;
  /** Bucket-level actions act on `arn:aws:s3:::bucket`, object-level ones on `arn:aws:s3:::bucket/key`. */
  level: "bucket" | "object";
}

/**
 * Read is object read or listing; write is object write or delete, or changing the ACL. The
 * bucket-policy actions (PutBucketPolicy, DeleteBucketPolicy) are left out on purpose: S3 answers
 * 405 Method Not Allowed to any identity outside the bucket owner's account, whatever the policy
 * grants (PutBucketPolicy API reference), so they never expose a bucket to other accounts.
 */
export const S3_ACTIONS: readonly S3Action[] = [
  { name: "s3:GetObject", class: "read", level: "object" },
  { name: "s3:GetObjectVersion", class: "read", level: "object" },
  { name: "s3:ListBucket", class: "read", level: "bucket" },
  { name: "s3:ListBucketVersions", class: "read", level: "bucket" },
  { name: "s3:ListBucketMultipartUploads", class: "read", level: "bucket" },
  { name: "s3:PutObject", class: "write", level: "object" },
  { name: "s3:DeleteObject", class: "write", level: "object" },
  { name: "s3:DeleteObjectVersion", class: "write", level: "object" },
  { name: "s3:PutObjectAcl", class: "write", level: "object" },
  { name: "s3:PutObjectVersionAcl", class: "write", level: "object" },
  { name: "s3:PutBucketAcl", class: "write", level: "bucket" },
];

/**
 * What a bucket ACL grant allows, per the S3 ACL documentation: READ lists the bucket, WRITE creates,
 * overwrites and deletes any object, WRITE_ACP rewrites the bucket ACL (and so grants itself
 * anything), READ_ACP reads the ACL only, FULL_CONTROL is all four. A bucket ACL never grants
 * GetObject: object reads come from object ACLs, which get-bucket-acl does not show.
 */
export const ACL_ACTIONS: Readonly<Record<ACLPermission, readonly string[]>> = {
  READ: ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"],
  WRITE: ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
  READ_ACP: [],
  WRITE_ACP: ["s3:PutBucketAcl"],
  FULL_CONTROL: [
    "s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads",
    "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketAcl",
  ],
};

/**
 * True when the statement's Action (or NotAction) covers `action`.
 *
 * @example
 * actionCovered(statement, "s3:GetObject"); // true for Action "s3:Get*"
 */
export function actionCovered(statement: PolicyStatement, action: string): boolean {
  const listed = statement.actions.some((p) => globMatch(p, action, { ignoreCase: true }));
  return statement.notAction ? !listed : listed;
}
