// The sign-ins `check logins` lists: bounded, the most suspicious first, so a stuffer's decoys — sign-ins to accounts of
// its own from fresh browsers, made to fill the list — never push a victim's session out of it.
import type { Database } from "../../store/database.ts";

/** Sign-ins listed per finding; the rest are counted (and every account is in `--ids-out`). */
export const LISTED = 100;

/** What a responder does about a sign-in that may not have been its owner's (every rule's sign-ins alike). */
export const REMEDY =
  "Ask the owners of the accounts listed whether the sign-in was theirs; for those that were not, end the session named and make the password unusable: " +
  "`bulwark check logins --ids-out FILE` writes every reported account's id (not only those listed), then " +
  "`bulwark contain revoke-sessions invalidate-passwords --ids FILE --dry-run`, and without --dry-run.";

/** The email of each of `ids` that names an account (500 a query). */
export async function emailsOf(database: Database, ids: readonly string[]): Promise<Map<string, string>> {
  const emails = new Map<string, string>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await database.db.selectFrom("users").select(["id", "email"]).where("id", "in", ids.slice(i, i + 500)).execute();
    for (const r of rows) emails.set(r.id, r.email);
  }
  return emails;
}

/** One sign-in as a responder acts on it. */
export interface SignIn {
  userId: string;
  email: string | null;
  at: string;
  ip: string | null;
  sessionId: string | null;
  newDevice: boolean | null;
  failuresBefore: number | null;
  /** From an address that failed on many accounts in the window (a list being worked through). */
  fromSprayingAddress: boolean;
}

/**
 * How suspicious a sign-in is, 0 to 7: from a spraying address weighs most (its password came from a list), then a
 * run of failures before it (a guess), then a browser new to the account.
 */
function suspicion(s: SignIn, streak: number): number {
  return (s.fromSprayingAddress ? 4 : 0) + (s.failuresBefore !== null && s.failuresBefore >= streak ? 2 : 0) + (s.newDevice === true ? 1 : 0);
}

/** A count of sign-ins and the LISTED most suspicious of them (the earliest first among equals), in bounded memory. */
export class SignInList {
  count = 0;
  readonly #byScore: SignIn[][] = Array.from({ length: 8 }, () => []);
  readonly #streak: number;

  /** `streak`: the failures in a row that make a sign-in a guess that may have worked (suspicion). */
  constructor(streak: number) {
    this.#streak = streak;
  }

  add(signIn: SignIn): void {
    this.count++;
    const kept = this.#byScore[suspicion(signIn, this.#streak)]!;
    if (kept.length < LISTED) kept.push(signIn);
  }

  /** The LISTED most suspicious, the most suspicious first. */
  items(): SignIn[] {
    return this.#byScore.toReversed().flat().slice(0, LISTED);
  }

  /** The LISTED most suspicious across `lists` (each already ordered), for a finding that sums several. */
  static merge(lists: readonly SignInList[]): SignIn[] {
    return Array.from({ length: 8 }, (_, i) => 7 - i).flatMap((score) => lists.flatMap((l) => l.#byScore[score]!)).slice(0, LISTED);
  }

  /** "ana@example.org (usr_…) at … from …, session ses_…" for each sign-in. */
  static describe(signIns: readonly SignIn[]): string {
    return signIns.map((s) => `${s.email ?? "?"} (${s.userId}) at ${s.at} from ${s.ip ?? "?"}${s.sessionId ? `, session ${s.sessionId}` : ""}`).join("; ");
  }

  /** Fills in the email of every kept sign-in's account (one query; at most a few thousand ids). */
  static async fillEmails(database: Database, lists: readonly SignInList[]): Promise<void> {
    const kept = lists.flatMap((l) => l.#byScore.flat());
    const byId = await emailsOf(database, [...new Set(kept.map((s) => s.userId))]);
    for (const s of kept) if (byId.has(s.userId)) s.email = byId.get(s.userId) ?? null;
  }
}
