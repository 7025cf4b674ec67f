// Parses `aws s3api get-bucket-acl` and `aws s3api get-public-access-block` output into typed values.
import { BucketInputError } from "./errors.ts";
import { describe, isObject, parseBoundedJSON, type JSONValue } from "./json-input.ts";

/** S3 allows at most 100 grants in an ACL. */
export const MAX_GRANTS = 100;

export const ALL_USERS_URI = "http://acs.amazonaws.com/groups/global/AllUsers";
export const AUTHENTICATED_USERS_URI = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
export const LOG_DELIVERY_URI = "http://acs.amazonaws.com/groups/s3/LogDelivery";

export type ACLPermission = "FULL_CONTROL" | "WRITE" | "WRITE_ACP" | "READ" | "READ_ACP";
const PERMISSIONS: readonly string[] = ["FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP"];
export type GranteeType = "CanonicalUser" | "AmazonCustomerByEmail" | "Group";
const GRANTEE_TYPES: readonly string[] = ["CanonicalUser", "AmazonCustomerByEmail", "Group"];

export interface ACLGrant {
  index: number;
  type: GranteeType;
  /** Canonical user id, e-mail address or group URI, by type. */
  grantee: string;
  permission: ACLPermission;
  /** How findings name the grant, e.g. `Group AuthenticatedUsers READ (grant #1)`. */
  label: string;
}

export interface BucketACL {
  ownerId: string | undefined;
  grants: ACLGrant[];
}

export interface PublicAccessBlock {
  BlockPublicAcls: boolean;
  IgnorePublicAcls: boolean;
  BlockPublicPolicy: boolean;
  RestrictPublicBuckets: boolean;
}

function field(obj: Record<string, JSONValue>, name: string, source: string, path: string): string {
  const v = obj[name];
  if (typeof v !== "string" || v === "") throw new BucketInputError(`${source}: ${path}.${name} must be a non-empty string, got ${describe(v)}`);
  return v;
}

/**
 * Parses get-bucket-acl output: `{"Owner": {...}, "Grants": [{"Grantee": {...}, "Permission": ...}]}`.
 *
 * @example
 * parseBucketACL('{"Owner":{"ID":"abc"},"Grants":[]}', "acl.json").ownerId; // "abc"
 */
export function parseBucketACL(text: string, source: string): BucketACL {
  const doc = parseBoundedJSON(text, source);
  if (!isObject(doc)) throw new BucketInputError(`${source}: an ACL must be a JSON object, got ${describe(doc)}`);
  let ownerId: string | undefined;
  const owner = doc["Owner"];
  if (owner !== undefined) {
    if (!isObject(owner)) throw new BucketInputError(`${source}: Owner must be an object, got ${describe(owner)}`);
    ownerId = field(owner, "ID", source, "Owner");
  }
  const grantsRaw = doc["Grants"];
  if (!Array.isArray(grantsRaw)) throw new BucketInputError(`${source}: Grants must be a list, got ${describe(grantsRaw)}`);
  if (grantsRaw.length > MAX_GRANTS) throw new BucketInputError(`${source}: more than ${MAX_GRANTS} grants`);
  const grants = grantsRaw.map((g, index): ACLGrant => {
    const path = `Grants[${index}]`;
    if (!isObject(g)) throw new BucketInputError(`${source}: ${path} must be an object, got ${describe(g)}`);
    const grantee = g["Grantee"];
    if (!isObject(grantee)) throw new BucketInputError(`${source}: ${path}.Grantee must be an object, got ${describe(grantee)}`);
    const type = field(grantee, "Type", source, `${path}.Grantee`);
    if (!GRANTEE_TYPES.includes(type)) throw new BucketInputError(`${source}: ${path}.Grantee.Type must be CanonicalUser, AmazonCustomerByEmail or Group, got ${JSON.stringify(type.slice(0, 40))}`);
    const id = type === "Group" ? field(grantee, "URI", source, `${path}.Grantee`)
      : type === "CanonicalUser" ? field(grantee, "ID", source, `${path}.Grantee`)
      : field(grantee, "EmailAddress", source, `${path}.Grantee`);
    const permission = g["Permission"];
    if (typeof permission !== "string" || !PERMISSIONS.includes(permission)) {
      throw new BucketInputError(`${source}: ${path}.Permission must be one of ${PERMISSIONS.join(", ")}, got ${typeof permission === "string" ? JSON.stringify(permission.slice(0, 40)) : describe(permission)}`);
    }
    const who = type === "Group" ? `Group ${id.slice(id.lastIndexOf("/") + 1)}` : `${type} ${id.slice(0, 80)}`;
    return { index, type: type as GranteeType, grantee: id, permission: permission as ACLPermission, label: `${who} ${permission} (grant #${index})` };
  });
  return { ownerId, grants };
}

/**
 * Parses get-public-access-block output, or the bare configuration object. Absent flags are false,
 * as S3 treats them.
 *
 * @example
 * parsePublicAccessBlock('{"PublicAccessBlockConfiguration":{"IgnorePublicAcls":true}}', "pab.json").IgnorePublicAcls; // true
 */
export function parsePublicAccessBlock(text: string, source: string): PublicAccessBlock {
  const doc = parseBoundedJSON(text, source);
  if (!isObject(doc)) throw new BucketInputError(`${source}: must be a JSON object, got ${describe(doc)}`);
  const config = Object.hasOwn(doc, "PublicAccessBlockConfiguration") ? doc["PublicAccessBlockConfiguration"] : doc;
  if (!isObject(config)) throw new BucketInputError(`${source}: PublicAccessBlockConfiguration must be an object, got ${describe(config)}`);
  const result: PublicAccessBlock = { BlockPublicAcls: false, IgnorePublicAcls: false, BlockPublicPolicy: false, RestrictPublicBuckets: false };
  for (const [key, value] of Object.entries(config)) {
    // Own keys only: `in` would take inherited names (toString, constructor, __proto__) for settings.
    if (!Object.hasOwn(result, key)) throw new BucketInputError(`${source}: unknown setting "${key.slice(0, 60)}" (expected BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets)`);
    if (typeof value !== "boolean") throw new BucketInputError(`${source}: ${key} must be true or false, got ${describe(value)}`);
    result[key as keyof PublicAccessBlock] = value;
  }
  return result;
}
