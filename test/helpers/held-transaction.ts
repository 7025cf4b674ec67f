// A transaction held open on purpose: what another request's transaction looks like while it is in flight (a grant
// holding its lock, a row inserted and not yet committed), for tests that make a race happen in a known order.
import type { Kysely } from "kysely";
import type { Database } from "../../src/store/database.ts";
import type { Schema } from "../../src/store/schema.ts";

/**
 * Opens a transaction on `database`, runs `work` in it, and keeps it open until `commit` is called; resolves once
 * `work` is done (its locks held, its rows written). `commit` lets the transaction end and waits for it.
 *
 * @example
 * const grant = await holdOpen(app.db, (trx) => holdGrantsTo(app.db, trx, userId));
 * const change = call(…); // waits on the lock
 * await grant.commit();
 */
export async function holdOpen(database: Database, work: (trx: Kysely<Schema>) => Promise<unknown>): Promise<{ commit: () => Promise<void> }> {
  let release = (): void => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let ready = (): void => {};
  let failed = (_: unknown): void => {};
  const started = new Promise<void>((resolve, reject) => ((ready = resolve), (failed = reject)));
  const done = database.transaction(async (trx) => {
    await work(trx);
    ready();
    await released;
  });
  done.catch(failed);
  await started;
  return {
    async commit() {
      release();
      await done;
    },
  };
}
