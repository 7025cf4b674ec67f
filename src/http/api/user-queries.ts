// The API's view of an account (the paged list is UserStore.page). The administrative state changes it makes (lock,
// unlock, require a password change) are src/accounts/users/admin-changes.ts, shared with the CLI.
import type { Kysely } from "kysely";
import { unfinishedSignUpsAmong } from "../../accounts/email-change/sign-up-shell.ts";
import type { User } from "../../accounts/users/user-store.ts";
import type { Schema } from "../../store/schema.ts";
import { iso } from "./common.ts";

/** What the API shows of an account: never the password hash. */
export interface UserView {
  id: string;
  email: string;
  username: string | null;
  displayName: string | null;
  status: string;
  locked: boolean;
  lockedAt: string | null;
  lockedReason: string | null;
  hasPassword: boolean;
  passwordScheme: string | null;
  passwordMustChange: boolean;
  passwordChangedAt: string | null;
  passwordInvalidated: boolean;
  /** When the administrator-set initial password stops signing in (ASVS 6.4.1); null once the owner set their own. */
  initialPasswordExpiresAt: string | null;
  /** Whoever created the account knew the password, or an administrator set the address since: no administrative role until a reset link sets one. */
  passwordUnproven: boolean;
  createdAt: string;
  lastLoginAt: string | null;
  /**
   * Made by POST /auth/register and never finished (sign-up-shell.ts isUnfinishedSignUp): anyone may start one for any
   * address. A new account, an import or a confirmed email change takes its address, and the maintenance pass deletes
   * it once abandoned; an administrator's lock or set-email makes it theirs to keep. Unlike an invitation.
   */
  unfinishedSignUp: boolean;
}

/** The public shape of each account, in order, with whether it is an unfinished sign-up (one read for all of them). */
export async function userViews(db: Kysely<Schema>, users: readonly User[]): Promise<UserView[]> {
  const signUps = await unfinishedSignUpsAmong(db, users.map((u) => u.id));
  return users.map((u) => userView(u, signUps.has(u.id)));
}

/** The public shape of an account (`unfinishedSignUp` as userViews found it). */
function userView(u: User, unfinishedSignUp: boolean): UserView {
  return {
    id: u.id, email: u.email, username: u.username, displayName: u.displayName, status: u.status,
    locked: u.lockedAt !== null, lockedAt: iso(u.lockedAt), lockedReason: u.lockedReason,
    hasPassword: u.passwordHash !== null, passwordScheme: u.passwordScheme, passwordMustChange: u.passwordMustChange,
    passwordChangedAt: iso(u.passwordChangedAt), passwordInvalidated: u.passwordInvalidatedAt !== null,
    initialPasswordExpiresAt: iso(u.passwordInitialExpiresAt), passwordUnproven: u.passwordUnproven,
    createdAt: iso(u.createdAt) as string, lastLoginAt: iso(u.lastLoginAt), unfinishedSignUp,
  };
}
