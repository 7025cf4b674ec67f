// Three-valued evaluation of IAM Condition blocks for a class of caller: "never" when no caller of
// the class can satisfy it (it pins the caller to an account, organisation, VPC, endpoint, source
// ARN or IP range), "always" when every caller of the class satisfies it whatever they do, "maybe"
// when the caller chooses (aws:SecureTransport, headers, prefixes) or the key is not understood.
// Allows count unless "never"; Denies narrow access only when "always" (see evaluate.ts).
import { arnAccount, allOf, anyOf, not, type Caller, type Truth } from "./callers.ts";
import { globMatch, hasWildcard } from "./glob.ts";
import type { ConditionClause } from "./policy-parse.ts";

/**
 * What the request context holds for a key, as seen from one caller class:
 * absent; `foreign` = present with a value the caller owns, which a fixed policy value (someone
 * else's account, VPC, org...) cannot equal; `chosen` = the caller picks it freely, or we do not
 * know the key; `value` = a value known in advance; `ip` = the caller's source address, outside any
 * specific range.
 */
type Situation = { s: "absent" } | { s: "foreign" } | { s: "chosen" } | { s: "value"; value: string } | { s: "ip" };

const ABSENT: Situation = { s: "absent" };
const FOREIGN: Situation = { s: "foreign" };
const CHOSEN: Situation = { s: "chosen" };

/** Keys naming the caller's identity: absent for anonymous requests, the caller's own for others. */
const IDENTITY_KEYS = new Set(["aws:principalarn", "aws:principalaccount", "aws:principalorgid", "aws:principalorgpaths", "aws:username"]);
/** Organisation keys: present only when the caller's account belongs to an AWS Organization. */
const ORG_KEYS = new Set(["aws:principalorgid", "aws:principalorgpaths"]);
/** Keys set when an AWS service calls on a resource's behalf (confused-deputy guards). */
const SOURCE_KEYS = new Set(["aws:sourceaccount", "aws:sourcearn", "aws:sourceowner", "aws:sourceorgid", "aws:sourceorgpaths"]);
/** Network keys: absent over the internet, the caller's own VPC/endpoint otherwise. */
const NETWORK_KEYS = new Set(["aws:sourcevpc", "aws:sourcevpce", "aws:vpcsourceip", "aws:sourcevpcarn"]);

/** Transport keys the caller controls; a Deny on them alone never narrows exposure (the caller just complies). */
export const TRANSPORT_KEYS: ReadonlySet<string> = new Set(["aws:securetransport", "s3:tlsversion", "s3:signatureversion", "s3:authtype"]);

function situations(key: string, caller: Caller): Situation[] {
  if (key === "aws:principalisawsservice") return [{ s: "value", value: "false" }];
  // A named account may well sit inside the VPC, endpoint, organisation or IP range a condition
  // names (they are often the partner's own), so for it only its account id is known.
  if (caller.kind === "account") return key === "aws:principalaccount" ? [{ s: "value", value: caller.account }] : [CHOSEN];
  if (caller.kind === "canonical") return [CHOSEN];
  if (key === "aws:sourceip") return [{ s: "ip" }];
  // A fixed KMS key id on writes is one of AWS's "non-public" pins (The meaning of "public").
  if (key === "s3:x-amz-server-side-encryption-aws-kms-key-id") return [ABSENT, FOREIGN];
  // The caller may go through their own VPC endpoint or their own service resource, or not.
  if (NETWORK_KEYS.has(key) || SOURCE_KEYS.has(key)) return [ABSENT, FOREIGN];
  switch (caller.kind) {
    case "anonymous":
      if (key === "aws:principaltype") return [{ s: "value", value: "Anonymous" }];
      if (key === "aws:userid") return [{ s: "value", value: "anonymous" }];
      if (IDENTITY_KEYS.has(key) || key.startsWith("aws:principaltag/") || key.startsWith("aws:multifactorauth")) return [ABSENT];
      return [CHOSEN];
    case "any-account":
      // An account in no AWS Organization has no org id or paths (AWS sets them only for members).
      if (ORG_KEYS.has(key)) return [ABSENT, FOREIGN];
      if (IDENTITY_KEYS.has(key) || key === "aws:userid") return [FOREIGN];
      return [CHOSEN]; // tags, MFA and principal type are the caller's own to set
  }
}

interface Operator {
  base: string;
  ifExists: boolean;
  set: "any" | "all" | undefined;
}

function parseOperator(raw: string): Operator {
  let op = raw.toLowerCase();
  let set: Operator["set"];
  if (op.startsWith("foranyvalue:")) {
    set = "any";
    op = op.slice("foranyvalue:".length);
  } else if (op.startsWith("forallvalues:")) {
    set = "all";
    op = op.slice("forallvalues:".length);
  }
  const ifExists = op.endsWith("ifexists");
  if (ifExists) op = op.slice(0, -"ifexists".length);
  return { base: op, ifExists, set };
}

const POSITIVE = new Set(["stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike", "binaryequals"]);
const NEGATIVE = new Set(["stringnotequals", "stringnotequalsignorecase", "stringnotlike", "arnnotequals", "arnnotlike"]);
/** Every negated operator, for the missing-key rule (AWS: a negated operator is true when the key is absent). */
const NEGATED = new Set([...NEGATIVE, "numericnotequals", "datenotequals", "notipaddress"]);

/**
 * A condition value holding a policy variable (`${aws:PrincipalAccount}`) takes the caller's own value at request
 * time, so no fixed reading of it is sound; only the variables naming the bucket owner (its account, organisation)
 * stay fixed, which is how "same organisation" policies are written.
 */
function callerVariable(value: string): boolean {
  return value.replace(/\$\{aws:resource(?:account|orgid|orgpaths)\}/gi, "").includes("${");
}

/** Can a fixed condition value match a value the caller owns? Only if it wildcards the identifying part. */
function canMatchForeign(key: string, value: string): boolean {
  if (callerVariable(value)) return true;
  if (!hasWildcard(value)) return false;
  if (key.endsWith("arn")) {
    const account = arnAccount(value);
    return account === undefined || hasWildcard(account);
  }
  if (key.endsWith("orgpaths")) return hasWildcard(value.split("/")[0] ?? "");
  if (key === "aws:userid") {
    // AWS sets aws:userid (IAM User Guide, "Request information that you can use in policy
    // variables") to: an IAM user's unique id (AIDA…); "role-id:session-name" for a role session
    // (AROA…:name, an EC2 instance role's "role-id:i-…"); "account-id:name" for a federated user
    // (GetFederationToken); the account id for the root user; "anonymous" when unsigned. What comes
    // before the first ':' is always an id AWS assigns to the caller's own user, role or account;
    // the caller picks only what follows (the session or federated name). So "AROAEXAMPLEID:*"
    // (one role's sessions; S3's "the meaning of public" treats the AROLEID:* pattern as fixed) can
    // match no foreign caller, while "AROA*" or "*:admin" can.
    const colon = value.indexOf(":");
    return hasWildcard(colon < 0 ? value : value.slice(0, colon));
  }
  return true;
}

/** Prefix length of a CIDR written in a policy (a bare address is a /32 or /128), or undefined if malformed. */
function prefixLength(cidr: string): number | undefined {
  const slash = cidr.indexOf("/");
  if (slash < 0) return cidr.includes(":") ? 128 : 32;
  const n = Number(cidr.slice(slash + 1));
  return Number.isInteger(n) && n >= 0 && n <= 128 ? n : undefined;
}

/**
 * Truth of "the caller's address is in one of these ranges" for an arbitrary caller. /0 covers
 * everyone (AWS: 0.0.0.0/0 is public); ranges wider than /8 (IPv4) or /16 (IPv6) might hold the
 * caller, so they are "maybe"; narrower ranges (private, a company's egress) pin the caller.
 */
function inRanges(values: string[]): Truth {
  return anyOf(values.map((v): Truth => {
    const n = prefixLength(v.trim());
    if (n === undefined) return "maybe";
    if (n === 0) return "always";
    return n < (v.includes(":") ? 16 : 8) ? "maybe" : "never";
  }));
}

function valueMatches(base: string, pattern: string, value: string): boolean {
  if (base.includes("ignorecase")) return pattern.toLowerCase() === value.toLowerCase();
  if (base.includes("like") || base.startsWith("arn")) return globMatch(pattern, value);
  return pattern === value;
}

function clauseFor(op: Operator, key: string, values: string[], sit: Situation): Truth {
  const { base } = op;
  if (base === "null") {
    // {"Null": {key: "true"}} holds when the key is absent.
    const wantAbsent = values.some((v) => v.toLowerCase() === "true");
    const wantPresent = values.some((v) => v.toLowerCase() === "false");
    if (sit.s === "chosen") return "maybe";
    const absent = sit.s === "absent";
    return (absent && wantAbsent) || (!absent && wantPresent) ? "always" : "never";
  }
  if (sit.s === "chosen") return "maybe";
  if (sit.s === "absent") {
    if (op.ifExists) return "always";
    // ForAnyValue over no values is false whatever the operator (IAM User Guide, "Multivalued context keys");
    // ForAllValues over none is true.
    if (op.set === "any") return "never";
    if (op.set === "all" || NEGATED.has(base)) return "always";
    return "never";
  }
  if (op.set === "all" && sit.s !== "value") return "maybe";
  if (sit.s === "ip") {
    if (base === "ipaddress") return inRanges(values);
    if (base === "notipaddress") return not(inRanges(values));
    return "maybe";
  }
  if (sit.s === "foreign") {
    if (POSITIVE.has(base)) return values.some((v) => canMatchForeign(key, v)) ? "maybe" : "never";
    if (NEGATIVE.has(base)) return values.some((v) => canMatchForeign(key, v)) ? "maybe" : "always";
    return "maybe";
  }
  // A known value.
  const v = sit.value;
  const variable = values.some(callerVariable);
  if (POSITIVE.has(base)) return values.some((p) => !callerVariable(p) && valueMatches(base, p, v)) ? "always" : variable ? "maybe" : "never";
  if (NEGATIVE.has(base)) return values.some((p) => !callerVariable(p) && valueMatches(base.replace("not", ""), p, v)) ? "never" : variable ? "maybe" : "always";
  if (base === "bool") return values.some((p) => p.toLowerCase() === v.toLowerCase()) ? "always" : "never";
  return "maybe";
}

export interface ConditionVerdict {
  truth: Truth;
  /** Keys whose outcome the caller chooses or we cannot decide. */
  undecidedKeys: string[];
}

/**
 * Evaluates a statement's conditions (AND across keys and operators) for a caller class.
 *
 * @example
 * evaluateConditions([{ operator: "Bool", key: "aws:securetransport", values: ["true"] }], { kind: "anonymous" }).truth; // "maybe"
 */
export function evaluateConditions(clauses: readonly ConditionClause[], caller: Caller): ConditionVerdict {
  const undecided: string[] = [];
  const truths = clauses.map((c) => {
    const op = parseOperator(c.operator);
    // Each situation the caller might be in; the clause is certain only if it agrees in all of them.
    const per = situations(c.key, caller).map((sit) => clauseFor(op, c.key, c.values, sit));
    const truth: Truth = per.every((t) => t === "always") ? "always" : per.every((t) => t === "never") ? "never" : "maybe";
    if (truth === "maybe") undecided.push(c.key);
    return truth;
  });
  return { truth: allOf(truths), undecidedKeys: undecided };
}
