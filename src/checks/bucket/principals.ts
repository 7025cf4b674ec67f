// Does a statement's Principal / NotPrincipal cover a caller class? Three-valued, like conditions.
import { anyOf, arnAccount, isAccountId, not, type Caller, type Truth } from "./callers.ts";
import { requiresAWSService } from "./conditions.ts";
import { hasWildcard } from "./glob.ts";
import type { PolicyStatement, PrincipalSet } from "./policy-parse.ts";

/**
 * The account an AWS principal entry names: a bare 12-digit id or the account field of its ARN.
 *
 * @example
 * principalAccount("arn:aws:iam::111122223333:role/app"); // "111122223333"
 */
export function principalAccount(entry: string): string | undefined {
  if (isAccountId(entry)) return entry;
  const account = arnAccount(entry);
  return account !== undefined && isAccountId(account) ? account : undefined;
}

/** True for entries that stand for a whole account (`123456789012`, `arn:aws:iam::123456789012:root`). */
function isWholeAccount(entry: string): boolean {
  return isAccountId(entry) || /^arn:[a-z-]+:iam::\d{12}:root$/.test(entry);
}

function awsEntry(entry: string, caller: Caller): Truth {
  // Principal {"AWS": "*"} is the same as Principal "*": it includes anonymous callers.
  if (entry === "*") return "always";
  // IAM rejects partial wildcards in principals; if one appears anyway, assume the worst.
  if (hasWildcard(entry)) return caller.kind === "anonymous" ? "never" : "maybe";
  switch (caller.kind) {
    case "anonymous":
    case "any-account":
    case "canonical":
      return "never";
    case "account": {
      if (principalAccount(entry) !== caller.account) return "never";
      // A whole account covers every principal in it; one role or user covers only some.
      return isWholeAccount(entry) ? "always" : "maybe";
    }
  }
}

/** A principal set read once: what awsEntry would say of each entry, by account, so a lookup is not a scan. */
interface PrincipalIndex {
  /** An entry "*" (every caller, anonymous included). */
  star: boolean;
  /** An entry with a partial wildcard (IAM refuses them; if one appears, the worst is assumed). */
  wildcard: boolean;
  /** Accounts named without wildcards: "always" for a whole account, "maybe" for some principal in it. */
  accounts: Map<string, Truth>;
  /** Every account any entry names (wildcard entries included), for crediting a statement to an account. */
  named: Set<string>;
  canonical: Set<string>;
}

const indexes = new WeakMap<PrincipalSet, PrincipalIndex>();

// Each caller used to scan every entry of every statement: with one caller per named account that was quadratic
// in the entries (8,000 account ids, a 120 KB policy, took 150 s); indexed once, a lookup is constant.
function indexOf(set: PrincipalSet): PrincipalIndex {
  let ix = indexes.get(set);
  if (ix) return ix;
  ix = { star: false, wildcard: false, accounts: new Map(), named: new Set(), canonical: new Set(set.canonicalUser) };
  for (const entry of set.aws) {
    const account = principalAccount(entry);
    if (account !== undefined) ix.named.add(account);
    if (entry === "*") ix.star = true;
    else if (hasWildcard(entry)) ix.wildcard = true;
    else if (account !== undefined) ix.accounts.set(account, isWholeAccount(entry) || ix.accounts.get(account) === "always" ? "always" : "maybe");
  }
  indexes.set(set, ix);
  return ix;
}

/** Whether any AWS principal entry of the set names `account` (a grant to it, or an exception for it). */
export function namesAccount(set: PrincipalSet, account: string): boolean {
  return indexOf(set).named.has(account);
}

/** Whether the set's CanonicalUser entries name `id`. */
export function namesCanonical(set: PrincipalSet, id: string): boolean {
  return indexOf(set).canonical.has(id);
}

/** Whether the set takes in the caller: what inSetScan says, read from the index. */
export function inSet(set: PrincipalSet, caller: Caller): Truth {
  if (set.everyone) return "always";
  const ix = indexOf(set);
  if (ix.star) return "always";
  const truths: Truth[] = [];
  if (ix.wildcard) truths.push(caller.kind === "anonymous" ? "never" : "maybe");
  if (caller.kind === "account") truths.push(ix.accounts.get(caller.account) ?? "never");
  if (caller.kind === "canonical") truths.push(ix.canonical.has(caller.id) ? "always" : "never");
  truths.push(serviceEntries(set, caller));
  // Federated principals are identity providers' users, not one of our caller classes (README, "Not covered").
  return anyOf(truths);
}

/**
 * What a set's Service entries say of a caller. An AWS service acts for whichever customer's resource asks it to:
 * anyone can make a CloudFront distribution whose origin access control signs as cloudfront.amazonaws.com, so a
 * grant to a service reaches any AWS account (IAM User Guide, "The confused deputy problem"). Only a fixed
 * aws:SourceArn, aws:SourceAccount or aws:SourceOrgID ties it to one account's resources, and that is the
 * conditions' part to judge: for any account those keys are absent or its own ("never" when fixed, "maybe" when
 * wildcarded), so an unpinned grant stays open. "maybe", not "always": most of an account's requests are not
 * made by a service. Services sign their requests, so an unsigned caller is never one.
 */
function serviceEntries(set: PrincipalSet, caller: Caller): Truth {
  return set.service.length > 0 && caller.kind === "any-account" ? "maybe" : "never";
}

/** The definition inSet implements: every entry judged on its own (kept for the tests that compare the two). */
export function inSetScan(set: PrincipalSet, caller: Caller): Truth {
  if (set.everyone) return "always";
  const truths: Truth[] = set.aws.map((e) => awsEntry(e, caller));
  if (caller.kind === "canonical") truths.push(...set.canonicalUser.map((id): Truth => (id === caller.id ? "always" : "never")));
  truths.push(...set.service.map((): Truth => (caller.kind === "any-account" ? "maybe" : "never")));
  return anyOf(truths);
}

/**
 * Whether the statement's Principal (or NotPrincipal) takes in the caller. For NotPrincipal the
 * statement covers everyone not listed, so a listed caller is out and an unlisted one is in.
 *
 * @example
 * principalCovers(statement, { kind: "anonymous" }); // "always" for Principal "*"
 */
export function principalCovers(statement: PolicyStatement, caller: Caller): Truth {
  const member = inSet(statement.principals, caller);
  return statement.notPrincipal ? not(member) : member;
}

const ANY_ACCOUNT: Caller = { kind: "any-account" };
const serviceOnly = new WeakMap<PolicyStatement, boolean>();

/**
 * Whether an Allow reaches other accounts only through an AWS service acting for them: its principal takes in
 * any account only by a Service entry, or a condition needs a service principal (aws:PrincipalIsAWSService true, or
 * aws:PrincipalServiceName / aws:PrincipalServiceNamesList present: conditions.ts requiresAWSService). AWS does not call such a
 * policy public, and RestrictPublicBuckets still lets service principals in (S3 User Guide, "Blocking public
 * access"), so the evaluator keeps these grants where it drops the public ones; the finding says why they are
 * exposure all the same.
 *
 * @example
 * reachesOthersOnlyAsService(statement); // true for {"Principal": {"Service": "cloudfront.amazonaws.com"}}
 */
export function reachesOthersOnlyAsService(st: PolicyStatement): boolean {
  let only = serviceOnly.get(st);
  if (only === undefined) {
    const withoutServices = { ...st.principals, service: [] };
    only = st.effect === "Allow" && !st.notPrincipal &&
      ((st.principals.service.length > 0 && inSet(withoutServices, ANY_ACCOUNT) === "never") || requiresAWSService(st.conditions));
    serviceOnly.set(st, only);
  }
  return only;
}
