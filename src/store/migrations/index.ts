// Every migration, in order. Append new ones at the end; never edit a released one.
import { core } from "./0001-core.ts";
import { accounts } from "./0002-accounts.ts";
import { roles } from "./0006-roles.ts";
import type { Migration } from "./types.ts";

export const MIGRATIONS: readonly Migration[] = [core, accounts, roles];
export type { Migration } from "./types.ts";
