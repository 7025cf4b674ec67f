// Table types of the MFA and API token modules (migration 5); the store's Schema owns them.
import type { APITokensTable, MfaRecoveryCodesTable, MfaTotpTable, WebAuthnChallengesTable, WebAuthnCredentialsTable } from "../../store/schema.ts";

export type { APITokensTable, MfaRecoveryCodesTable, MfaTotpTable, WebAuthnChallengesTable, WebAuthnCredentialsTable };

export interface MfaTables {
  mfa_totp: MfaTotpTable;
  mfa_recovery_codes: MfaRecoveryCodesTable;
  webauthn_credentials: WebAuthnCredentialsTable;
  webauthn_challenges: WebAuthnChallengesTable;
  api_tokens: APITokensTable;
}
