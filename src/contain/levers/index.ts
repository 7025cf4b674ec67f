// The built-in levers, registered in the order they run within a batch.
import { registerLever } from "../lever.ts";
import { demoteInactiveAdmins } from "./demote-inactive-admins.ts";
import { expirePasswords } from "./expire-passwords.ts";
import { invalidatePasswords } from "./invalidate-passwords.ts";
import { lockAccounts } from "./lock-accounts.ts";
import { requireMfaReenrolment } from "./require-mfa-reenrolment.ts";
import { revokeSessions } from "./revoke-sessions.ts";
import { revokeTokens } from "./revoke-tokens.ts";
import { rotateKeys } from "./rotate-keys.ts";
import { unlinkSSO } from "./unlink-sso.ts";

let registered = false;

/** Registers the built-in levers once (idempotent). Other modules register theirs with `registerLever`. */
export function registerBuiltinLevers(): void {
  if (registered) return;
  registered = true;
  // Locking and revocation first: accounts and their sessions and tokens stop working before anything else
  // about them changes (the stamps are already raised when the job is created; the rows go here).
  for (const lever of [lockAccounts, revokeSessions, revokeTokens, invalidatePasswords, expirePasswords, requireMfaReenrolment, unlinkSSO, demoteInactiveAdmins, rotateKeys]) registerLever(lever);
}

export { demoteInactiveAdmins, expirePasswords, invalidatePasswords, lockAccounts, requireMfaReenrolment, revokeSessions, revokeTokens, rotateKeys, unlinkSSO };
