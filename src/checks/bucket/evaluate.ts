// Evaluates who can read or write the bucket, as S3 authorizes a request: an explicit Deny in the
// bucket policy beats every Allow; otherwise an Allow from the policy OR from the ACL grants access
// (a strict policy does not cancel a permissive ACL); Block Public Access drops what it drops.
// Conservative rule for Denies: a Deny removes access only when it certainly applies to every
// caller of the class (principal certain, all conditions "always", resources certainly covering
// what the Allow reaches). A Deny that the caller can dodge (aws:SecureTransport, a header) or that
// we cannot decide never hides exposure; it is reported as uncertain instead.
import { ACL_ACTIONS, S3_ACTIONS, actionCovered, type AccessClass, type S3Action } from "./actions.ts";
import { ALL_USERS_URI, AUTHENTICATED_USERS_URI, type BucketACL, type PublicAccessBlock } from "./acl-parse.ts";
import type { Caller } from "./callers.ts";
import { evaluateConditions } from "./conditions.ts";
import { BucketInputError } from "./errors.ts";
import { createPatternReasoner, type PatternReasoner } from "./glob.ts";
import type { BucketPolicy, ConditionClause, PolicyStatement } from "./policy-parse.ts";
import { namesAccount, principalCovers } from "./principals.ts";
import { allowRegions, bucketTarget, denyCovers, resourcesOverlap } from "./resources.ts";

export interface BucketInputs {
  policy?: BucketPolicy | undefined;
  acl?: BucketACL | undefined;
  publicAccessBlock?: PublicAccessBlock | undefined;
  ownerAccount?: string | undefined;
  bucket?: string | undefined;
}

export interface ClassAccess {
  allowed: boolean;
  /** Actions the caller can perform in this class. */
  actions: string[];
  /** Statements and grants that give the access. */
  grantedBy: string[];
  /** Denies that certainly remove part of the access (or cancel some Allows). */
  narrowedBy: string[];
  /** Denies that overlap the access but might not apply: never counted as removing it. */
  uncertainDenies: { statement: string; undecidedKeys: string[] }[];
  /** Whether any granting source is an ACL grant (for the "ACL wider than policy" conflict). */
  viaACL: boolean;
  viaPolicy: boolean;
}

export interface CallerAccess {
  caller: Caller;
  read: ClassAccess;
  write: ClassAccess;
}

export interface BucketAccess {
  bucket: string | undefined;
  bucketInferred: boolean;
  anonymous: CallerAccess;
  anyAccount: CallerAccess;
  /** Specific accounts and canonical users named by the policy or ACL (the owner excluded). */
  named: CallerAccess[];
  /** The policy gives anonymous callers or any account some access (S3's "public policy"). */
  policyPublic: boolean;
  restrictPublicBucketsApplied: boolean;
  ignoredPublicGrants: string[];
  /** Allow statements that reached some outside caller but were cancelled for all of them by Denies. */
  cancelledAllows: string[];
}

interface Ctx {
  inputs: BucketInputs;
  statements: PolicyStatement[];
  bucketArn: string;
  objectArn: string;
  /** Policy Allows are ignored (RestrictPublicBuckets on a public policy). */
  dropPolicy: boolean;
  useACL: boolean;
  candidates: Set<string>;
  survivors: Set<string>;
  patterns: PatternReasoner;
}

function aclGrantsFor(ctx: Ctx, caller: Caller, action: string): string[] {
  const acl = ctx.inputs.acl;
  if (!acl || !ctx.useACL) return [];
  const ignorePublic = ctx.inputs.publicAccessBlock?.IgnorePublicAcls === true;
  return acl.grants
    .filter((g) => ACL_ACTIONS[g.permission].includes(action))
    .filter((g) => {
      if (g.type === "Group") {
        if (ignorePublic) return false;
        if (g.grantee === ALL_USERS_URI) return true;
        return g.grantee === AUTHENTICATED_USERS_URI && caller.kind !== "anonymous";
      }
      const id = g.type === "CanonicalUser" ? g.grantee : `email:${g.grantee}`;
      return caller.kind === "canonical" && caller.id === id && id !== acl.ownerId;
    })
    .map((g) => g.label);
}

const ANY_ACCOUNT: Caller = { kind: "any-account" };

const valueSets = new WeakMap<ConditionClause, Set<string>>();
/** A condition's values as a set, made once (a clause may list thousands of accounts, asked once per caller). */
function valueSet(clause: ConditionClause): Set<string> {
  let set = valueSets.get(clause);
  if (!set) valueSets.set(clause, (set = new Set(clause.values)));
  return set;
}

/**
 * Whether an Allow can be credited to this caller. Anonymous and any-account callers are judged on
 * the statement itself. A named account or canonical user is credited only with statements that
 * name it (principal, aws:PrincipalAccount) or that are open to any account anyway: a Principal "*"
 * statement pinned to some VPC endpoint or IP range grants whoever is there, not every account
 * the policy happens to mention.
 */
function attributable(st: PolicyStatement, caller: Caller): boolean {
  if (caller.kind === "anonymous" || caller.kind === "any-account") return true;
  if (!st.notPrincipal) {
    if (caller.kind === "account" && namesAccount(st.principals, caller.account)) return true;
    if (caller.kind === "canonical" && st.principals.canonicalUser.includes(caller.id)) return true;
  }
  if (caller.kind === "account" && st.conditions.some((c) => c.key === "aws:principalaccount" && valueSet(c).has(caller.account))) return true;
  return principalCovers(st, ANY_ACCOUNT) !== "never" && evaluateConditions(st.conditions, ANY_ACCOUNT).truth !== "never";
}

interface ActionVerdict {
  granted: string[];
  narrowedBy: Set<string>;
  uncertain: Map<string, string[]>;
  viaACL: boolean;
  viaPolicy: boolean;
}

function evaluateAction(ctx: Ctx, caller: Caller, action: S3Action): ActionVerdict {
  const target = action.level === "bucket" ? ctx.bucketArn : ctx.objectArn;
  const sources: { label: string; regions: string[]; statement?: string }[] = [];
  if (!ctx.dropPolicy) {
    for (const st of ctx.statements) {
      if (st.effect !== "Allow" || !actionCovered(st, action.name)) continue;
      if (!attributable(st, caller)) continue;
      if (principalCovers(st, caller) === "never") continue;
      if (evaluateConditions(st.conditions, caller).truth === "never") continue;
      const regions = allowRegions(ctx.patterns, st, target);
      if (regions.length > 0) sources.push({ label: st.label, regions, statement: st.label });
    }
  }
  for (const label of aclGrantsFor(ctx, caller, action.name)) sources.push({ label, regions: [target] });

  const denies = ctx.statements.filter((st) => st.effect === "Deny" && actionCovered(st, action.name) && principalCovers(st, caller) !== "never");
  const verdict: ActionVerdict = { granted: [], narrowedBy: new Set(), uncertain: new Map(), viaACL: false, viaPolicy: false };
  for (const src of sources) {
    if (src.statement) ctx.candidates.add(src.statement);
    const open = src.regions.filter((region) => {
      for (const d of denies) {
        const cond = evaluateConditions(d.conditions, caller);
        if (cond.truth === "never" || !resourcesOverlap(ctx.patterns, d, region, target)) continue;
        const certain = principalCovers(d, caller) === "always" && cond.truth === "always";
        if (certain && denyCovers(ctx.patterns, d, region, target)) {
          verdict.narrowedBy.add(d.label);
          return false;
        }
        if (certain) verdict.narrowedBy.add(d.label); // covers part of the region only
        else verdict.uncertain.set(d.label, cond.undecidedKeys);
      }
      return true;
    });
    if (open.length === 0) continue;
    verdict.granted.push(src.label);
    if (src.statement) {
      ctx.survivors.add(src.statement);
      verdict.viaPolicy = true;
    } else verdict.viaACL = true;
  }
  if (verdict.granted.length === 0) verdict.uncertain.clear();
  return verdict;
}

function emptyClass(): ClassAccess {
  return { allowed: false, actions: [], grantedBy: [], narrowedBy: [], uncertainDenies: [], viaACL: false, viaPolicy: false };
}

function evaluateCaller(ctx: Ctx, caller: Caller): CallerAccess {
  const result: CallerAccess = { caller, read: emptyClass(), write: emptyClass() };
  for (const action of S3_ACTIONS) {
    const v = evaluateAction(ctx, caller, action);
    const cls: ClassAccess = result[action.class satisfies AccessClass];
    for (const d of v.narrowedBy) if (!cls.narrowedBy.includes(d)) cls.narrowedBy.push(d);
    if (v.granted.length === 0) continue;
    cls.allowed = true;
    cls.actions.push(action.name);
    cls.viaACL ||= v.viaACL;
    cls.viaPolicy ||= v.viaPolicy;
    for (const g of v.granted) if (!cls.grantedBy.includes(g)) cls.grantedBy.push(g);
    for (const [statement, undecidedKeys] of v.uncertain) {
      if (!cls.uncertainDenies.some((u) => u.statement === statement)) cls.uncertainDenies.push({ statement, undecidedKeys });
    }
  }
  return result;
}

/** Specific accounts and canonical users the inputs name, other than the owner. */
function namedCallers(inputs: BucketInputs, statements: PolicyStatement[]): Caller[] {
  const accounts = new Set<string>();
  const canon = new Set<string>();
  for (const st of statements) {
    // Every account a statement names, whatever its role: an Allow's grantee, or the exception
    // of a Deny's NotPrincipal, which may be left with access that everyone else lost.
    for (const e of st.principals.aws) {
      const m = /^(\d{12})$/.exec(e) ?? /^arn:[a-z-]+:(?:iam|sts)::(\d{12}):/.exec(e);
      if (m?.[1]) accounts.add(m[1]);
    }
    for (const id of st.principals.canonicalUser) canon.add(id);
    for (const c of st.conditions) {
      if (c.key === "aws:principalaccount") for (const v of c.values) if (/^\d{12}$/.test(v)) accounts.add(v);
    }
  }
  for (const g of inputs.acl?.grants ?? []) {
    if (g.type === "CanonicalUser") canon.add(g.grantee);
    if (g.type === "AmazonCustomerByEmail") canon.add(`email:${g.grantee}`);
  }
  const owner = inputs.ownerAccount;
  const ownerId = inputs.acl?.ownerId;
  return [
    ...[...accounts].filter((a) => a !== owner).sort().map((account): Caller => ({ kind: "account", account })),
    ...[...canon].filter((id) => id !== ownerId).sort().map((id): Caller => ({ kind: "canonical", id })),
  ];
}

/**
 * Works out who can read and write the bucket from its policy, ACL and public-access block.
 *
 * @example
 * const access = evaluateBucketAccess({ acl: parseBucketACL(text, "acl.json") });
 * access.anyAccount.read.allowed; // true when AuthenticatedUsers has READ
 */
export function evaluateBucketAccess(inputs: BucketInputs): BucketAccess {
  const statements = inputs.policy?.statements ?? [];
  const target = bucketTarget(inputs.bucket, statements);
  const patterns = createPatternReasoner(() => {
    throw new BucketInputError("the policy is too complex to evaluate: its wildcard patterns are too many or too long (AWS caps a bucket policy at 20 KB)");
  });
  const base = { inputs, statements, patterns, bucketArn: target.bucketArn, objectArn: target.objectArn, candidates: new Set<string>(), survivors: new Set<string>() };
  // First pass: is the policy public (anonymous or any account gets something through it)?
  const policyOnly: Ctx = { ...base, dropPolicy: false, useACL: false, candidates: new Set(), survivors: new Set() };
  const policyPublic = [{ kind: "anonymous" } as const, { kind: "any-account" } as const].some((c) => {
    const a = evaluateCaller(policyOnly, c);
    return a.read.allowed || a.write.allowed;
  });
  // RestrictPublicBuckets: with a public policy, only the owner account and AWS services get
  // anything through the policy, named cross-account grants included (S3 API reference).
  const restrict = inputs.publicAccessBlock?.RestrictPublicBuckets === true && policyPublic;
  const ctx: Ctx = { ...base, dropPolicy: restrict, useACL: true };
  const anonymous = evaluateCaller(ctx, { kind: "anonymous" });
  const anyAccount = evaluateCaller(ctx, { kind: "any-account" });
  const named = namedCallers(inputs, statements).map((c) => evaluateCaller(ctx, c));
  const ignoredPublicGrants = inputs.publicAccessBlock?.IgnorePublicAcls
    ? (inputs.acl?.grants ?? []).filter((g) => g.type === "Group" && (g.grantee === ALL_USERS_URI || g.grantee === AUTHENTICATED_USERS_URI)).map((g) => g.label)
    : [];
  const cancelledAllows = restrict ? [] : [...ctx.candidates].filter((s) => !ctx.survivors.has(s));
  return {
    bucket: target.name,
    bucketInferred: target.inferred,
    anonymous,
    anyAccount,
    named,
    policyPublic,
    restrictPublicBucketsApplied: restrict,
    ignoredPublicGrants,
    cancelledAllows,
  };
}
