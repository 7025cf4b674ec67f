// Who might call the bucket: the caller classes the evaluator reasons about, and the three-valued
// truth ("always", "never", "maybe") it uses for principals and conditions.

/**
 * - anonymous: an unsigned request from anywhere on the internet.
 * - any-account: a signed request from an arbitrary AWS account the policy does not name
 *   (accounts are free and self-service, so this is "anyone who bothers").
 * - account: a principal in one specific AWS account named by the policy.
 * - canonical: a canonical user (or e-mail grantee) named by the ACL.
 */
export type Caller =
  | { kind: "anonymous" }
  | { kind: "any-account" }
  | { kind: "account"; account: string }
  | { kind: "canonical"; id: string };

export type Truth = "always" | "never" | "maybe";

/**
 * Logical AND of three-valued truths: one "never" decides, all "always" decide, else "maybe".
 *
 * @example
 * allOf(["always", "maybe"]); // "maybe"
 */
export function allOf(values: Iterable<Truth>): Truth {
  let result: Truth = "always";
  for (const v of values) {
    if (v === "never") return "never";
    if (v === "maybe") result = "maybe";
  }
  return result;
}

/**
 * Logical OR of three-valued truths.
 *
 * @example
 * anyOf(["never", "maybe"]); // "maybe"
 */
export function anyOf(values: Iterable<Truth>): Truth {
  let result: Truth = "never";
  for (const v of values) {
    if (v === "always") return "always";
    if (v === "maybe") result = "maybe";
  }
  return result;
}

/**
 * Three-valued negation.
 *
 * @example
 * not("maybe"); // "maybe"
 */
export function not(value: Truth): Truth {
  return value === "always" ? "never" : value === "never" ? "always" : "maybe";
}

/**
 * How findings name a caller class.
 *
 * @example
 * describeCaller({ kind: "account", account: "444455556666" }); // "account 444455556666"
 */
export function describeCaller(caller: Caller): string {
  switch (caller.kind) {
    case "anonymous":
      return "anonymous callers";
    case "any-account":
      return "any AWS account";
    case "account":
      return `account ${caller.account}`;
    case "canonical":
      return `canonical user ${caller.id}`;
  }
}

/**
 * IAM account ids are 12 digits.
 *
 * @example
 * isAccountId("111122223333"); // true
 */
export function isAccountId(value: string): boolean {
  return /^\d{12}$/.test(value);
}

/**
 * The account field of an ARN (`arn:partition:service:region:ACCOUNT:resource`), or undefined.
 *
 * @example
 * arnAccount("arn:aws:iam::111122223333:root"); // "111122223333"
 */
export function arnAccount(arn: string): string | undefined {
  const parts = arn.split(":");
  return parts.length >= 6 && parts[0] === "arn" ? parts[4] : undefined;
}
