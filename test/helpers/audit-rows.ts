// A migrated store whose audit log is written row by row, as the login path would have written its events (canonical
// data, one row per attempt), without the chain: for the tests of `check logins`, which reads events and never
// verifies them, so that thousands of attempts cost a few statements.
import { canonicalJSON } from "../../src/audit/canonical.ts";
import { ManualClock } from "../../src/lib/clock.ts";
import type { Database } from "../../src/store/database.ts";
import { migrate } from "../../src/store/migrator.ts";
import type { DialectFixture } from "./dialects.ts";

export interface AuditRow {
  type: string;
  subject: string;
  at: number;
  data: Record<string, unknown>;
}

/**
 * A fresh, migrated store of `dialect` (migrated at `migratedAt`) and an appender of raw audit rows, 500 a statement;
 * ids are `evt_<idPrefix><seq>`.
 *
 * @example
 * const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "rt");
 * await insert([{ type: "auth.login.failed", subject: "id:x", at: T0, data: { ip: "192.0.2.1", reason: "unknown-account" } }]);
 */
export async function rawAuditStore(dialect: DialectFixture, migratedAt: number, idPrefix: string): Promise<{ database: Database; insert: (rows: AuditRow[]) => Promise<void> }> {
  const database = await dialect.fresh();
  await migrate(database, new ManualClock(migratedAt));
  let seq = 0;
  const insert = async (rows: AuditRow[]): Promise<void> => {
    for (let i = 0; i < rows.length; i += 500) {
      const values = rows.slice(i, i + 500).map((r) => {
        seq++;
        return {
          seq, id: `evt_${idPrefix}${seq}`, type: r.type, actor: r.type === "auth.login.succeeded" ? r.subject : "anonymous", subject: r.subject,
          data: canonicalJSON(r.data), at: r.at, request_id: `req${seq}`, prev_hash: "0".repeat(64), hash: seq.toString(16).padStart(64, "0"),
        };
      });
      await database.db.insertInto("audit_events").values(values).execute();
    }
  };
  return { database, insert };
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const BROWSER = "Mozilla/5.0 (X11; Linux x86_64)";

/** A failed login as POST /auth/login records it: an identifier naming no account (`id:…`), or a wrong password. */
export const failedLoginRow = (subject: string, at: number, ip: string): AuditRow => ({
  type: "auth.login.failed", subject, at, data: { ip, reason: subject.startsWith("id:") ? "unknown-account" : "wrong-password", userAgent: BROWSER },
});

/** A sign-in as POST /auth/login records it, with the session it made. */
export const signInRow = (userId: string, at: number, ip: string, o: { newDevice: boolean; failuresBefore: number; session: string }): AuditRow => ({
  type: "auth.login.succeeded", subject: userId, at,
  data: { ip, userAgent: BROWSER, rehashed: false, fromScheme: "argon2id", mustChangePassword: false, failuresBefore: o.failuresBefore, sessionId: o.session, newDevice: o.newDevice },
});

/** Two mistyped logins an hour on identifiers that name no account (minutes 7 and 37), over [from, to): a site's usual rate. */
export function quietHours(from: number, to: number): AuditRow[] {
  const rows: AuditRow[] = [];
  for (let h = from; h < to; h += HOUR) {
    const net = `100.71.${Math.floor(h / HOUR) % 256}`;
    rows.push(failedLoginRow(`id:q${h}a`, h + 7 * MINUTE, `${net}.1`), failedLoginRow(`id:q${h}b`, h + 37 * MINUTE, `${net}.2`));
  }
  return rows;
}

/** The sum of a map's values (typosByBucket's counts). */
export const sumOf = (m: ReadonlyMap<unknown, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

/** A botnet: each failure on an account of its own (`id:` when `unknown`) from an address of its own. */
export function botnet(prefix: string, unknown = false): (at: number) => AuditRow {
  let i = 0;
  return (at) => {
    i++;
    return failedLoginRow(`${unknown ? "id:" : "usr_"}${prefix}${i}`, at, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  };
}

/** `n` failures spread evenly over the hour starting at `hour` (from its 30th second to its last minute). */
export const spread = (hour: number, n: number, one: (at: number) => AuditRow): AuditRow[] =>
  Array.from({ length: n }, (_, j) => one(hour + 30_000 + Math.floor((j * (HOUR - 60_000)) / n)));

/** A typo: the failure, and the account's own sign-in `after` ms later from `signInIp` (its address unless given) and a known browser. */
export const typo = (user: string, at: number, ip: string, session: string, after = 30_000, signInIp = ip): AuditRow[] =>
  [failedLoginRow(user, at, ip), signInRow(user, at + after, signInIp, { newDevice: false, failuresBefore: 1, session })];
