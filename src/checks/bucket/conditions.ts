// Three-valued evaluation of IAM Condition blocks for a class of caller: "never" when no caller of
// the class can satisfy it (it pins the caller to an account, organisation, VPC, endpoint, source
// ARN or IP range), "always" when every caller of the class satisfies it whatever they do, "maybe"
// when the caller chooses (aws:SecureTransport, headers, prefixes) or the key is not understood.
// Allows count unless "never"; Denies narrow access only when "always" (see evaluate.ts).
import { allOf, not, type Caller, type Truth } from "./callers.ts";
import { compileGlob, hasWildcard } from "./glob.ts";
import { coverOf, familySize, type RangeCover } from "./ip-ranges.ts";
import type { ConditionClause } from "./policy-parse.ts";

/**
 * What the request context holds for a key, as seen from one caller class:
 * absent; `foreign` = present with a value the caller owns, which a fixed policy value (someone
 * else's account, VPC, org...) cannot equal; `chosen` = the caller picks it freely, or we do not
 * know the key; `value` = a value known in advance; `ip` = the caller's source address, of the
 * given family, outside any specific range.
 */
type Situation = { s: "absent" } | { s: "foreign" } | { s: "chosen" } | { s: "value"; value: string } | { s: "ip"; family: 4 | 6 };

const ABSENT: Situation = { s: "absent" };
const FOREIGN: Situation = { s: "foreign" };
const CHOSEN: Situation = { s: "chosen" };
const NOT_A_SERVICE: Situation = { s: "value", value: "false" };
const A_SERVICE: Situation = { s: "value", value: "true" };

/**
 * aws:SourceIp for an outside caller: an IPv4 address; an IPv6 address (S3's dual-stack endpoint), which no
 * IPv4 range holds; or no key at all, since AWS leaves it out of requests made through a VPC endpoint, and
 * any account can make an S3 gateway endpoint in its own VPC (unsigned requests pass through it too).
 */
const SOURCE_IP: readonly Situation[] = [{ s: "ip", family: 4 }, { s: "ip", family: 6 }, ABSENT];

/** Keys naming the caller's identity: absent for anonymous requests, the caller's own for others. */
const IDENTITY_KEYS = new Set(["aws:principalarn", "aws:principalaccount", "aws:principalorgid", "aws:principalorgpaths"]);
/** Organisation keys: present only when the caller's account belongs to an AWS Organization. */
const ORG_KEYS = new Set(["aws:principalorgid", "aws:principalorgpaths"]);
/** Keys set when an AWS service calls on a resource's behalf (confused-deputy guards). */
const SOURCE_KEYS = new Set(["aws:sourceaccount", "aws:sourcearn", "aws:sourceowner", "aws:sourceorgid", "aws:sourceorgpaths"]);
/** Network keys: absent over the internet, the caller's own VPC/endpoint otherwise. */
const NETWORK_KEYS = new Set(["aws:sourcevpc", "aws:sourcevpce", "aws:vpcsourceip", "aws:sourcevpcarn"]);

/**
 * Keys of a resource the request uses, which AWS lists among the fixed values that keep a bucket policy non-public
 * ("The meaning of 'public'"): the KMS key a write asks S3 to encrypt with, and the access point a request comes
 * through (its ARN, its account). Absent when the request uses none; the caller's own otherwise (any account can
 * make a key or an access point on this bucket). Read any other way, AWS's recommended delegation to access points
 * (`{"AWS": "*"}` with a fixed s3:DataAccessPointAccount) would look public and RestrictPublicBuckets would be
 * applied to a policy AWS does not restrict, dropping grants AWS serves.
 */
const FIXED_RESOURCE_KEYS = new Set(["s3:x-amz-server-side-encryption-aws-kms-key-id", "s3:dataaccesspointarn", "s3:dataaccesspointaccount"]);

/**
 * Keys AWS sets only when a service principal makes the request (the service's name, and for a multi-service
 * principal the list of them), so that a clause needing them holds for no caller acting as itself: another account
 * meets it only through a service acting for a resource of its own (its CloudFront distribution).
 */
const SERVICE_NAME_KEYS = new Set(["aws:principalservicename", "aws:principalservicenameslist"]);

/** Transport keys the caller controls; a Deny on them alone never narrows exposure (the caller just complies). */
export const TRANSPORT_KEYS: ReadonlySet<string> = new Set(["aws:securetransport", "s3:tlsversion", "s3:signatureversion", "s3:authtype"]);

function situations(key: string, caller: Caller): readonly Situation[] {
  // AWS puts aws:PrincipalIsAWSService in every request signed with AWS credentials ("false" unless a service
  // principal calls); an unsigned request has no such key. Any account may also reach the bucket through a
  // service acting for a resource of its own (its CloudFront distribution, its replication role...), and that
  // request carries "true": a grant gated on the key alone is open to every account (see principals.ts).
  if (key === "aws:principalisawsservice") return caller.kind === "anonymous" ? [ABSENT] : caller.kind === "any-account" ? [NOT_A_SERVICE, A_SERVICE] : [NOT_A_SERVICE];
  // The service's name: absent unless a service principal calls, then a name of the service any account can have act.
  if (SERVICE_NAME_KEYS.has(key) && (caller.kind === "anonymous" || caller.kind === "any-account")) return caller.kind === "anonymous" ? [ABSENT] : [ABSENT, CHOSEN];
  // A named account may well sit inside the VPC, endpoint, organisation or IP range a condition
  // names (they are often the partner's own), so for it only its account id is known.
  if (caller.kind === "account") return key === "aws:principalaccount" ? [{ s: "value", value: caller.account }] : [CHOSEN];
  if (caller.kind === "canonical") return [CHOSEN];
  if (key === "aws:sourceip") return SOURCE_IP;
  // A fixed KMS key id on writes, and a fixed access point, are among AWS's "non-public" pins (The meaning of
  // "public"). Access points take no unsigned requests, but an access point ARN of any account must still read as
  // public for anonymous callers too (it is, to AWS), so no class is told apart here.
  if (FIXED_RESOURCE_KEYS.has(key)) return [ABSENT, FOREIGN];
  // The caller may go through their own VPC endpoint or their own service resource, or not.
  if (NETWORK_KEYS.has(key) || SOURCE_KEYS.has(key)) return [ABSENT, FOREIGN];
  switch (caller.kind) {
    case "anonymous":
      if (key === "aws:principaltype") return [{ s: "value", value: "Anonymous" }];
      if (key === "aws:userid") return [{ s: "value", value: "anonymous" }];
      if (IDENTITY_KEYS.has(key) || key === "aws:username" || key.startsWith("aws:principaltag/") || key.startsWith("aws:multifactorauth")) return [ABSENT];
      return [CHOSEN];
    case "any-account":
      // An account in no AWS Organization has no org id or paths (AWS sets them only for members).
      if (ORG_KEYS.has(key)) return [ABSENT, FOREIGN];
      if (IDENTITY_KEYS.has(key) || key === "aws:userid") return [FOREIGN];
      // aws:username is an IAM user's name, unique only within its account: any account can create a user of
      // the name a policy fixes. Tags, MFA and principal type are the caller's own to set too.
      return [CHOSEN];
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

/**
 * Can a fixed condition value match a value the caller owns? Only if it wildcards the identifying part. Under the ARN
 * operators an ARN is matched field by field; under the string operators (`arnFields` false) it is one string, and a
 * `*` before the account field may swallow colons: "arn:*:iam::OWNER:role/R" matches another account's role whose IAM
 * path holds ":iam::OWNER:role/" (a path may hold any printable character), so it pins nothing.
 */
function canMatchForeign(key: string, value: string, arnFields: boolean): boolean {
  if (callerVariable(value)) return true;
  if (!hasWildcard(value)) return false;
  if (key.endsWith("arn")) {
    const parts = value.split(":");
    if (parts.length < 6 || parts[0] !== "arn") return true;
    if (!arnFields && parts.slice(0, 4).some((p) => p.includes("*"))) return true;
    const account = parts[4] ?? "";
    if (account !== "") return hasWildcard(account);
    // No account field: the resource's name is what identifies it. S3 bucket ARNs (arn:aws:s3:::name) are
    // built so, and bucket names are global and first come, first served: "arn:aws:s3:::acme-*" matches a
    // bucket an attacker names acme-anything. Only what follows the bucket name's "/" (object keys) may be
    // wildcarded without letting a stranger in; for other services any wildcard in the resource may.
    const service = parts[2] ?? "";
    const resource = parts.slice(5).join(":");
    const name = service === "s3" ? resource.split("/")[0] ?? "" : resource;
    return hasWildcard(parts[1] ?? "") || hasWildcard(service) || hasWildcard(name);
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

/**
 * The widest range, per family, that still pins an arbitrary caller: a /8 (IPv4) or /32 (IPv6), AWS's own line
 * ("The meaning of 'public'": aws:SourceIp values broader than /8 for IPv4 and /32 for IPv6 are public); a /7 or a
 * /31 might hold the caller (a /31 of IPv6 is 2^97 addresses, an ISP's or a cloud's whole allocation). A union is
 * measured against the same line: it pins only while it holds fewer addresses than the narrowest range that does
 * not (so 10/8 with 192.168/16 still pins, and two /8s are as wide as a /7).
 */
const WIDEST_PINNING_PREFIX = { 4: 8, 6: 32 } as const;

/**
 * Truth of "the caller's address, of this family, is in one of these ranges" for an arbitrary caller, judged on the
 * union of the values: 256 /8s are each narrow and all of IPv4 together. A range holds addresses of its own family
 * only (an IPv6 address is in no IPv4 range, 0.0.0.0/0 included). A union covering the whole family is "always" (AWS:
 * 0.0.0.0/0 is public); one at least as wide as a range past the pinning line is "maybe"; a narrower one pins the
 * caller. A malformed value is "maybe" for both families, since we cannot tell what AWS reads it as.
 */
function inRanges(cover: RangeCover, family: 4 | 6): Truth {
  if (cover.covered === familySize(family)) return "always";
  if (cover.malformed) return "maybe";
  // The size of a range one bit wider than the widest pinning one: 2^25 addresses for IPv4, 2^97 for IPv6.
  const notPinning = familySize(family) >> BigInt(WIDEST_PINNING_PREFIX[family] - 1);
  return cover.covered >= notPinning ? "maybe" : "never";
}

/**
 * A condition clause read once: every caller class asks the same questions of it, and a clause may list tens of
 * thousands of accounts, so its values become sets and compiled patterns here rather than a scan per question.
 */
interface CompiledClause {
  key: string;
  op: Operator;
  values: readonly string[];
  /** Some value holds a caller policy variable: no fixed reading of the clause is sound. */
  variable: boolean;
  /** Whether a fixed (variable-free) value matches `v` under the operator's positive form. */
  matches: (v: string) => boolean;
  /** Σ (length + 1) over the wildcard values `matches` scans: a match costs at most this × (|v| + 1) steps. */
  globCells: number;
  /** Some value can match a value a foreign caller owns (see canMatchForeign). */
  foreign: boolean;
  /** Bool values, lower-cased. */
  bool: ReadonlySet<string>;
  /** Null: "true" (key absent) or "false" (key present) is among the values. */
  nullAbsent: boolean;
  nullPresent: boolean;
  /** IpAddress truth for an IPv4 and an IPv6 caller, on the union of the values. */
  ip4: Truth;
  ip6: Truth;
}

function fixedMatcher(base: string, fixed: readonly string[]): Pick<CompiledClause, "matches" | "globCells"> {
  if (base.includes("ignorecase")) {
    const set = new Set(fixed.map((p) => p.toLowerCase()));
    return { matches: (v) => set.has(v.toLowerCase()), globCells: 0 };
  }
  if (base.includes("like") || base.startsWith("arn")) {
    // Values without a wildcard match only themselves: a set lookup; only the wildcard ones are scanned.
    const literal = new Set(fixed.filter((p) => !hasWildcard(p)));
    const wild = fixed.filter(hasWildcard);
    const globs = wild.map((p) => compileGlob(p));
    const globCells = wild.reduce((sum, p) => sum + p.length + 1, 0);
    return { matches: globs.length === 0 ? (v) => literal.has(v) : (v) => literal.has(v) || globs.some((g) => g(v)), globCells };
  }
  const set = new Set(fixed);
  return { matches: (v) => set.has(v), globCells: 0 };
}

function ipTruths(values: readonly string[]): Pick<CompiledClause, "ip4" | "ip6"> {
  const cover = coverOf(values);
  return { ip4: inRanges(cover[4], 4), ip6: inRanges(cover[6], 6) };
}

const compiled = new WeakMap<ConditionClause, CompiledClause>();

function compile(clause: ConditionClause): CompiledClause {
  let c = compiled.get(clause);
  if (c) return c;
  const op = parseOperator(clause.operator);
  const { key, values } = clause;
  const lower = values.map((v) => v.toLowerCase());
  c = {
    key,
    op,
    values,
    variable: values.some(callerVariable),
    // A negated operator asks its positive form and inverts (StringNotLike is "not StringLike").
    ...fixedMatcher(op.base.replace("not", ""), values.filter((v) => !callerVariable(v))),
    foreign: values.some((v) => canMatchForeign(key, v, op.base.startsWith("arn"))),
    bool: new Set(lower),
    nullAbsent: lower.includes("true"),
    nullPresent: lower.includes("false"),
    ...ipTruths(values),
  };
  compiled.set(clause, c);
  return c;
}

/** Options of evaluateConditions. */
export interface ConditionOptions {
  /** Called with the steps a wildcard match may take, for a caller-wide work bound (it may throw). */
  charge?: (cells: number) => void;
}

function clauseFor(c: CompiledClause, sit: Situation, options: ConditionOptions): Truth {
  const { op } = c;
  const { base } = op;
  if (base === "null") {
    // {"Null": {key: "true"}} holds when the key is absent.
    if (sit.s === "chosen") return "maybe";
    const absent = sit.s === "absent";
    return (absent && c.nullAbsent) || (!absent && c.nullPresent) ? "always" : "never";
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
    const inside = sit.family === 4 ? c.ip4 : c.ip6;
    if (base === "ipaddress") return inside;
    if (base === "notipaddress") return not(inside);
    return "maybe";
  }
  if (sit.s === "foreign") {
    if (POSITIVE.has(base)) return c.foreign ? "maybe" : "never";
    if (NEGATIVE.has(base)) return c.foreign ? "maybe" : "always";
    return "maybe";
  }
  // A known value.
  const v = sit.value;
  if (c.globCells > 0 && (POSITIVE.has(base) || NEGATIVE.has(base))) options.charge?.(c.globCells * (v.length + 1));
  if (POSITIVE.has(base)) return c.matches(v) ? "always" : c.variable ? "maybe" : "never";
  if (NEGATIVE.has(base)) return c.matches(v) ? "never" : c.variable ? "maybe" : "always";
  if (base === "bool") return c.bool.has(v.toLowerCase()) ? "always" : "never";
  return "maybe";
}

/** A clause is certain only if it agrees in every situation the caller might be in. */
function clauseTruth(c: CompiledClause, caller: Caller, options: ConditionOptions): Truth {
  const per = situations(c.key, caller).map((sit) => clauseFor(c, sit, options));
  return per.every((t) => t === "always") ? "always" : per.every((t) => t === "never") ? "never" : "maybe";
}

export interface ConditionVerdict {
  truth: Truth;
  /** Keys whose outcome the caller chooses or we cannot decide, each once, in the order the clauses give them. */
  undecidedKeys: string[];
}

function verdictOf(clauses: readonly CompiledClause[], truths: readonly Truth[]): ConditionVerdict {
  const undecided = new Set<string>();
  truths.forEach((t, i) => {
    if (t === "maybe") undecided.add(clauses[i]!.key);
  });
  return { truth: allOf(truths), undecidedKeys: [...undecided] };
}

/**
 * One statement's conditions, with what does not depend on the caller worked out once. The caller classes
 * anonymous, any-account and canonical user are each one answer; for named accounts only the
 * aws:PrincipalAccount clauses depend on which account (every other key is theirs to choose), so the rest is
 * judged once and each account costs a set lookup per such clause. Verdicts are shared between callers: a
 * statement with thousands of undecided keys must not cost a list per named account.
 */
interface StatementConditions {
  clauses: CompiledClause[];
  byKind: Map<Caller["kind"], ConditionVerdict>;
  /** Positions of the aws:PrincipalAccount clauses, which alone depend on which named account asks. */
  accountDependent: number[];
  /** For named accounts: the verdict on the other clauses, and their undecided keys plus aws:PrincipalAccount. */
  accountRest?: ConditionVerdict;
  accountUndecided?: string[];
}

const statements = new WeakMap<readonly ConditionClause[], StatementConditions>();

/**
 * Evaluates a statement's conditions (AND across keys and operators) for a caller class.
 *
 * @example
 * evaluateConditions([{ operator: "Bool", key: "aws:securetransport", values: ["true"] }], { kind: "anonymous" }).truth; // "maybe"
 */
export function evaluateConditions(clauses: readonly ConditionClause[], caller: Caller, options: ConditionOptions = {}): ConditionVerdict {
  let sc = statements.get(clauses);
  if (!sc) {
    const compiledClauses = clauses.map(compile);
    const accountDependent = compiledClauses.flatMap((c, i) => (c.key === "aws:principalaccount" ? [i] : []));
    statements.set(clauses, (sc = { clauses: compiledClauses, byKind: new Map(), accountDependent }));
  }
  if (caller.kind !== "account") {
    let v = sc.byKind.get(caller.kind);
    if (!v) sc.byKind.set(caller.kind, (v = verdictOf(sc.clauses, sc.clauses.map((c) => clauseTruth(c, caller, options)))));
    return v;
  }
  if (!sc.accountRest) {
    const dependent = new Set(sc.accountDependent);
    const truths = sc.clauses.map((c, i) => (dependent.has(i) ? "always" : clauseTruth(c, caller, options)));
    sc.accountRest = verdictOf(sc.clauses, truths);
    sc.accountUndecided = verdictOf(sc.clauses, truths.map((t, i) => (dependent.has(i) ? "maybe" : t))).undecidedKeys;
  }
  const rest = sc.accountRest;
  if (sc.accountDependent.length === 0 || rest.truth === "never") return rest;
  const own = allOf(sc.accountDependent.map((i) => clauseTruth(sc.clauses[i]!, caller, options)));
  if (own === "always") return rest;
  if (own === "never") return { truth: "never", undecidedKeys: rest.undecidedKeys };
  return { truth: "maybe", undecidedKeys: sc.accountUndecided! };
}

/**
 * True when some clause holds for no caller that is not an AWS service (`Bool aws:PrincipalIsAWSService true`, or
 * any clause that needs `aws:PrincipalServiceName` or `aws:PrincipalServiceNamesList`, which only a service principal's
 * requests carry): the statement can reach another account only through a service acting for it. Unsigned requests
 * lack these keys, so `BoolIfExists ... true` lets them in and is not such a clause.
 *
 * @example
 * requiresAWSService([{ operator: "Bool", key: "aws:principalisawsservice", values: ["true"] }]); // true
 * requiresAWSService([{ operator: "StringEquals", key: "aws:principalservicename", values: ["cloudfront.amazonaws.com"] }]); // true
 */
export function requiresAWSService(clauses: readonly ConditionClause[]): boolean {
  return clauses.some((c) => {
    if (SERVICE_NAME_KEYS.has(c.key)) return clauseFor(compile(c), ABSENT, {}) === "never";
    if (c.key !== "aws:principalisawsservice") return false;
    const cc = compile(c);
    return clauseFor(cc, NOT_A_SERVICE, {}) === "never" && clauseFor(cc, ABSENT, {}) === "never";
  });
}

/**
 * True when an aws:PrincipalAccount clause of these conditions matches account ids by wildcard, so that two
 * accounts it does not list may still be judged differently. Without one, every account a statement does not
 * name (in its principals or its aws:PrincipalAccount values) gets the same verdict from it.
 *
 * @example
 * matchesAccountsByPattern([{ operator: "StringLike", key: "aws:principalaccount", values: ["1111*"] }]); // true
 */
export function matchesAccountsByPattern(clauses: readonly ConditionClause[]): boolean {
  return clauses.some((c) => c.key === "aws:principalaccount" && compile(c).globCells > 0);
}
