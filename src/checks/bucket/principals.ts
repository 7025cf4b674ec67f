// Does a statement's Principal / NotPrincipal cover a caller class? Three-valued, like conditions.
import { anyOf, arnAccount, isAccountId, not, type Caller, type Truth } from "./callers.ts";
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

function inSet(set: PrincipalSet, caller: Caller): Truth {
  if (set.everyone) return "always";
  const truths: Truth[] = set.aws.map((e) => awsEntry(e, caller));
  if (caller.kind === "canonical") truths.push(...set.canonicalUser.map((id): Truth => (id === caller.id ? "always" : "never")));
  // Service and Federated principals are AWS services and identity providers, not our caller classes.
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
