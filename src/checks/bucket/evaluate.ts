// Evaluates who can read or write the bucket, as S3 authorizes a request: an explicit Deny in the
// bucket policy beats every Allow; otherwise an Allow from the policy OR from the ACL grants access
// (a strict policy does not cancel a permissive ACL); Block Public Access drops what it drops.
// Conservative rule for Denies: a Deny removes access only when it certainly applies to every
// caller of the class (principal certain, all conditions "always", resources certainly covering
// what the Allow reaches). A Deny that the caller can dodge (aws:SecureTransport, a header) or that
// we cannot decide never hides exposure; it is reported as uncertain instead.
import { ACL_ACTIONS, MAX_UNLISTED_ACTIONS, actionCovered, actionsToEvaluate, type AccessClass, type S3Action } from "./actions.ts";
import { ALL_USERS_URI, AUTHENTICATED_USERS_URI, type ACLGrant, type BucketACL, type PublicAccessBlock } from "./acl-parse.ts";
import { arnAccount, isAccountId, type Caller } from "./callers.ts";
import { BucketInputError } from "./errors.ts";
import { createPatternReasoner, type PatternReasoner } from "./glob.ts";
import { denyPins, unattributedPins, type Pin } from "./pins.ts";
import type { BucketPolicy, PolicyStatement } from "./policy-parse.ts";
import { reachesOthersOnlyAsService } from "./principals.ts";
import { mayBeNonPublicToAWS } from "./public-policy.ts";
import { allowRegions, bucketTarget, denyCovers, resourcesOverlap, s3Bucket, type BucketTarget } from "./resources.ts";
import { createVerdicts, type CallerVerdicts, type DenyVerdict } from "./verdicts.ts";

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
  /**
   * The policy is public as AWS certainly means it (S3's "public policy", public-policy.ts): it gives anonymous callers
   * or any account some access through a statement AWS cannot read as kept to fixed values, nor as a service grant.
   */
  policyPublic: boolean;
  restrictPublicBucketsApplied: boolean;
  ignoredPublicGrants: string[];
  /** Allow statements that reached some outside caller but were cancelled for all of them by Denies. */
  cancelledAllows: string[];
  /** Allows kept from anonymous callers or any account only by pins the check cannot attribute (pins.ts). */
  pinnedGrants: PinnedGrant[];
}

/** An Allow that anonymous callers or any account would get but for its pins, and what it would give them. */
export interface PinnedGrant {
  statement: string;
  /** The outside classes it would reach at the pin. */
  callers: ("anonymous" | "any-account")[];
  /** Actions it would give there, after the Denies that still certainly apply. */
  read: string[];
  write: string[];
  /** The conditions that alone keep those callers out. */
  pins: Pin[];
}

/**
 * Actions that every statement and ACL grant treat alike: the same level, covered by the same statements,
 * granted by the same ACL permissions. Every caller gets the same answer for each of them, so a group is
 * evaluated once per caller, however many actions it holds (with `s3:*` and a few statements, a handful of groups).
 */
interface ActionGroup {
  level: S3Action["level"];
  allows: PolicyStatement[];
  denies: PolicyStatement[];
  /** ACL grants that give the group's actions (Block Public Access's IgnorePublicAcls not yet applied). */
  grants: ACLGrant[];
}

/** What does not depend on the caller, worked out once per evaluation and shared by both passes. */
interface Plan {
  /** Every action evaluated, in report order, with its group. */
  actions: { action: S3Action; group: ActionGroup }[];
  /** Through which of an Allow's resources it reaches the bucket (allowRegions), per statement and level. */
  regions: Map<string, string[]>;
  /** How each Deny's resources meet each region an Allow or ACL grant reaches (see denyReach). */
  denyReach: Map<string, DenyReach>;
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
  plan: Plan;
  verdicts: (caller: Caller) => CallerVerdicts;
  /** Access already worked out for named callers, by shape (see CallerVerdicts). */
  shapes: Map<string, Omit<CallerAccess, "caller">>;
}

function makePlan(inputs: BucketInputs, statements: PolicyStatement[]): Plan {
  const tooMany = (): never => {
    throw new BucketInputError(`the policy names more than ${MAX_UNLISTED_ACTIONS} S3 write actions unknown to this check (AWS rejects actions that do not exist)`);
  };
  const groups = new Map<string, ActionGroup>();
  const actions = actionsToEvaluate(statements, tooMany).map((action) => {
    const covering = statements.filter((st) => actionCovered(st, action.name));
    const grants = (inputs.acl?.grants ?? []).filter((g) => ACL_ACTIONS[g.permission].includes(action.name));
    const key = `${action.level} ${covering.map((st) => st.index).join(",")} ${grants.map((g) => g.permission).join(",")}`;
    let group = groups.get(key);
    if (!group) {
      group = { level: action.level, allows: covering.filter((st) => st.effect === "Allow"), denies: covering.filter((st) => st.effect === "Deny"), grants };
      groups.set(key, group);
    }
    return { action, group };
  });
  return { actions, regions: new Map(), denyReach: new Map() };
}

function aclGrantsFor(ctx: Ctx, caller: Caller, group: ActionGroup): string[] {
  const acl = ctx.inputs.acl;
  if (!acl || !ctx.useACL) return [];
  const ignorePublic = ctx.inputs.publicAccessBlock?.IgnorePublicAcls === true;
  return group.grants
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

function regionsFor(ctx: Ctx, st: PolicyStatement, level: S3Action["level"], target: string): string[] {
  const key = `${st.index} ${level} ${target}`;
  let regions = ctx.plan.regions.get(key);
  if (!regions) ctx.plan.regions.set(key, (regions = allowRegions(ctx.patterns, st, target)));
  return regions;
}

/** Whether a Deny's resources touch a region within the target, and (asked only then) whether they cover it. */
interface DenyReach {
  overlap: boolean;
  covers?: boolean;
}

function denyReach(ctx: Ctx, d: PolicyStatement, regionKey: string, region: string, target: string): DenyReach {
  const key = `${d.index} ${regionKey} ${target}`;
  let r = ctx.plan.denyReach.get(key);
  if (!r) ctx.plan.denyReach.set(key, (r = { overlap: resourcesOverlap(ctx.patterns, d, region, target) }));
  return r;
}

function denyCoversRegion(ctx: Ctx, d: PolicyStatement, reach: DenyReach, region: string, target: string): boolean {
  reach.covers ??= denyCovers(ctx.patterns, d, region, target);
  return reach.covers;
}

interface ActionVerdict {
  granted: string[];
  narrowedBy: Set<string>;
  uncertain: Map<string, string[]>;
  viaACL: boolean;
  viaPolicy: boolean;
}

function evaluateGroup(ctx: Ctx, caller: Caller, group: ActionGroup, memo: CallerVerdicts): ActionVerdict {
  const target = group.level === "bucket" ? ctx.bucketArn : ctx.objectArn;
  // A region is keyed by where it came from (statement and position, or the whole target) for the deny cache.
  const sources: { label: string; regions: { arn: string; key: string }[]; statement?: string }[] = [];
  for (const st of group.allows) {
    // RestrictPublicBuckets still lets AWS service principals in: a grant reaching other accounts only through a
    // service (its own CloudFront distribution) survives it.
    if (ctx.dropPolicy && !(caller.kind === "any-account" && reachesOthersOnlyAsService(st))) continue;
    if (!memo.allowApplies(st)) continue;
    const regions = regionsFor(ctx, st, group.level, target);
    if (regions.length > 0) sources.push({ label: st.label, regions: regions.map((arn, i) => ({ arn, key: `${st.index}/${i}` })), statement: st.label });
  }
  for (const label of aclGrantsFor(ctx, caller, group)) sources.push({ label, regions: [{ arn: target, key: "target" }] });

  const denies = group.denies.filter((st) => memo.deny(st).principal !== "never");
  const verdict: ActionVerdict = { granted: [], narrowedBy: new Set(), uncertain: new Map(), viaACL: false, viaPolicy: false };
  for (const src of sources) {
    if (src.statement) ctx.candidates.add(src.statement);
    const open = src.regions.filter((region) => {
      for (const d of denies) {
        const { principal, cond } = memo.deny(d);
        if (cond.truth === "never") continue;
        const reach = denyReach(ctx, d, region.key, region.arn, target);
        if (!reach.overlap) continue;
        const certain = principal === "always" && cond.truth === "always";
        if (certain && denyCoversRegion(ctx, d, reach, region.arn, target)) {
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
  const memo = ctx.verdicts(caller);
  // Named callers that every statement treats alike share one answer (thousands of accounts in one statement).
  const shared = memo.shape === undefined ? undefined : ctx.shapes.get(memo.shape);
  if (shared) return { caller, ...shared };
  const result: CallerAccess = { caller, read: emptyClass(), write: emptyClass() };
  const verdicts = new Map<ActionGroup, ActionVerdict>();
  // A group's verdict is the same for each of its actions: merged into a class once (a group may hold dozens of
  // actions, and a verdict hundreds of Denies, each merged by a linear scan).
  const merged = { read: new Set<ActionVerdict>(), write: new Set<ActionVerdict>() };
  for (const { action, group } of ctx.plan.actions) {
    let v = verdicts.get(group);
    if (!v) verdicts.set(group, (v = evaluateGroup(ctx, caller, group, memo)));
    const cls: ClassAccess = result[action.class satisfies AccessClass];
    // An action AWS added since our list is judged at both levels: named once.
    if (v.granted.length > 0 && !cls.actions.includes(action.name)) cls.actions.push(action.name);
    if (merged[action.class].has(v)) continue;
    merged[action.class].add(v);
    for (const d of v.narrowedBy) if (!cls.narrowedBy.includes(d)) cls.narrowedBy.push(d);
    if (v.granted.length === 0) continue;
    cls.allowed = true;
    cls.viaACL ||= v.viaACL;
    cls.viaPolicy ||= v.viaPolicy;
    for (const g of v.granted) if (!cls.grantedBy.includes(g)) cls.grantedBy.push(g);
    for (const [statement, undecidedKeys] of v.uncertain) {
      if (!cls.uncertainDenies.some((u) => u.statement === statement)) cls.uncertainDenies.push({ statement, undecidedKeys });
    }
  }
  if (memo.shape !== undefined) ctx.shapes.set(memo.shape, { read: result.read, write: result.write });
  return result;
}

/** Condition keys whose values are account ids, and ARNs whose account field names an account, of the caller or its source. */
const CONDITION_ACCOUNT_KEYS: ReadonlySet<string> = new Set(["aws:principalaccount", "aws:sourceaccount"]);
const CONDITION_ARN_KEYS: ReadonlySet<string> = new Set(["aws:principalarn", "aws:sourcearn"]);

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
    // And every account a condition names the caller or its source by: a Deny "unless aws:PrincipalArn is in
    // account X" leaves X the access that everyone else lost, as a NotPrincipal X would. For a named account these
    // keys other than aws:PrincipalAccount are its own to hold (conditions.ts), so createVerdicts need not file the
    // statement under it: the account named nowhere gets the same verdict.
    for (const c of st.conditions) {
      if (CONDITION_ACCOUNT_KEYS.has(c.key)) for (const v of c.values) if (isAccountId(v)) accounts.add(v);
      if (CONDITION_ARN_KEYS.has(c.key)) {
        for (const v of c.values) {
          const account = arnAccount(v);
          if (account !== undefined && isAccountId(account)) accounts.add(account);
        }
      }
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
 * Refuses a policy that cannot be the policy of the bucket named by --bucket. S3 keeps a bucket policy only when its
 * Resources name that bucket (a Resource naming another bucket is "Policy has invalid resource"), so a policy that
 * names another bucket literally, or none of whose statements reaches this one, is another bucket's (or the name is
 * mistyped: "acme-data" for "acme-data-prod"); judging it would miss the Allows it makes and print an all-clear about
 * a policy that may open a bucket to anyone.
 */
function refuseOtherBucketsPolicy(bucket: string, policy: BucketPolicy | undefined, patterns: PatternReasoner, target: BucketTarget): void {
  const statements = policy?.statements ?? [];
  if (statements.length === 0) return;
  const from = policy?.source ? ` (${policy.source})` : "";
  const shown = JSON.stringify(bucket.slice(0, 80));
  const advice = "check the bucket name, or leave --bucket out to take it from the policy";
  const quote = (names: ReadonlySet<string>): string =>
    [...names].slice(0, 5).map((n) => JSON.stringify(n.slice(0, 80))).join(", ") + (names.size > 5 ? ` and ${names.size - 5} more` : "");
  const others = new Set<string>();
  let first: PolicyStatement | undefined;
  for (const st of statements) {
    if (st.notResource) continue;
    for (const r of st.resources) {
      const s3 = s3Bucket(r);
      if (s3 === null || !s3.literal || s3.bucket === bucket) continue;
      others.add(s3.bucket);
      first ??= st;
    }
  }
  if (first !== undefined) {
    throw new BucketInputError(`--bucket ${shown}: the policy${from} names another bucket (statement ${first.label}: ${quote(others)}); S3 refuses a bucket policy whose Resources name another bucket, so this is not the policy of ${shown}: ${advice}`);
  }
  const reaches = (st: PolicyStatement): boolean => allowRegions(patterns, st, target.bucketArn).length > 0 || allowRegions(patterns, st, target.objectArn).length > 0;
  if (statements.some(reaches)) return;
  const named = new Set<string>();
  for (const st of statements) for (const r of st.resources) if (!st.notResource) named.add(s3Bucket(r)?.bucket ?? r);
  // Only NotResource statements that leave out everything: a policy that grants and denies nothing, judged as such.
  if (named.size === 0) return;
  throw new BucketInputError(`--bucket ${shown}: no statement of the policy${from} reaches this bucket; its Resources name ${quote(named)}. S3 keeps a bucket policy only on the bucket its Resources name: ${advice}`);
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
  if (inputs.bucket !== undefined) refuseOtherBucketsPolicy(inputs.bucket, inputs.policy, patterns, target);
  const plan = makePlan(inputs, statements);
  const aclNames = (inputs.acl?.grants ?? []).flatMap((g) => (g.type === "CanonicalUser" ? [g.grantee] : g.type === "AmazonCustomerByEmail" ? [`email:${g.grantee}`] : []));
  const verdicts = createVerdicts(statements, aclNames, patterns.charge);
  const base = { inputs, statements, patterns, plan, verdicts, bucketArn: target.bucketArn, objectArn: target.objectArn, candidates: new Set<string>(), survivors: new Set<string>() };
  // First pass: is the policy public (anonymous or any account gets something through it)?
  const policyOnly: Ctx = { ...base, dropPolicy: false, useACL: false, candidates: new Set(), survivors: new Set(), shapes: new Map() };
  // Public only if AWS certainly calls it so: not a grant that reaches other accounts only through a service (a
  // Service principal, or "*" on a condition only a service principal meets: conditions.ts requiresAWSService), nor
  // one kept to fixed values of a key AWS lists (public-policy.ts). Counting either would apply RestrictPublicBuckets
  // and drop named accounts' grants AWS keeps.
  const notPublic = new Set(statements.filter((st) => reachesOthersOnlyAsService(st) || mayBeNonPublicToAWS(st)).map((st) => st.label));
  const policyPublic = [{ kind: "anonymous" } as const, { kind: "any-account" } as const].some((c) => {
    const a = evaluateCaller(policyOnly, c);
    return [...a.read.grantedBy, ...a.write.grantedBy].some((label) => !notPublic.has(label));
  });
  // RestrictPublicBuckets: with a public policy, only the owner account and AWS services get
  // anything through the policy, named cross-account grants included (S3 API reference).
  const restrict = inputs.publicAccessBlock?.RestrictPublicBuckets === true && policyPublic;
  const ctx: Ctx = { ...base, dropPolicy: restrict, useACL: true, shapes: new Map() };
  const anonymous = evaluateCaller(ctx, { kind: "anonymous" });
  const anyAccount = evaluateCaller(ctx, { kind: "any-account" });
  const named = namedCallers(inputs, statements).map((c) => evaluateCaller(ctx, c));
  const ignoredPublicGrants = inputs.publicAccessBlock?.IgnorePublicAcls
    ? (inputs.acl?.grants ?? []).filter((g) => g.type === "Group" && (g.grantee === ALL_USERS_URI || g.grantee === AUTHENTICATED_USERS_URI)).map((g) => g.label)
    : [];
  // Statements already reported as exposure (to outsiders in general, or to a named account) are not repeated.
  const reported = new Set<string>();
  for (const a of [anonymous, anyAccount, ...named]) for (const g of [...a.read.grantedBy, ...a.write.grantedBy]) reported.add(g);
  const pinned = pinnedGrants(ctx, reported);
  // An Allow that a Deny cancels for callers in general but not at the Deny's exception is a pinned grant, not cancelled.
  const cancelledAllows = restrict ? [] : [...ctx.candidates].filter((s) => !ctx.survivors.has(s) && !pinned.some((g) => g.statement === s));
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
    pinnedGrants: pinned,
  };
}

/**
 * Allows that reach anonymous callers or any account but for pins the check cannot attribute (pins.ts), with what
 * each would give a caller standing at its pins: the Allow applies, alone (no ACL, no other statement), and a Deny
 * removes access only if it certainly applies and has no exception at a pin (denyPins). The pins are the Allow's own
 * ("Allow * if aws:SourceVpce = E") and those of the Denies it escapes there: "Allow *; Deny unless aws:SourceVpce
 * = E" cancels the Allow for callers in general but not at E, which is the same grant written the other way round;
 * a Deny's exception for the owner's own account or resources keeps it cancelled. RestrictPublicBuckets, when
 * applied, drops them as it drops every grant outside the owner account.
 */
function pinnedGrants(ctx: Ctx, reported: ReadonlySet<string>): PinnedGrant[] {
  // Per Allow: its own pins as a set (pins.ts makes one object per clause, so a pin met through both caller classes
  // is one), and the Denies it escapes, each with one list of exceptions. An unsigned caller's exceptions of a Deny
  // are among any account's (denyPins), so the longer list holds both: no merge clause by clause, which with a
  // linear scan per clause was quadratic in the clauses of the Denies an Allow escapes.
  const byStatement = new Map<PolicyStatement, { grant: PinnedGrant; own: Set<Pin>; escapes: Map<string, Pin[]> }>();
  const solo: Ctx = { ...ctx, useACL: false, candidates: new Set(), survivors: new Set(), shapes: new Map() };
  const owner = ctx.inputs.ownerAccount;
  for (const caller of [{ kind: "anonymous" }, { kind: "any-account" }] as const) {
    const memo = ctx.verdicts(caller);
    // Each Deny's verdict at a pin, worked out once per caller class: it is asked for every Allow, action group and
    // region, and denyPins reads every clause. Denies counted as uncertain there have their exceptions by label.
    const atPin = new Map<PolicyStatement, DenyVerdict>();
    const escaped = new Map<string, Pin[]>();
    const deny = (st: PolicyStatement): DenyVerdict => {
      let v = atPin.get(st);
      if (!v) {
        v = memo.deny(st);
        const pins = v.cond.truth === "always" ? denyPins(st, caller, owner) : undefined;
        if (pins) {
          escaped.set(st.label, pins);
          v = { principal: v.principal, cond: { truth: "maybe", undecidedKeys: v.cond.undecidedKeys } };
        }
        atPin.set(st, v);
      }
      return v;
    };
    for (const st of ctx.statements) {
      if (st.effect !== "Allow" || reported.has(st.label)) continue;
      const own = unattributedPins(st, caller, owner, { charge: ctx.patterns.charge });
      // Without pins of its own, an Allow that reaches the caller and is not reported was cancelled by Denies (or
      // reaches nothing here): it is a pinned grant only if a Deny's exception lets the caller keep it.
      if (!own && !memo.allowApplies(st)) continue;
      const access = evaluateCaller({ ...solo, verdicts: () => ({ allowApplies: (s) => s === st, deny, shape: undefined }) }, caller);
      if (!access.read.allowed && !access.write.allowed) continue;
      const escapes = [...new Set([...access.read.uncertainDenies, ...access.write.uncertainDenies].map((u) => u.statement))].filter((label) => escaped.has(label));
      if (!own && escapes.length === 0) continue;
      let found = byStatement.get(st);
      if (!found) byStatement.set(st, (found = { grant: { statement: st.label, callers: [], read: [], write: [], pins: [] }, own: new Set(), escapes: new Map() }));
      const { grant } = found;
      grant.callers.push(caller.kind);
      for (const a of access.read.actions) if (!grant.read.includes(a)) grant.read.push(a);
      for (const a of access.write.actions) if (!grant.write.includes(a)) grant.write.push(a);
      for (const p of own ?? []) found.own.add(p);
      for (const label of escapes) {
        const pins = escaped.get(label) ?? [];
        if (pins.length > (found.escapes.get(label)?.length ?? 0)) found.escapes.set(label, pins);
      }
    }
  }
  return [...byStatement.values()].map(({ grant, own, escapes }) => ({ ...grant, pins: [...own, ...[...escapes.values()].flat()] }));
}
