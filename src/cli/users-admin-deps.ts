// The accounts code behind `bulwark users create|unlock|set-email` and `bulwark roles …`, loaded when one of those
// commands runs (src/cli/commands/users-admin.ts). Every `bulwark` start registers every command to build its help;
// importing this graph there (the role store and the database layer, the password policy, the email-change flows)
// cost ~140 ms of CPU per start of every other command, `bulwark hash` and the checks included.
export { GRANT_NOTICE_REFUSED, tellGrantee } from "../accounts/roles/grant-notice.ts";
export { roleErrors } from "../accounts/roles/role-store.ts";
export { base32 } from "../crypto/tokens.ts";
export { unlockUser } from "../accounts/users/admin-changes.ts";
export { createOverSignUps, forecastSetEmail, setEmailByAdministrator } from "../accounts/email-change/index.ts";
export { accountPasswordContext, throwIfRefused } from "../accounts/password-policy/index.ts";
