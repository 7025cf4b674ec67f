// Recovery codes (lookup secrets): ten single-use codes of 120 random bits each, shown once and stored only
// as SHA-256, so a copy of the database reveals none. Attempts are rate-limited per user.
import type { Kysely } from "kysely";
import { constantTimeEqualString } from "../../crypto/constant-time.ts";
import { base32, hashSecret, newId } from "../../crypto/tokens.ts";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import { executorDialect, lockKeyOf, serialiseTransactions } from "../../store/database.ts";
import type { FloodControl } from "../flood/flood.ts";
import { factorRef, floodIdentifier, RECOVERY_CODE_BYTES, RECOVERY_CODE_COUNT, spendNow, type FactorProveOptions, type FactorRemovalOptions, type Proven } from "./policy.ts";
import type { MfaRecoveryCodesTable, Schema } from "../../store/schema.ts";

export type RecoveryVerdict = "ok" | "invalid" | "throttled";

export interface RecoveryCodes {
  /** Fresh single-use codes replacing any old ones. Shown once: only their hashes are kept. */
  /**
   * `first` runs at the start of the transaction, before the old codes are touched (the route checks there that the
   * session asking is still live, waiting for a containment holding the account, in the order a batch takes its locks).
   */
  generate(userId: string, options?: FactorRemovalOptions): Promise<string[]>;
  /** Uses a code up; true once per code. Same as `verify(...) === "ok"`. */
  consume(userId: string, code: string): Promise<boolean>;
  /** Like consume, but tells a throttled attempt apart (for a 429 with Retry-After). */
  verify(userId: string, code: string): Promise<RecoveryVerdict>;
  /**
   * Checks a code without using it up: the proof's `spend` does, in the caller's transaction (FactorProof). The guess
   * counts on `options.counter` ("sign-in" by default; "reset" for a code sent with a reset link), and the proof's
   * `settle` clears that counter only.
   */
  prove(userId: string, code: string, options?: FactorProveOptions): Promise<Proven<Exclude<RecoveryVerdict, "ok">>>;
  /** Unused codes left. */
  /** Unused codes of `userId`, read with `executor` (a caller's transaction) when given. */
  remaining(userId: string, executor?: Kysely<Schema>): Promise<number>;
}

/** base32 characters per code: 120 bits / 5 bits per character. */
const CODE_CHARS = Math.ceil((RECOVERY_CODE_BYTES * 8) / 5);
const CODE_PATTERN = new RegExp(`^[a-z2-7]{${CODE_CHARS}}$`);

/** Groups of four for reading aloud and typing: "abcd-efgh-…". */
function format(raw: string): string {
  return raw.match(/.{1,4}/g)!.join("-");
}

/** The canonical form that is hashed: case, spaces and dashes do not matter when typing a code back. */
export function normaliseRecoveryCode(code: unknown): string | null {
  if (typeof code !== "string" || code.length > 2 * CODE_CHARS) return null;
  const raw = code.replace(/[\s-]/g, "").toLowerCase();
  return CODE_PATTERN.test(raw) ? raw : null;
}

/** Builds the recovery-code factor over mfa_recovery_codes. */
export function createRecoveryCodes(deps: { db: Kysely<Schema>; clock: Clock; random: RandomSource; flood: FloodControl }): RecoveryCodes {
  const { db, clock, random, flood } = deps;

  async function prove(userId: string, code: string, options: FactorProveOptions = {}): Promise<Proven<Exclude<RecoveryVerdict, "ok">>> {
    // A reset link's guesses count apart from the sign-in's (FactorCounter): its holder may have only the mailbox.
    const attempt = { identifier: floodIdentifier("recovery", userId, options.counter), ip: null };
    // Counted from the start (FloodControl.begin), so parallel guesses count each other.
    const begun = await flood.begin(attempt);
    if (!begun.allowed) return { ok: false, refusal: "throttled" };
    const raw = normaliseRecoveryCode(code);
    // Hash whatever came in, so a malformed code costs the same as a well-formed wrong one.
    const presented = hashSecret(raw ?? String(code).slice(0, 2 * CODE_CHARS));
    const rows = await db.selectFrom("mfa_recovery_codes").select(["id", "code_hash"]).where("user_id", "=", userId).where("used_at", "is", null).execute();
    let matched: string | null = null;
    // Compare against every unused code without stopping early (ASVS 11.2.4): which position matched is not leaked.
    for (const row of rows) {
      if (constantTimeEqualString(presented, row.code_hash) && raw !== null) matched = row.id;
    }
    if (matched === null) return { ok: false, refusal: "invalid" };
    const id = matched;
    return {
      ok: true,
      proof: {
        factor: factorRef.recoveryCode,
        async spend(executor) {
          // Single use even under concurrency: only the request that flips used_at from NULL wins (ASVS 6.5.1).
          const result = await executor.updateTable("mfa_recovery_codes").set({ used_at: clock.now() }).where("id", "=", id).where("used_at", "is", null).executeTakeFirst();
          return Number(result.numUpdatedRows) === 1;
        },
        settle: () => flood.succeeded(begun.ticket),
        release: () => flood.release(begun.ticket),
      },
    };
  }

  async function verify(userId: string, code: string): Promise<RecoveryVerdict> {
    return spendNow(await prove(userId, code), db, "invalid");
  }

  return {
    async generate(userId, options = {}) {
      const now = clock.now();
      const codes: string[] = [];
      const rows: MfaRecoveryCodesTable[] = [];
      for (let i = 0; i < RECOVERY_CODE_COUNT; i++) {
        const raw = base32(random.bytes(RECOVERY_CODE_BYTES));
        codes.push(format(raw));
        rows.push({ id: newId("rcv", random), user_id: userId, code_hash: hashSecret(raw), created_at: now, used_at: null });
      }
      // Old codes die in the same transaction that creates the new ones: never two live sets, never none.
      await db.transaction().execute(async (trx) => {
        await options.first?.(trx);
        // One regeneration of a user's codes at a time. On PostgreSQL (READ COMMITTED) a second regeneration's
        // DELETE cannot see the first's set, inserted and not yet committed, and both sets of ten stayed live (two
        // tabs, or the owner and a session thief); in turn, the second deletes the first's committed set. SQLite's
        // write transaction already holds the database's one write lock from BEGIN IMMEDIATE.
        await serialiseTransactions({ dialect: executorDialect(trx) }, trx, lockKeyOf(`recovery-codes:${userId}`));
        await trx.deleteFrom("mfa_recovery_codes").where("user_id", "=", userId).execute();
        await trx.insertInto("mfa_recovery_codes").values(rows).execute();
        await options.within?.(trx);
      });
      return codes;
    },
    async consume(userId, code) {
      return (await verify(userId, code)) === "ok";
    },
    verify,
    prove,
    async remaining(userId, executor = db) {
      const row = await executor
        .selectFrom("mfa_recovery_codes")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("user_id", "=", userId)
        .where("used_at", "is", null)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
