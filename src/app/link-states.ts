// What the outbox asks before it sends a link mail (OutboxDeps.linkStates): whether the link the mail carries still
// works, judged as the link's own service judges a presented token's row (reset-service.ts and email-change-service.ts
// `look`, checkResetRow / checkEmailChangeRow: missing, used, dated ahead, expired), without the secret, which only the
// mail holds. Every way a link is spent early (its use or a sibling's, a password change or reset, an address change, a
// containment, a newer email-change request) marks its row used. An email-change link is also ended for good, without a
// write to its row, by the account's revocation stamp raised after it was asked for (a help desk's sign-out, a lock and
// its unlock, a containment's revoke-sessions: the service's accountRefusal, "sessions-revoked-since"): judged here too,
// and so is the address it moves to, taken meanwhile by another account (an administrator's create, an import, another
// account's confirmed change): confirm refuses it as taken, unless only an unfinished sign-up holds it, which confirm
// takes over (addressHolders; sign-up-shell.ts). The rest of accountRefusal needs no read here: disabling (an import)
// ends the account's sessions, raising the stamp; a password invalidated or changed spends the links. A lock in force
// is not judged for itself, as a lock is undone (its lock and unlock raise the stamp, above). Wired here because the
// outbox (src/notify) may not import the accounts modules (docs/ARCHITECTURE.md).
import type { Kysely } from "kysely";
import { linkRowRefusal, type LinkRow } from "../crypto/link-token.ts";
import type { Clock } from "../lib/clock.ts";
import type { LinkState, LinkStates } from "../notify/outbox.ts";
import type { Schema } from "../store/schema.ts";
import { GLOBAL_SCOPE, refusedBy, stampOf, userScope } from "../accounts/sessions/revocation.ts";
import { addressHoldersOfMany } from "../accounts/email-change/sign-up-shell.ts";

/** The id prefixes of the link stores (src/accounts/password-reset/token.ts, src/accounts/email-change/token.ts). */
const RESET_LINK = "prt_";
const EMAIL_CHANGE_LINK = "ect_";

/** A link row's own state, as the link's check judges it after the secret (linkRowRefusal). */
function rowState(row: Omit<LinkRow, "secret_hash">, now: number, aheadToleranceMs: number): LinkState {
  const refusal = linkRowRefusal(row, now, aheadToleranceMs);
  return refusal === null ? "open" : refusal === "future-dated" ? "refused" : refusal;
}

/**
 * The outbox's linkStates over `db`: one read by primary key of each store the ids name (none for a store none of them
 * is in); an id of no store here is left out, so its mail dies as a link no store holds (a new link kind must be added
 * here). `aheadToleranceMs`: the services' own (datedAheadToleranceFor), so a link they would refuse as dated ahead is
 * not sent either.
 *
 * @example
 * const outbox = new Outbox({ database, clock, random, linkStates: linkStatesIn(database.db, clock, datedAheadToleranceMs) });
 */
export function linkStatesIn(db: Kysely<Schema>, clock: Clock, aheadToleranceMs: number): LinkStates {
  return async (ids) => {
    const now = clock.now();
    const states = new Map<string, LinkState>();
    const resets = ids.filter((id) => id.startsWith(RESET_LINK));
    if (resets.length > 0) {
      const rows = await db.selectFrom("password_reset_tokens").select(["id", "used_at", "created_at", "expires_at"]).where("id", "in", resets).execute();
      for (const row of rows) states.set(row.id, rowState(row, now, aheadToleranceMs));
    }
    const changes = ids.filter((id) => id.startsWith(EMAIL_CHANGE_LINK));
    if (changes.length > 0) {
      const rows = await db.selectFrom("email_change_tokens").select(["id", "user_id", "new_email", "used_at", "created_at", "expires_at", "issued_epoch"]).where("id", "in", changes).execute();
      for (const row of rows) states.set(row.id, rowState(row, now, aheadToleranceMs));
      // The global stamp and each account's, in one read, for the links still open by their rows.
      const open = rows.filter((row) => states.get(row.id) === "open");
      const scopes = [GLOBAL_SCOPE, ...new Set(open.map((row) => userScope(row.user_id)))];
      const stamps = open.length === 0 ? [] : await db.selectFrom("revocation_stamps").select(["scope", "not_before", "not_before_epoch"]).where("scope", "in", scopes).execute();
      const stampFor = (userId: string) => stampOf(stamps.filter((st) => st.scope === GLOBAL_SCOPE || st.scope === userScope(userId)).map((st) => ({ time: st.not_before, epoch: st.not_before_epoch })));
      for (const row of open) {
        if (refusedBy(stampFor(row.user_id), Number(row.created_at), Number(row.issued_epoch))) states.set(row.id, "revoked");
      }
      // The addresses of those still open, as confirm judges them (at most two reads of the accounts for the batch).
      const unrefused = open.filter((row) => states.get(row.id) === "open");
      const holders = await addressHoldersOfMany(db, unrefused.map((row) => ({ userId: row.user_id, address: row.new_email })));
      unrefused.forEach((row, i) => {
        if (!holders[i]!.free) states.set(row.id, "taken");
      });
    }
    return states;
  };
}
