// Public API of the sessions module: tokens, the session manager, revocation stamps and the cookie.
export * from "./session-manager.ts";
export * from "./policy.ts";
export * from "./open-rule.ts";
export * from "./token.ts";
export * from "./cookie.ts";
export * from "./device-cookie.ts";
export * from "./errors.ts";
export { endUserSessions, GLOBAL_SCOPE, holdSessionForNewCredential, userScope } from "./revocation.ts";
export type { SessionsTable, RevocationStampsTable } from "./tables.ts";
