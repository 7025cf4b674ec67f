// rotate-keys: a new keyring data key becomes current, then every registered encrypted column is re-encrypted
// under it in batches (SourceLair and Sentry rotated every secret, seeds 001 and 004). Not per user: the scope
// does not narrow it. Old keys stay readable, so a crash half-way leaves every value decryptable.
import { sql } from "kysely";
import { cryptoErrors } from "../../crypto/errors.ts";
import { Keyring } from "../../crypto/keyring.ts";
import { keyStoreIn } from "../../store/key-store.ts";
import { containErrors } from "../errors.ts";
import { encryptedColumns, type EncryptedColumn } from "../encrypted-columns.ts";
import type { GlobalLever, LeverContext } from "../lever.ts";

// Rows per step: each is a decrypt and an encrypt, so steps stay short transactions.
const STEP_ROWS = 500;

function keyring(ctx: LeverContext): Keyring {
  if (!ctx.keyring) throw containErrors.badScope("rotate-keys needs the keyring (open Bulwark with its master key)");
  return ctx.keyring;
}

/** The rows of `c` whose value holds a ciphertext (a marked value, in the rows the column names). */
function holdsCiphertext(c: EncryptedColumn) {
  const parts = [sql`${sql.ref(c.column)} is not null`];
  if (c.marker !== undefined) parts.push(sql`substr(${sql.ref(c.column)}, 1, ${c.marker.length}) = ${c.marker}`);
  if (c.onlyRows) parts.push(sql`${sql.ref(c.onlyRows.column)} in (${sql.join(c.onlyRows.values)})`);
  return sql.join(parts, sql` and `);
}

/** Where the walk is: column index, last row id done in it, and the key every value is moved to. */
type Position = [index: number, after: string, target: string];

export const rotateKeys = {
  kind: "global",
  name: "rotate-keys",
  description: "Create a new data key and re-encrypt every encrypted column under it (whole database)",
  async dryRun(db, _scope, ctx) {
    keyring(ctx);
    let values = 0;
    // Everything is under the current key now; after rotation every value moves to the new one.
    for (const c of encryptedColumns()) {
      const row = await sql<{ n: number }>`select count(*) as n from ${sql.table(c.table)} where ${holdsCiphertext(c)}`.execute(db);
      values += Number(row.rows[0]?.n ?? 0);
    }
    return { counts: { keys: 1, encryptedValues: values }, sample: encryptedColumns().map((c) => `${c.table}.${c.column}`).slice(0, 5) };
  },
  async prepare(ctx) {
    return { newDataKey: await keyring(ctx).rotateDataKey() };
  },
  async step(trx, position, ctx) {
    const ring = keyring(ctx);
    const store = keyStoreIn(trx, ctx.dialect, "rotate-keys step");
    // The worker running this step may have loaded its keys before another worker (process, node) created the
    // new one in `prepare`: its own idea of the current key would be the retired one. So every step reads the
    // key table, and the target is recorded in the job's position, so every worker moves values to one key.
    await ring.reload({ store });
    const current = ring.currentDataKeyId;
    if (current === null) throw cryptoErrors.unknownKey("(no current data key)");
    // A position written before the target was recorded ([index, after]) carries on under the current key.
    const recorded: [number, string, string?] = position ? JSON.parse(position) : [0, ""];
    let [index, after, target]: Position = [recorded[0], recorded[1], recorded[2] ?? current];
    if (target !== current) {
      // Another rotation made a newer key current meanwhile: the values already moved to `target` would stay
      // under a retired key, so the walk starts over under the new one.
      [index, after, target] = [0, "", current];
    }
    const cols = encryptedColumns();
    let reencrypted = 0;
    while (index < cols.length) {
      const c = cols[index] as (typeof cols)[number];
      const rows = await sql<{ id: string; ct: string | null }>`select ${sql.ref(c.idColumn)} as id, ${sql.ref(c.column)} as ct from ${sql.table(c.table)}
        where ${sql.ref(c.idColumn)} > ${after} and ${holdsCiphertext(c)} order by ${sql.ref(c.idColumn)} limit ${STEP_ROWS}`.execute(trx);
      if (rows.rows.length === 0) {
        index++;
        after = "";
        continue;
      }
      for (const r of rows.rows) {
        if (r.ct === null) continue;
        const marker = c.marker ?? "";
        const ct = r.ct.slice(marker.length);
        if (Keyring.keyIdOf(ct) === target) continue; // already moved (a resumed step): changes nothing twice
        const cipherCtx = { table: c.table, column: c.column, row: String(r.id) };
        // unseal reads the key table again for a key created since the step began (another node, PostgreSQL).
        const fresh = marker + (await ring.seal(await ring.unseal(ct, cipherCtx, { store }), cipherCtx, { keyId: target, store }));
        // Compare-and-set: a value rewritten meanwhile by its owner is not overwritten.
        const done = await sql`update ${sql.table(c.table)} set ${sql.ref(c.column)} = ${fresh} where ${sql.ref(c.idColumn)} = ${r.id} and ${sql.ref(c.column)} = ${r.ct}`.execute(trx);
        if (Number(done.numAffectedRows ?? 0n) === 1) reencrypted++;
      }
      const last = rows.rows[rows.rows.length - 1] as { id: string };
      const next: Position = [index, String(last.id), target];
      return { counts: { reencrypted }, next: JSON.stringify(next) };
    }
    return { counts: { reencrypted }, next: null };
  },
} satisfies GlobalLever;
