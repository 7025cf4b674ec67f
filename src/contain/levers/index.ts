// The built-in levers, registered in the order they run within a batch.
import { registerLever } from "../lever.ts";
import { demoteInactiveAdmins } from "./demote-inactive-admins.ts";
import { expirePasswords } from "./expire-passwords.ts";
import { invalidatePasswords } from "./invalidate-passwords.ts";
import { lockAccounts } from "./lock-accounts.ts";
import { rotateKeys } from "./rotate-keys.ts";
import { unlinkSSO } from "./unlink-sso.ts";

let registered = false;

/** Registers the built-in levers once (idempotent). Other modules register theirs with `registerLever`. */
export function registerBuiltinLevers(): void {
  if (registered) return;
  registered = true;
  // Locking first: accounts stop working before anything else about them changes.
  for (const lever of [lockAccounts, invalidatePasswords, expirePasswords, unlinkSSO, demoteInactiveAdmins, rotateKeys]) registerLever(lever);
}

export { demoteInactiveAdmins, expirePasswords, invalidatePasswords, lockAccounts, rotateKeys, unlinkSSO };
