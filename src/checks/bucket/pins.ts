// Pins the check cannot attribute: an Allow that would be open to anonymous callers or any AWS account but for a
// fixed source address, VPC, endpoint, organisation, source resource, access point, KMS key or principal id, on the
// Allow itself or as the exception of a Deny ("Deny unless aws:SourceVpce = E"). The evaluator is right that
// "callers in general" do not meet such a condition (S3's "meaning of public" agrees), but it cannot tell whose
// address, endpoint or organisation it is: an intruder's own /32 is as good a pin as the owner's office. Such a
// grant is reported for review (bucket.pinned-grant), as a grant to a named foreign account is.
import { arnAccount, type Caller } from "./callers.ts";
import { evaluateConditions, type ConditionOptions } from "./conditions.ts";
import type { ConditionClause, PolicyStatement } from "./policy-parse.ts";
import { principalCovers } from "./principals.ts";

/** Network keys: the caller's address, VPC or endpoint. Unsigned requests carry them too. */
const NETWORK_PIN_KEYS: ReadonlySet<string> = new Set(["aws:sourceip", "aws:vpcsourceip", "aws:sourcevpc", "aws:sourcevpce", "aws:sourcevpcarn"]);

/**
 * Condition keys that tie a request to where it comes from or who makes it (lower case, as parsed). Only the network
 * ones can hold for an unsigned request: it has no organisation, source resource or principal to pin.
 */
const PIN_KEYS: ReadonlySet<string> = new Set([
  ...NETWORK_PIN_KEYS,
  // Organisation of the calling principal.
  "aws:principalorgid", "aws:principalorgpaths",
  // The resource a service acts for (confused-deputy guards).
  "aws:sourceaccount", "aws:sourcearn", "aws:sourceowner", "aws:sourceorgid", "aws:sourceorgpaths",
  // The calling principal itself.
  "aws:principalaccount", "aws:principalarn", "aws:userid",
  // A resource the request must use: the access point it comes through, the KMS key a write asks for (any principal
  // the key's own policy admits can name another account's key by its ARN). Both need a signed request.
  "s3:dataaccesspointaccount", "s3:dataaccesspointarn", "s3:x-amz-server-side-encryption-aws-kms-key-id",
]);

/** Keys whose value is an account id, and keys whose value is an ARN (its account field names the account). */
const ACCOUNT_KEYS: ReadonlySet<string> = new Set(["aws:sourceaccount", "aws:sourceowner", "aws:principalaccount", "s3:dataaccesspointaccount"]);
const ARN_KEYS: ReadonlySet<string> = new Set(["aws:sourcearn", "aws:principalarn", "s3:dataaccesspointarn", "s3:x-amz-server-side-encryption-aws-kms-key-id"]);

/** The owner's own variables: `${aws:ResourceAccount}` and its organisation are the bucket owner's values. */
const OWNER_VARIABLE = /\$\{aws:resource(?:account|orgid|orgpaths)\}/i;

/** A condition clause as a finding shows it. */
export interface Pin {
  operator: string;
  key: string;
  values: string[];
  /** For the exception of a Deny: the Deny's label (the pin is where its clause is false, so it does not apply). */
  deny?: string;
}

/**
 * Each clause's pin, made once: the same clause met again (through both caller classes, or by every Allow that escapes
 * its Deny) is the same object, so a grant's pins are de-duplicated by identity (evaluate.ts pinnedGrants).
 */
const pinsOf = new WeakMap<ConditionClause, Pin>();
function pinOf(c: ConditionClause, deny?: string): Pin {
  const made = pinsOf.get(c);
  if (made && made.deny === deny) return made;
  const pin: Pin = deny === undefined ? { operator: c.operator, key: c.key, values: c.values } : { operator: c.operator, key: c.key, values: c.values, deny };
  pinsOf.set(c, pin);
  return pin;
}

/**
 * Whether a clause pins the caller to the bucket owner's own account: its account id, a resource of its account,
 * or the owner's variables. The owner's CloudFront distribution (aws:SourceArn) or its own account as the source
 * of a service's request is the documented way to close a service grant, not a grant to review.
 */
function ownersOwn(c: ConditionClause, owner: string | undefined): boolean {
  return c.values.every((v) => {
    if (OWNER_VARIABLE.test(v)) return true;
    if (owner === undefined) return false;
    if (ACCOUNT_KEYS.has(c.key)) return v === owner;
    if (ARN_KEYS.has(c.key)) return arnAccount(v) === owner;
    return false;
  });
}

/**
 * The exceptions by which a Deny spares callers of a class: its conditions on pin keys (for an unsigned caller, the
 * network ones only), other than those naming the owner's own account or resources; undefined when it has none. A
 * Deny applies only where every condition holds, so "Deny unless aws:SourceVpce = E" (StringNotEquals) leaves
 * whoever stands at E with what an Allow gives them: "Allow *; Deny unless at E" is the grant "Allow * if at E".
 * "Deny unless aws:PrincipalAccount = owner" is the owner's own fence, not a pin. An unsigned caller's exceptions are
 * among any account's, in the same order (evaluate.ts pinnedGrants keeps the longer list for an Allow both reach).
 *
 * @example
 * denyPins(deny, { kind: "any-account" }, "111122223333"); // [{ operator: "StringNotEquals", key: "aws:sourcevpce", values: ["vpce-1a2b"], deny: '"OnlyFromThere" (#1)' }]
 */
export function denyPins(st: PolicyStatement, caller: Caller, owner: string | undefined): Pin[] | undefined {
  if (st.effect !== "Deny") return undefined;
  const keys = caller.kind === "anonymous" ? NETWORK_PIN_KEYS : PIN_KEYS;
  const pins = st.conditions.filter((c) => keys.has(c.key) && !ownersOwn(c, owner));
  return pins.length === 0 ? undefined : pins.map((c) => pinOf(c, st.label));
}

/**
 * The pins that alone keep an Allow from an anonymous caller or any AWS account, or undefined when it is not so
 * kept: its principal excludes the caller, no condition rules the caller out (it is exposure, reported as such), or
 * some condition that does is not a pin (a fixed aws:PrincipalType, say) or pins to the owner's own account.
 *
 * @example
 * unattributedPins(statement, { kind: "anonymous" }, "111122223333"); // [{ operator: "IpAddress", key: "aws:sourceip", values: ["198.51.100.7/32"] }]
 */
export function unattributedPins(st: PolicyStatement, caller: Caller, owner: string | undefined, options: ConditionOptions = {}): Pin[] | undefined {
  if (st.effect !== "Allow" || principalCovers(st, caller) === "never") return undefined;
  // Clause by clause: the statement's verdict is the AND of its clauses, so the ones that say "never" are what
  // rules the caller out.
  const ruling = st.conditions.filter((c) => evaluateConditions([c], caller, options).truth === "never");
  if (ruling.length === 0) return undefined;
  const keys = caller.kind === "anonymous" ? NETWORK_PIN_KEYS : PIN_KEYS;
  if (!ruling.every((c) => keys.has(c.key) && !ownersOwn(c, owner))) return undefined;
  return ruling.map((c) => pinOf(c));
}
