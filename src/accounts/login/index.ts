// Public API of the login core.
export * from "./login.ts";
