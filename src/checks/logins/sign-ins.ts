// The sign-ins `check logins` reports: the most suspicious listed in full (bounded), and every other one that got
// through named by its account and session. A stuffer shapes its decoys (sign-ins to accounts of its own) to rank
// first, so they may fill the list; they cannot push a victim's sign-in out of the finding.
import type { Database } from "../../store/database.ts";

/** Sign-ins listed in full per finding, the most suspicious first; the rest that got through are named (otherSignIns). */
export const LISTED = 100;
/**
 * Sign-ins named past the listed, per finding: bounded memory. Pushing a victim past it takes sign-ins to 10,000
 * accounts of the attacker's own (NAMED_PER_ACCOUNT each), and the finding then says its names are incomplete
 * (`otherSignInsComplete` false); `--ids-out` still writes every account.
 */
const MAX_NAMED = 100_000;
/** Sign-ins named per account and finding: one decoy account signed in to a million times from fresh browsers is not a million names. */
const NAMED_PER_ACCOUNT = 10;
/** An account changing its own address (POST /auth/email/confirm), and an administrator setting one (the way back). */
const EMAIL_CHANGED = "auth.email.changed";
const EMAIL_SET = "user.email-set";

/** What a responder does about a sign-in that may not have been its owner's (every rule's sign-ins alike). */
export const REMEDY =
  "Ask the owners of the accounts named (listed, and in otherSignIns) whether the sign-in was theirs. Where a sign-in has emailChangedAt, the account itself " +
  "changed its email address after it (a takeover completing): the email shown may be the intruder's, so do not ask it; the owner was told at the previous " +
  "address, quoting emailChangeEvent as the reference, and gets the account back with `bulwark users set-email` once checked out of band. " +
  "For the sign-ins that were not the owners', end the session named and make the password unusable: " +
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
  /** The account's address now, which is not the one it had at the sign-in when `emailChangedAt` is set. */
  email: string | null;
  at: string;
  ip: string | null;
  sessionId: string | null;
  newDevice: boolean | null;
  failuresBefore: number | null;
  /** From an address that failed on many accounts in the window (a list being worked through). */
  fromSprayingAddress: boolean;
  /**
   * When the account itself first changed its email address (`auth.email.changed`) at or after the sign-in, unless an
   * administrator set it since (`user.email-set`): after a takeover the intruder moves the account to its own mailbox.
   */
  emailChangedAt: string | null;
  /** That change's audit event: the reference the previous address was told to quote. */
  emailChangeEvent: string | null;
}

/** A reported sign-in not listed in full: its account, the session to end, when, and whether the account moved since. */
export interface NamedSignIn {
  userId: string;
  sessionId: string | null;
  at: string;
  emailChangedAt: string | null;
}

/**
 * How suspicious a sign-in is, 0 to 7: from a spraying address weighs most (its password came from a list), then a
 * run of failures before it (a guess), then a browser new to the account.
 */
function suspicion(s: SignIn, streak: number): number {
  return (s.fromSprayingAddress ? 4 : 0) + (s.failuresBefore !== null && s.failuresBefore >= streak ? 2 : 0) + (s.newDevice === true ? 1 : 0);
}

/** A sign-in kept for the list, and its name among the named when it got through. */
interface Kept {
  signIn: SignIn;
  named: NamedSignIn | null;
}

/**
 * A count of sign-ins, the LISTED most suspicious of them (the earliest first among equals), and the name of every one
 * that got through (a browser new to its account, or after a run of failures), in bounded memory.
 */
export class SignInList {
  count = 0;
  readonly #byScore: Kept[][] = Array.from({ length: 8 }, () => []);
  readonly #streak: number;
  readonly #named: NamedSignIn[] = [];
  readonly #namedPerAccount = new Map<string, number>();
  #namedCut = false;

  /** `streak`: the failures in a row that make a sign-in a guess that may have worked (suspicion). */
  constructor(streak: number) {
    this.#streak = streak;
  }

  add(signIn: SignIn): void {
    this.count++;
    let named: NamedSignIn | null = null;
    if (signIn.newDevice === true || (signIn.failuresBefore ?? 0) >= this.#streak) {
      const n = this.#namedPerAccount.get(signIn.userId) ?? 0;
      if (n >= NAMED_PER_ACCOUNT || this.#named.length >= MAX_NAMED) this.#namedCut = true;
      else {
        named = { userId: signIn.userId, sessionId: signIn.sessionId, at: signIn.at, emailChangedAt: null };
        this.#named.push(named);
        this.#namedPerAccount.set(signIn.userId, n + 1);
      }
    }
    const kept = this.#byScore[suspicion(signIn, this.#streak)]!;
    if (kept.length < LISTED) kept.push({ signIn, named });
  }

  /** The LISTED most suspicious, the most suspicious first. */
  items(): SignIn[] {
    return this.#byScore.toReversed().flat().slice(0, LISTED).map((k) => k.signIn);
  }

  /** The LISTED most suspicious across `lists` (each already ordered), for a finding that sums several. */
  static merge(lists: readonly SignInList[]): SignIn[] {
    return Array.from({ length: 8 }, (_, i) => 7 - i).flatMap((score) => lists.flatMap((l) => l.#byScore[score]!)).slice(0, LISTED).map((k) => k.signIn);
  }

  /**
   * For a finding's evidence: every sign-in of `lists` that got through and is not among `listed`, by its account and
   * session (in the log's order), and whether a bound left some unnamed (their accounts are in `--ids-out` all the same).
   */
  static others(lists: readonly SignInList[], listed: readonly SignIn[]): { otherSignIns: NamedSignIn[]; otherSignInsComplete: boolean } {
    const shown = new Set(listed);
    const skip = new Set<NamedSignIn>();
    for (const l of lists) for (const k of l.#byScore.flat()) if (k.named !== null && shown.has(k.signIn)) skip.add(k.named);
    const otherSignIns: NamedSignIn[] = [];
    let complete = lists.every((l) => !l.#namedCut);
    for (const l of lists) {
      for (const n of l.#named) {
        if (skip.has(n)) continue;
        if (otherSignIns.length >= MAX_NAMED) complete = false;
        else otherSignIns.push(n);
      }
    }
    return { otherSignIns, otherSignInsComplete: complete };
  }

  /** "ana@example.org (usr_…) at … from …, session ses_…" for each sign-in, and the change of address after it. */
  static describe(signIns: readonly SignIn[]): string {
    return signIns.map((s) => `${s.email ?? "?"} (${s.userId}) at ${s.at} from ${s.ip ?? "?"}${s.sessionId ? `, session ${s.sessionId}` : ""}` +
      (s.emailChangedAt !== null ? `, after which the account itself changed its email address (${s.emailChangedAt}, event ${s.emailChangeEvent ?? "?"}): a takeover completing, the address shown may be the intruder's` : "")).join("; ");
  }

  /**
   * Fills in the email of every kept sign-in's account (one query; at most a few thousand ids), and marks the kept and
   * named sign-ins after which their account changed its own address (one read of such changes since the earliest).
   */
  static async fillEmails(database: Database, lists: readonly SignInList[]): Promise<void> {
    const kept = lists.flatMap((l) => l.#byScore.flat().map((k) => k.signIn));
    const byId = await emailsOf(database, [...new Set(kept.map((s) => s.userId))]);
    for (const s of kept) if (byId.has(s.userId)) s.email = byId.get(s.userId) ?? null;
    const marked: Array<SignIn | NamedSignIn> = [...kept];
    for (const l of lists) for (const n of l.#named) marked.push(n);
    if (marked.length === 0) return;
    let from = Infinity;
    for (const s of marked) from = Math.min(from, Date.parse(s.at));
    const changes = await addressChanges(database, new Set(marked.map((s) => s.userId)), from);
    if (changes.size === 0) return;
    for (const s of marked) {
      const change = changes.get(s.userId)?.find((c) => c.at >= Date.parse(s.at));
      if (change === undefined) continue;
      s.emailChangedAt = new Date(change.at).toISOString();
      if ("emailChangeEvent" in s) s.emailChangeEvent = change.id;
    }
  }
}

/**
 * The changes of address each of `accounts` made itself (`auth.email.changed`) at or after `from`, in time order, read
 * by pages in the log's order with no upper bound (the intruder may move the account after the window). An account an
 * administrator set an address to after its last such change (`user.email-set`, the way back) has none: its address is
 * the one the administrator checked.
 */
async function addressChanges(database: Database, accounts: ReadonlySet<string>, from: number): Promise<Map<string, Array<{ at: number; id: string }>>> {
  const changes = new Map<string, Array<{ at: number; id: string }>>();
  const setByAdministrator = new Map<string, number>();
  let after = 0;
  for (;;) {
    const rows = await database.db.selectFrom("audit_events").select(["seq", "id", "type", "subject", "at"])
      .where("type", "in", [EMAIL_CHANGED, EMAIL_SET]).where("at", ">=", from).where("seq", ">", after).orderBy("seq").limit(5000).execute();
    for (const r of rows) {
      if (!accounts.has(r.subject)) continue;
      if (r.type === EMAIL_SET) setByAdministrator.set(r.subject, Math.max(setByAdministrator.get(r.subject) ?? 0, Number(r.at)));
      else {
        const list = changes.get(r.subject) ?? [];
        list.push({ at: Number(r.at), id: r.id });
        changes.set(r.subject, list);
      }
    }
    if (rows.length < 5000) break;
    after = Number(rows.at(-1)!.seq);
  }
  for (const [id, list] of changes) {
    list.sort((a, b) => a.at - b.at);
    if ((setByAdministrator.get(id) ?? -1) >= list.at(-1)!.at) changes.delete(id);
  }
  return changes;
}
