// What a node does on its own between requests, for the tests that watch it: one maintenance pass (a running server
// makes one every 15 minutes), and the reset links it queued (read back through its keyring).
import type { AuthFixture } from "../../src/http/auth/test-client.ts";
import { startMaintenance } from "../../src/http/maintenance.ts";
import { RESET_LINK } from "./auth-flows.ts";

const HOUR = 3_600_000;

/** One maintenance pass on each of `nodes`, in order; what the last one removed, by step. */
export async function maintenancePass(...nodes: AuthFixture[]): Promise<Record<string, number>> {
  let removed: Record<string, number> = {};
  for (const n of nodes) {
    const m = startMaintenance(n.app, { intervalMs: HOUR, firstPassDelayMs: HOUR });
    try {
      removed = await m.runOnce();
    } finally {
      await m.stop();
    }
  }
  return removed;
}

/** The reset-link tokens queued for `address` in `fx`'s outbox (opened through its keyring). */
export async function queuedResetLinks(fx: AuthFixture, address: string): Promise<string[]> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select("id").where("kind", "=", "account.password-reset-link").where("to_address", "=", address).execute();
  const tokens: string[] = [];
  for (const r of rows) {
    const token = RESET_LINK.exec((await fx.app.accounts.outbox.get(r.id)).text)?.[1];
    if (token !== undefined) tokens.push(token);
  }
  return tokens;
}
