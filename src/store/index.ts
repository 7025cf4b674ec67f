// Public API of the store layer.
export * from "./database.ts";
export * from "./migrator.ts";
export * from "./errors.ts";
export * from "./key-store.ts";
export type { Schema } from "./schema.ts";
export { MIGRATIONS, type Migration } from "./migrations/index.ts";
