// Public API of the CSRF module: synchronizer tokens bound to a session and an action, and the
// Origin / Sec-Fetch-Site policy.
export * from "./csrf-token.ts";
export * from "./origin-policy.ts";
export * from "./errors.ts";
