// rotate-keys: a new keyring data key becomes current, then every registered encrypted column is re-encrypted
// under it in batches (SourceLair and Sentry rotated every secret, seeds 001 and 004). Not per user: the scope
// does not narrow it. Old keys stay readable, so a crash half-way leaves every value decryptable.
import { sql } from "kysely";
import { Keyring } from "../../crypto/keyring.ts";
import { containErrors } from "../errors.ts";
import { encryptedColumns } from "../encrypted-columns.ts";
import type { GlobalLever, LeverContext } from "../lever.ts";

// Rows per step: each is a decrypt and an encrypt, so steps stay short transactions.
const STEP_ROWS = 500;

function keyring(ctx: LeverContext) {
  if (!ctx.keyring) throw containErrors.badScope("rotate-keys needs the keyring (open Bulwark with its master key)");
  return ctx.keyring;
}

export const rotateKeys = {
  kind: "global",
  name: "rotate-keys",
  description: "Create a new data key and re-encrypt every encrypted column under it (whole database)",
  async dryRun(db, _scope, ctx) {
    keyring(ctx);
    let values = 0;
    // Everything is under the current key now; after rotation every value moves to the new one.
    for (const c of encryptedColumns()) {
      const row = await sql<{ n: number }>`select count(*) as n from ${sql.table(c.table)} where ${sql.ref(c.column)} is not null`.execute(db);
      values += Number(row.rows[0]?.n ?? 0);
    }
    return { counts: { keys: 1, encryptedValues: values }, sample: encryptedColumns().map((c) => `${c.table}.${c.column}`).slice(0, 5) };
  },
  async prepare(ctx) {
    await keyring(ctx).rotateDataKey();
  },
  async step(trx, position, ctx) {
    const ring = keyring(ctx);
    const target = ring.currentDataKeyId;
    const cols = encryptedColumns();
    let [index, after] = position ? (JSON.parse(position) as [number, string]) : [0, ""];
    let reencrypted = 0;
    while (index < cols.length) {
      const c = cols[index] as (typeof cols)[number];
      const rows = await sql<{ id: string; ct: string | null }>`select ${sql.ref(c.idColumn)} as id, ${sql.ref(c.column)} as ct from ${sql.table(c.table)}
        where ${sql.ref(c.idColumn)} > ${after} order by ${sql.ref(c.idColumn)} limit ${STEP_ROWS}`.execute(trx);
      if (rows.rows.length === 0) {
        index++;
        after = "";
        continue;
      }
      for (const r of rows.rows) {
        if (r.ct === null) continue;
        const keyId = Keyring.keyIdOf(r.ct);
        if (keyId === target) continue; // already moved (a resumed step): changes nothing twice
        const cipherCtx = { table: c.table, column: c.column, row: String(r.id) };
        const fresh = ring.encrypt(ring.decrypt(r.ct, cipherCtx), cipherCtx);
        // Compare-and-set: a value rewritten meanwhile by its owner is not overwritten.
        const done = await sql`update ${sql.table(c.table)} set ${sql.ref(c.column)} = ${fresh} where ${sql.ref(c.idColumn)} = ${r.id} and ${sql.ref(c.column)} = ${r.ct}`.execute(trx);
        if (Number(done.numAffectedRows ?? 0n) === 1) reencrypted++;
      }
      const last = rows.rows[rows.rows.length - 1] as { id: string };
      return { counts: { reencrypted }, next: JSON.stringify([index, String(last.id)]) };
    }
    return { counts: { reencrypted }, next: null };
  },
} satisfies GlobalLever;
