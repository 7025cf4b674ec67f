// Every migration, in order. Append new ones at the end; never edit a released one.
import { core } from "./0001-core.ts";
import { accounts } from "./0002-accounts.ts";
import type { Migration } from "./types.ts";

export const MIGRATIONS: readonly Migration[] = [core, accounts];
export type { Migration } from "./types.ts";
