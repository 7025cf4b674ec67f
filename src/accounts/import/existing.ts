// The accounts an import batch meets: which stored accounts hold a row's email, username or (source, external
// id), and why a row cannot be written against them. Both passes use it — validation (the dry run's verdict) and
// each batch's transaction — so the dry run predicts the real run. An address held only by an unfinished sign-up of
// that very address (sign-up-shell.ts) is free to the row: the batch removes the sign-up and makes the row's account.
import type { Kysely } from "kysely";
import type { Schema } from "../../store/schema.ts";
import { isUnfinishedSignUp } from "../email-change/sign-up-shell.ts";
import type { ImportRow } from "./mapping.ts";

export type OnConflict = "skip" | "update" | "fail";

export interface Existing {
  id: string;
  emailKey: string;
  usernameKey: string | null;
  emailSkeleton: string | null;
  usernameSkeleton: string | null;
  passwordHash: string | null;
  /** The legacy link it holds, if any: an update never moves it to another source or id. */
  external: { source: string; id: string } | null;
}

/** Key of a legacy id in `byExternal`: the same id under another source is another account's business. */
const externalKey = (source: string, id: string): string => `${source}\u0000${id}`;

/**
 * The existing accounts that hold any email, username or (source, external id) of `rows`, each indexed only by
 * what it actually holds. Rows are fetched by any of the three, so an account found by its email may carry an
 * external id of another source: indexing that under the id alone made it "this source's owner" of the id, and
 * the verdict on an unrelated row depended on which rows shared its batch (dry run and real run disagreed).
 */
export async function lookup(db: Kysely<Schema>, rows: ImportRow[]): Promise<Found> {
  const emails = rows.map((r) => r.emailKey);
  const wanted = new Set(emails);
  const usernames = rows.flatMap((r) => (r.usernameKey ? [r.usernameKey] : []));
  const emailSkeletons = rows.map((r) => r.emailSkeleton);
  const usernameSkeletons = rows.flatMap((r) => (r.usernameSkeleton ? [r.usernameSkeleton] : []));
  const externals = rows.flatMap((r) => (r.user.externalId ? [r.user.externalId] : []));
  const source = rows.find((r) => r.user.externalSource)?.user.externalSource ?? "";
  const found = await db
    .selectFrom("users")
    .select(["id", "email_key", "username_key", "email_skeleton", "username_skeleton", "external_source", "external_id", "password_hash"])
    .where((eb) => {
      const ors = [eb("email_key", "in", emails), eb("email_skeleton", "in", emailSkeletons)];
      if (usernames.length) ors.push(eb("username_key", "in", usernames), eb("username_skeleton", "in", usernameSkeletons));
      if (externals.length) ors.push(eb.and([eb("external_source", "=", source), eb("external_id", "in", externals)]));
      return eb.or(ors);
    })
    .execute();
  const byEmail = new Map<string, Existing>();
  const signUps = new Map<string, Existing>();
  const byUsername = new Map<string, Existing>();
  const byExternal = new Map<string, Existing>();
  const byEmailSkeleton = new Map<string, Existing[]>();
  const byUsernameSkeleton = new Map<string, Existing[]>();
  const add = (map: Map<string, Existing[]>, skeleton: string, e: Existing): void => {
    map.set(skeleton, [...(map.get(skeleton) ?? []), e]);
  };
  for (const f of found) {
    const external = f.external_source !== null && f.external_id !== null ? { source: f.external_source, id: f.external_id } : null;
    const e = { id: f.id, emailKey: f.email_key, usernameKey: f.username_key, emailSkeleton: f.email_skeleton, usernameSkeleton: f.username_skeleton, passwordHash: f.password_hash, external };
    // An unfinished sign-up (POST /auth/register, never finished: anyone may start one for any address) of a row's own
    // address holds it against no one (as for createOverSignUps): `users create` took such an address while the import
    // refused it, and an outsider who knew who was about to be migrated stopped the whole migration, or under skip and
    // update kept the victim's account password-less. Only those without a password are asked (one or two reads each).
    if (f.password_hash === null && wanted.has(f.email_key) && (await isUnfinishedSignUp(db, f.id))) signUps.set(f.email_key, e);
    else byEmail.set(f.email_key, e);
    if (f.username_key) byUsername.set(f.username_key, e);
    if (f.email_skeleton) add(byEmailSkeleton, f.email_skeleton, e);
    if (f.username_skeleton) add(byUsernameSkeleton, f.username_skeleton, e);
    if (f.external_source !== null && f.external_id !== null) byExternal.set(externalKey(f.external_source, f.external_id), e);
  }
  return { byEmail, signUps, byUsername, byExternal, byEmailSkeleton, byUsernameSkeleton };
}

/**
 * The holder of `row`'s address as `db` sees it now, written into `found` in place of the unfinished sign-up the batch
 * could not remove (finished through its link meanwhile: a password now, a real account, which keeps the address; or
 * gone). The row then meets that holder as it meets any stored account (refused, skipped or updated), or none.
 */
export async function holderNow(db: Kysely<Schema>, found: Found, row: ImportRow): Promise<Existing | undefined> {
  const squat = found.signUps.get(row.emailKey);
  found.signUps.delete(row.emailKey);
  if (squat?.emailSkeleton) found.byEmailSkeleton.set(squat.emailSkeleton, (found.byEmailSkeleton.get(squat.emailSkeleton) ?? []).filter((e) => e !== squat));
  const now = await lookup(db, [row]);
  const holder = now.byEmail.get(row.emailKey) ?? now.signUps.get(row.emailKey);
  if (holder === undefined) return undefined;
  found.byEmail.set(row.emailKey, holder);
  if (holder.emailSkeleton) found.byEmailSkeleton.set(holder.emailSkeleton, [...(found.byEmailSkeleton.get(holder.emailSkeleton) ?? []), holder]);
  return holder;
}

/** The stored accounts a batch meets, by each thing a row can collide on. */
export interface Found {
  /** The accounts holding a row's email, but for unfinished sign-ups (below). */
  byEmail: Map<string, Existing>;
  /** The unfinished sign-ups holding a row's email (isUnfinishedSignUp): free to that row, which replaces them. */
  signUps: Map<string, Existing>;
  byUsername: Map<string, Existing>;
  byExternal: Map<string, Existing>;
  /** By confusable skeleton (confusables.ts): the accounts a row would read like (two, for a pair stored before the rule). */
  byEmailSkeleton: Map<string, Existing[]>;
  byUsernameSkeleton: Map<string, Existing[]>;
}

/**
 * Whether `row`, an update of the stored account `mine`, writes its username under a new skeleton (a rename that reads
 * differently): the one identifier an update writes, and so the one it is judged a look-alike on.
 */
export function renamesUsername(row: ImportRow, mine: Existing, onConflict: OnConflict): boolean {
  return onConflict === "update" && row.usernameSkeleton !== null && mine.usernameSkeleton !== row.usernameSkeleton;
}

/** What a row meets whose email a stored account holds: refused under fail, named as skipped under skip. */
export const EXISTS = "an account with this email already exists";

/** Why `row` cannot be written against the accounts that exist (null when it can). */
export function clash(row: ImportRow, found: Found, onConflict: OnConflict): string | null {
  const mine = found.byEmail.get(row.emailKey);
  if (mine && onConflict === "fail") return `${EXISTS} (--on-conflict fail)`;
  // Another account whose address reads like this one (the same letters in another script): two accounts a person
  // cannot tell apart in a list. Only a new account is judged: an update never writes the email, so an account
  // stored beside a look-alike before the rule can still be updated (disabled, say) by its own row.
  // The row's own address held by an unfinished sign-up is not a look-alike of it: the sign-up goes (a sign-up of
  // another spelling that reads alike stays, and is one, as addressHolders judges it).
  const squat = found.signUps.get(row.emailKey);
  if (!mine && (found.byEmailSkeleton.get(row.emailSkeleton) ?? []).some((e) => e !== squat)) {
    return "the email reads like that of another account (the same letters in another script), which a person could not tell apart from it";
  }
  const byName = row.usernameKey ? found.byUsername.get(row.usernameKey) : undefined;
  if (byName && byName.emailKey !== row.emailKey && (!mine || onConflict === "update")) return "the username belongs to another account";
  // The username is judged when it is written under a new skeleton: a new account, or a rename to one (an update
  // that keeps the account's username, or only changes it in a way that reads the same, is not a look-alike of it).
  const renamed = row.usernameSkeleton !== null && (!mine || renamesUsername(row, mine, onConflict));
  if (renamed && (found.byUsernameSkeleton.get(row.usernameSkeleton as string) ?? []).some((e) => e.id !== mine?.id)) {
    return "the username reads like that of another account (the same letters in another script), which a person could not tell apart from it";
  }
  const byExt = row.user.externalId ? found.byExternal.get(externalKey(row.user.externalSource ?? "", row.user.externalId)) : undefined;
  if (byExt && byExt.emailKey !== row.emailKey && (!mine || onConflict === "update")) return `external id ${row.user.externalSource}:${row.user.externalId} belongs to another account`;
  // An update links an account that has no legacy id yet; it never moves an existing link (that would lose which
  // old system's record the account came from).
  const link = mine?.external;
  if (mine && onConflict === "update" && link && row.user.externalId && (link.source !== row.user.externalSource || link.id !== row.user.externalId)) {
    return `the account is already linked to external id ${link.source}:${link.id}; an update does not relink it to ${row.user.externalSource}:${row.user.externalId}`;
  }
  return null;
}
