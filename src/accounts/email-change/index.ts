// Public API of the email-change module: request a change (link to the new address, notice to the old one),
// confirm it once through the link.
export * from "./email-change-service.ts";
export * from "./email-change-mail.ts";
export * from "./token.ts";
export * from "./errors.ts";
export * from "./set-by-administrator.ts";
export * from "./address-tag.ts";
export * from "./sign-up-shell.ts";
