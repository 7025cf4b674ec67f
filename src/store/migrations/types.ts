// The shape of one migration. Migrations run in version order, each in its own transaction.
import type { Kysely } from "kysely";
import type { DialectName } from "../database.ts";

export interface Migration {
  /** Strictly increasing; never reused or renumbered once released. */
  version: number;
  name: string;
  up(db: Kysely<any>, dialect: DialectName): Promise<void>;
}
