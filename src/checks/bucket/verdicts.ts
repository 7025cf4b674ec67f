// Each caller's verdict on each statement (does an Allow reach it; do a Deny's principal and conditions apply),
// shared between named callers the statements treat alike, so a policy naming tens of thousands of accounts
// costs about one evaluation per statement that names an account rather than one per account per statement.
import type { Caller, Truth } from "./callers.ts";
import { evaluateConditions, matchesAccountsByPattern, type ConditionVerdict } from "./conditions.ts";
import type { PolicyStatement } from "./policy-parse.ts";
import { namesAccount, namesCanonical, principalAccount, principalCovers } from "./principals.ts";

export interface DenyVerdict {
  principal: Truth;
  cond: ConditionVerdict;
}

export interface CallerVerdicts {
  /** Whether an Allow statement can grant this caller anything (its principal and conditions permitting). */
  allowApplies(st: PolicyStatement): boolean;
  deny(st: PolicyStatement): DenyVerdict;
  /**
   * For a named account or canonical user: equal for two callers exactly when every statement gives them the
   * same verdicts and the same ACL grants name them, so one's access is the other's. Undefined otherwise.
   */
  shape: string | undefined;
}

const ANY_ACCOUNT: Caller = { kind: "any-account" };

/** Accounts a statement's aws:PrincipalAccount conditions list, as a set, made once (a clause may list thousands). */
const conditionAccounts = new WeakMap<PolicyStatement, Set<string>>();
function conditionAccountsOf(st: PolicyStatement): Set<string> {
  let set = conditionAccounts.get(st);
  if (!set) conditionAccounts.set(st, (set = new Set(st.conditions.filter((c) => c.key === "aws:principalaccount").flatMap((c) => c.values))));
  return set;
}

/** Whether a statement is open to some account it does not name (the same answer for every caller). */
const openStatements = new WeakMap<PolicyStatement, boolean>();
function openToAnyAccount(st: PolicyStatement): boolean {
  let open = openStatements.get(st);
  if (open === undefined) {
    open = principalCovers(st, ANY_ACCOUNT) !== "never" && evaluateConditions(st.conditions, ANY_ACCOUNT).truth !== "never";
    openStatements.set(st, open);
  }
  return open;
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
    if (caller.kind === "canonical" && namesCanonical(st.principals, caller.id)) return true;
  }
  if (caller.kind === "account" && conditionAccountsOf(st).has(caller.account)) return true;
  return openToAnyAccount(st);
}

/** Verdicts for one caller, each worked out on first use. */
function memoFor(caller: Caller, charge: (cells: number) => void): Omit<CallerVerdicts, "shape"> {
  const allows = new Map<PolicyStatement, boolean>();
  const denies = new Map<PolicyStatement, DenyVerdict>();
  return {
    allowApplies(st) {
      let ok = allows.get(st);
      if (ok === undefined) {
        ok = attributable(st, caller) && principalCovers(st, caller) !== "never" && evaluateConditions(st.conditions, caller, { charge }).truth !== "never";
        allows.set(st, ok);
      }
      return ok;
    },
    deny(st) {
      let d = denies.get(st);
      if (!d) {
        const principal = principalCovers(st, caller);
        // A Deny whose principal excludes the caller needs no condition evaluation.
        d = { principal, cond: principal === "never" ? { truth: "never", undecidedKeys: [] } : evaluateConditions(st.conditions, caller, { charge }) };
        denies.set(st, d);
      }
      return d;
    },
  };
}

/** A name no statement and no ACL grant uses, for the stand-in caller that the policy names nowhere. */
function unusedName(used: ReadonlySet<string>): string {
  let i = 0;
  while (used.has(`unnamed-${i}`)) i++;
  return `unnamed-${i}`;
}

/**
 * Prepares verdicts for the callers of one evaluation. A statement that does not name an account (in its
 * principals or aws:PrincipalAccount values) and matches no account id by wildcard gives every such account the
 * verdict it gives a stand-in account named nowhere, worked out once; so a named account is evaluated only on
 * the statements that name it or match it by pattern. The same holds for canonical users and their statements.
 * `aclNames` are the canonical ids ACL grants name (`email:` ids for e-mail grantees); `charge` is the
 * evaluation's pattern-work bound.
 *
 * @example
 * const verdictsFor = createVerdicts(statements, aclNames, patterns.charge);
 * verdictsFor({ kind: "anonymous" }).allowApplies(statements[0]!);
 */
export function createVerdicts(statements: readonly PolicyStatement[], aclNames: readonly string[], charge: (cells: number) => void): (caller: Caller) => CallerVerdicts {
  const byAccount = new Map<string, PolicyStatement[]>();
  const byCanonical = new Map<string, PolicyStatement[]>();
  const add = (map: Map<string, PolicyStatement[]>, name: string, st: PolicyStatement): void => {
    const list = map.get(name);
    if (!list) map.set(name, [st]);
    else if (list[list.length - 1] !== st) list.push(st);
  };
  const usedNames = new Set<string>(aclNames);
  for (const st of statements) {
    for (const entry of st.principals.aws) {
      const account = principalAccount(entry);
      if (account !== undefined) add(byAccount, account, st);
    }
    for (const account of conditionAccountsOf(st)) {
      add(byAccount, account, st);
      usedNames.add(account).add(account.toLowerCase());
    }
    for (const id of st.principals.canonicalUser) add(byCanonical, id, st);
  }
  for (const name of [...byAccount.keys(), ...byCanonical.keys()]) usedNames.add(name);
  const byPattern = statements.filter((st) => matchesAccountsByPattern(st.conditions));
  const stand = unusedName(usedNames);
  const baseline = { account: memoFor({ kind: "account", account: stand }, charge), canonical: memoFor({ kind: "canonical", id: stand }, charge) };
  const keyIds = new Map<readonly string[], number>();

  return (caller) => {
    if (caller.kind === "anonymous" || caller.kind === "any-account") return { ...memoFor(caller, charge), shape: undefined };
    const own = caller.kind === "account"
      ? [...new Set([...(byAccount.get(caller.account) ?? []), ...byPattern])].sort((a, b) => a.index - b.index)
      : byCanonical.get(caller.id) ?? [];
    const mine = memoFor(caller, charge);
    const ownSet = new Set(own);
    const base = caller.kind === "account" ? baseline.account : baseline.canonical;
    const verdicts: Omit<CallerVerdicts, "shape"> = {
      allowApplies: (st) => (ownSet.has(st) ? mine : base).allowApplies(st),
      deny: (st) => (ownSet.has(st) ? mine : base).deny(st),
    };
    const parts = own.map((st) => {
      if (st.effect === "Allow") return `${st.index}:${verdicts.allowApplies(st) ? 1 : 0}`;
      const { principal, cond } = verdicts.deny(st);
      // Undecided-key lists come from the condition cache, one array per distinct list: number them.
      let keys = cond.undecidedKeys.length === 0 ? 0 : keyIds.get(cond.undecidedKeys);
      if (keys === undefined) keyIds.set(cond.undecidedKeys, (keys = keyIds.size + 1));
      return `${st.index}:${principal}:${cond.truth}:${keys}`;
    });
    if (caller.kind === "canonical" && aclNames.includes(caller.id)) parts.push(`acl:${caller.id}`);
    return { ...verdicts, shape: `${caller.kind} ${parts.join(" ")}` };
  };
}
