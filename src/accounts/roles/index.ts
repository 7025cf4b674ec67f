// Public API of roles and permissions.
export * from "./permissions.ts";
export * from "./role-store.ts";
export * from "./grant-notice.ts";
