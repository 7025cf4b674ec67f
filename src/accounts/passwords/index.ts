// Public API of password hashing: the policy object, the scheme table, wrap-migration, salted
// templates, limits and errors.
export { createPasswordContext, DEFAULT_ARGON2_PARAMS, isPasswordText } from "./context.ts";
export type { PasswordContext, PasswordContextOptions, VerifyAndRehashResult } from "./context.ts";
export { createSchemeTable } from "./table.ts";
export type { SchemeTable } from "./table.ts";
export { SCHEME_IDS } from "./scheme.ts";
export type { HashDescription, LegacyParts, LegacyWrap, PasswordScheme, RehashPolicy, SchemeId } from "./scheme.ts";
export { isWrappable, wrapLegacyHash, WRAP_PREFIX } from "./wrap.ts";
export type { WrapOptions } from "./wrap.ts";
export { saltKey, settingsSaltKey } from "./salt.ts";
export { formatSaltedTemplate, parseSaltedTemplate, saltedFromTemplate } from "./salted.ts";
export type { SaltedLayout, SaltedTemplate } from "./salted.ts";
export { DEFAULT_HASH_LIMITS, resolveLimits } from "./limits.ts";
export type { HashLimits } from "./limits.ts";
export type { Argon2Params } from "./argon2.ts";
export { InvalidHashTemplateError, InvalidPasswordPolicyError, PasswordNotTextError, PasswordTooLongError, UnsupportedHashError } from "./errors.ts";

