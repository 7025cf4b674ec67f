// Public API of the password-reset module: single-use, short-lived reset tokens stored hashed.
export * from "./reset-service.ts";
export * from "./token.ts";
export * from "./errors.ts";
export * from "./reset-mail.ts";
export * from "./link-lock.ts";
