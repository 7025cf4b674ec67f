// AWS's own test of a "public" bucket policy, which decides whether RestrictPublicBuckets applies (S3 User Guide,
// "Blocking public access", "The meaning of 'public'"): a policy is non-public when each grant is kept to fixed values
// of the keys listed there. Calling a policy public that AWS does not would make the evaluator drop grants AWS still
// serves (fail open), so a statement that AWS may read as non-public does not make the policy public here, even when
// the evaluator, judging who can really get in, counts it as open (a union of /8s, IpAddressIfExists).
import { arnAccount } from "./callers.ts";
import { hasWildcard } from "./glob.ts";
import { coverOf, familySize } from "./ip-ranges.ts";
import type { ConditionClause, PolicyStatement } from "./policy-parse.ts";

/**
 * The condition keys AWS lists (lower case, as parsed): the principal's own (aws:PrincipalOrgID is AWS's example),
 * the source, network and access point keys, the KMS key of a write, and aws:userid.
 */
const AWS_FIXED_VALUE_KEYS: ReadonlySet<string> = new Set([
  "aws:principalaccount", "aws:principalarn", "aws:principalorgid", "aws:principalorgpaths", "aws:userid",
  "aws:sourceip", "aws:sourcearn", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceowner", "aws:sourceaccount",
  "s3:x-amz-server-side-encryption-aws-kms-key-id", "s3:dataaccesspointarn", "s3:dataaccesspointaccount",
]);

/** Operators that grant to the listed values only (IfExists and set forms included: AWS does not say otherwise). */
const POSITIVE = /^(?:for(?:any|all)values?:)?(?:stringequals|stringequalsignorecase|stringlike|arnequals|arnlike|ipaddress)(?:ifexists)?$/i;

/** AWS's line for aws:SourceIp: a range broader than a /8 (IPv4) or a /32 (IPv6) is public. */
const WIDEST_NON_PUBLIC = { 4: familySize(4) >> 8n, 6: familySize(6) >> 32n } as const;

/**
 * Whether AWS may count one value as fixed: false only where AWS says it is not (a wildcard or a policy variable, a
 * range past its line), with the exceptions it documents; in doubt (a value that is no CIDR) it may.
 */
function fixedToAWS(key: string, value: string): boolean {
  if (value.includes("${")) return false;
  if (key === "aws:sourceip") {
    const cover = coverOf([value]);
    return cover[4].malformed || (cover[4].covered <= WIDEST_NON_PUBLIC[4] && cover[6].covered <= WIDEST_NON_PUBLIC[6]);
  }
  if (!hasWildcard(value)) return true;
  // "arn:aws:s3:us-west-2:123456789012:accesspoint/*" is non-public "as long as the account id is fixed".
  if (key === "s3:dataaccesspointarn") {
    const account = arnAccount(value);
    return account !== undefined && account !== "" && !hasWildcard(account);
  }
  // aws:userid "AROLEID:*": one role's sessions, which AWS treats as fixed.
  if (key === "aws:userid") return /^[^*?:]+:\*$/.test(value);
  return false;
}

function keptToFixedValues(c: ConditionClause): boolean {
  return AWS_FIXED_VALUE_KEYS.has(c.key) && POSITIVE.test(c.operator) && c.values.length > 0 && c.values.every((v) => fixedToAWS(c.key, v));
}

/**
 * Whether AWS may call an Allow non-public: one of its conditions keeps it to fixed values of a key AWS lists. Only
 * what AWS certainly calls public may switch RestrictPublicBuckets on in the evaluation.
 *
 * @example
 * mayBeNonPublicToAWS(statement); // true for Principal "*" with {"StringEquals": {"s3:DataAccessPointAccount": "111122223333"}}
 */
export function mayBeNonPublicToAWS(st: PolicyStatement): boolean {
  return st.conditions.some(keptToFixedValues);
}
