// Row types of the MFA and API token modules (migration 5); the store Schema owns them.
export type { APITokensTable, MfaRecoveryCodesTable, MfaTotpTable, WebAuthnChallengesTable, WebAuthnCredentialsTable } from "../../store/schema.ts";
