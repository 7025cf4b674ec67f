// Public API of the new-password policy: length, common, context-word and breached-password rules,
// the k-anonymity range checker, the offline sorted-file checker, and their errors.
export { createPasswordPolicy, DEFAULT_MAX_LENGTH, DEFAULT_MIN_LENGTH } from "./policy.ts";
export { breachCheckUnavailable, verdictUnavailable } from "./errors.ts";
export { accountPasswordContext, throwIfRefused } from "./account.ts";
export type { PasswordPolicy, PasswordPolicyOptions } from "./policy.ts";
export type { BreachChecker, BreachVerdict, PolicyContext, PolicyReason, PolicyReasonCode, PolicyResult } from "./types.ts";
export {
  BUNDLED_LIST_SOURCE,
  createCommonPasswordList,
  loadBundledCommonPasswords,
  parseCommonPasswordText,
} from "./common-list.ts";
export type { CommonPasswordList } from "./common-list.ts";
export { contextWords, matchContextWords } from "./context-words.ts";
export type { ContextSource, ContextWord } from "./context-words.ts";
export { createRangeBreachChecker, parseRangeBaseUrl } from "./range-checker.ts";
export type { RangeBreachChecker, RangeBreachCheckerOptions } from "./range-checker.ts";
export { findSuffixCount, MAX_RANGE_LINES } from "./range-response.ts";
export type { RangeLookup } from "./range-response.ts";
export { createOfflineBreachFile } from "./offline-file.ts";
export type { OfflineBreachFile } from "./offline-file.ts";
export { codePointLength, comparisonKey, sha1Hex } from "./normalize.ts";
export { BreachFileError, CommonPasswordListError, PasswordPolicyConfigError, PasswordPolicyInputError } from "./errors.ts";
