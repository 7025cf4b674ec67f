// The S3 actions that make a bucket readable or writable, how ACL permissions map to them, and
// Action/NotAction matching (IAM action names are case-insensitive and take `*` and `?`).
import type { ACLPermission } from "./acl-parse.ts";
import { compileGlob, hasWildcard, type GlobMatcher } from "./glob.ts";
import type { PolicyStatement } from "./policy-parse.ts";

export type AccessClass = "read" | "write";

export interface S3Action {
  name: string;
  class: AccessClass;
  /** Bucket-level actions act on `arn:aws:s3:::bucket`, object-level ones on `arn:aws:s3:::bucket/key`. */
  level: "bucket" | "object";
}

/**
 * S3 action names that change a bucket or its objects, by family: a name in one of these families is a write
 * (replacing, deleting, re-permissioning, expiring, replicating over, restoring or aborting). Matched in lower
 * case (IAM action names are case-insensitive).
 */
const WRITE_FAMILIES: readonly string[] = ["s3:put", "s3:delete", "s3:replicate", "s3:restore", "s3:abort"];

/**
 * The bucket-policy actions are left out on purpose: S3 answers 405 Method Not Allowed to any identity outside
 * the bucket owner's account, whatever the policy grants (PutBucketPolicy and DeleteBucketPolicy API
 * references), so they never expose a bucket to other accounts.
 */
const OWNER_ONLY: ReadonlySet<string> = new Set(["s3:putbucketpolicy", "s3:deletebucketpolicy"]);

/**
 * Read is object read or listing (exactly these names). Write is every action of a write family, such as
 * writing or deleting objects, changing an ACL, or a bucket configuration that destroys or redirects data (a
 * lifecycle rule that expires every object, an Object Lock or encryption setting, replication into the bucket).
 *
 * @example
 * classifyAction("S3:PutLifecycleConfiguration"); // "write"
 */
export function classifyAction(name: string): AccessClass | undefined {
  const lower = name.toLowerCase();
  if (READ_NAMES.has(lower)) return "read";
  if (OWNER_ONLY.has(lower)) return undefined;
  return WRITE_FAMILIES.some((f) => lower.startsWith(f)) ? "write" : undefined;
}

const object = (name: string): S3Action => ({ name, class: "write", level: "object" });
const bucket = (name: string): S3Action => ({ name, class: "write", level: "bucket" });

const READ_ACTIONS: readonly S3Action[] = [
  { name: "s3:GetObject", class: "read", level: "object" },
  { name: "s3:GetObjectVersion", class: "read", level: "object" },
  { name: "s3:ListBucket", class: "read", level: "bucket" },
  { name: "s3:ListBucketVersions", class: "read", level: "bucket" },
  { name: "s3:ListBucketMultipartUploads", class: "read", level: "bucket" },
];
const READ_NAMES: ReadonlySet<string> = new Set(READ_ACTIONS.map((a) => a.name.toLowerCase()));

/**
 * The S3 actions evaluated, with the resource each acts on (Service Authorization Reference for Amazon S3). The
 * writes are the existing actions of the write families on a bucket or its objects; an action AWS adds later is
 * still judged when a policy names it (see actionsToEvaluate).
 */
export const S3_ACTIONS: readonly S3Action[] = [
  ...READ_ACTIONS,
  ...["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectVersionAcl"].map(object),
  bucket("s3:PutBucketAcl"),
  ...[
    "s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging",
    "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags",
    "s3:RestoreObject", "s3:AbortMultipartUpload",
  ].map(object),
  ...[
    "s3:DeleteBucket", "s3:DeleteBucketWebsite", "s3:PutBucketCORS", "s3:PutBucketLogging", "s3:PutBucketNotification",
    "s3:PutBucketObjectLockConfiguration", "s3:PutBucketOwnershipControls", "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketRequestPayment", "s3:PutBucketTagging", "s3:PutBucketVersioning", "s3:PutBucketWebsite",
    "s3:PutAccelerateConfiguration", "s3:PutAnalyticsConfiguration", "s3:PutEncryptionConfiguration",
    "s3:PutIntelligentTieringConfiguration", "s3:PutInventoryConfiguration", "s3:PutLifecycleConfiguration",
    "s3:PutMetricsConfiguration", "s3:PutReplicationConfiguration",
  ].map(bucket),
];

/**
 * Most actions a policy may name that are in a write family but not in S3_ACTIONS (each is judged at both
 * levels). A real policy names none or a few (AWS rejects unknown actions); thousands would only multiply work.
 */
export const MAX_UNLISTED_ACTIONS = 64;

/**
 * S3_ACTIONS, plus every write-family action a statement names literally that the list lacks (one AWS added
 * since), at both the bucket and the object level since its resource type is unknown. Throws `tooMany` past
 * MAX_UNLISTED_ACTIONS.
 *
 * @example
 * actionsToEvaluate(statements, fail).length; // S3_ACTIONS.length + 2 for Action "s3:PutBucketNewThing"
 */
export function actionsToEvaluate(statements: readonly PolicyStatement[], tooMany: () => never): S3Action[] {
  const known = new Set(S3_ACTIONS.map((a) => a.name.toLowerCase()));
  const extra: S3Action[] = [];
  for (const st of statements) {
    for (const name of st.actions) {
      const lower = name.toLowerCase();
      if (known.has(lower) || hasWildcard(name) || classifyAction(name) !== "write") continue;
      known.add(lower);
      if (extra.length >= 2 * MAX_UNLISTED_ACTIONS) tooMany();
      extra.push({ name, class: "write", level: "bucket" }, { name, class: "write", level: "object" });
    }
  }
  return [...S3_ACTIONS, ...extra];
}

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

const matchers = new WeakMap<PolicyStatement, GlobMatcher[]>();

/**
 * True when the statement's Action (or NotAction) covers `action`. Its patterns are compiled once per statement
 * (lower-cased, stars folded): a statement is asked about every action for every caller class.
 *
 * @example
 * actionCovered(statement, "s3:GetObject"); // true for Action "s3:Get*"
 */
export function actionCovered(statement: PolicyStatement, action: string): boolean {
  let list = matchers.get(statement);
  if (!list) matchers.set(statement, (list = statement.actions.map((p) => compileGlob(p, { ignoreCase: true }))));
  const listed = list.some((m) => m(action));
  return statement.notAction ? !listed : listed;
}
