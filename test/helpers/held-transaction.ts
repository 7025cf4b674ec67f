// A transaction held open on purpose: what another request's transaction looks like while it is in flight (a grant
// holding its lock, a row inserted and not yet committed), for tests that make a race happen in a known order; and a
// revocation held open at a known point while another node's request runs (heldAt).
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { LightMyRequestResponse } from "fastify";
import { sql, type Kysely } from "kysely";
import type { AuthFixture } from "../../src/http/auth/test-client.ts";
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

/** How many lock requests PostgreSQL has waiting now (on the private cluster every waiter is a test's own). */
export async function waitingLocks(fx: AuthFixture): Promise<number> {
  const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM pg_locks WHERE NOT granted`.execute(fx.app.db.db);
  return Number(rows[0]?.n ?? 0);
}

/** Polls `done` every 20 ms for at most `ms`; true once it held. Never hangs: a fix may make a party wait elsewhere. */
export async function until(done: () => Promise<boolean>, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
}

/**
 * Runs `revoke` on node `a` with its transaction held open at its audit append of `type` (after it raised its stamp
 * and, where it does, deleted the rows; before it commits) while `during` starts a request, until `settled` (by
 * default: the request answered, or something waits on a lock; at most 3 s). Restores the append afterwards. Returns
 * what `revoke` returned, the request, and whether the request was still unanswered when the revocation went on.
 *
 * @example
 * const { request, waited } = await heldAt(a, "user.sessions-revoked", () => thief.request("POST", "/auth/email/change", …), () => revokeSessions());
 */
export async function heldAt<T>(
  a: AuthFixture, type: string, during: () => Promise<LightMyRequestResponse>, revoke: () => Promise<T>,
  settled?: (request: Promise<LightMyRequestResponse>) => Promise<unknown>,
): Promise<{ revoked: T; request: Promise<LightMyRequestResponse>; waited: boolean }> {
  const audit = a.app.audit;
  const appendIn = audit.appendIn.bind(audit);
  let request: Promise<LightMyRequestResponse> | undefined;
  let waited = false;
  audit.appendIn = async (executor, input) => {
    if (input.type === type && request === undefined) {
      const started = during();
      request = started;
      let answered = false;
      void started.finally(() => (answered = true)).catch(() => undefined);
      await (settled ? settled(started) : until(async () => answered || (await waitingLocks(a)) > 0));
      waited = !answered;
    }
    return appendIn(executor, input);
  };
  try {
    const revoked = await revoke();
    assert.ok(request, `the revocation reached its ${type} record`);
    return { revoked, request, waited };
  } finally {
    audit.appendIn = appendIn;
  }
}
