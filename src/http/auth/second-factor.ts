// Checks a second factor presented in a request body — a TOTP code, a recovery code or a WebAuthn assertion —
// for MFA step-up after login and for password reset (a reset link must not bypass MFA, ASVS 6.4.3).
import type { AuthenticationResponseJSON } from "@simplewebauthn/server";
import type { App } from "../../app/types.ts";
import { str } from "./helpers.ts";

export interface FactorBody {
  totp?: string;
  recoveryCode?: string;
  webauthn?: AuthenticationResponseJSON;
}

/** JSON-schema properties of the factor fields. */
export const FACTOR_PROPERTIES = {
  totp: str(16),
  recoveryCode: str(128),
  webauthn: { type: "object" },
} as const;

export type FactorOutcome = { ok: true; factor: "totp" | "recovery-code" | "webauthn" } | { ok: false; reason: "none-given" | "invalid" | "replayed" | "throttled" | "not-enrolled" };

/**
 * Verifies the one factor given. Exactly one must be present; a TOTP time step is accepted once, a recovery
 * code is used up, a WebAuthn challenge is single-use and must have been asked for in the same flow
 * (`webauthnContext`: the session's or the reset link's, see webauthn.ts) — all enforced by the MFA service.
 */
export async function verifyFactor(app: App, userId: string, body: FactorBody, options: { webauthnContext: string }): Promise<FactorOutcome> {
  const mfa = app.accounts.mfa;
  const given = [body.totp, body.recoveryCode, body.webauthn].filter((v) => v !== undefined).length;
  if (given !== 1) return { ok: false, reason: "none-given" };
  if (body.totp !== undefined) {
    const r = await mfa.totp.verify(userId, body.totp);
    return r === "ok" ? { ok: true, factor: "totp" } : { ok: false, reason: r };
  }
  if (body.recoveryCode !== undefined) {
    const r = await mfa.recovery.verify(userId, body.recoveryCode);
    return r === "ok" ? { ok: true, factor: "recovery-code" } : { ok: false, reason: r };
  }
  try {
    const ok = await mfa.webauthn.verifyAuthentication(userId, body.webauthn as AuthenticationResponseJSON, { context: options.webauthnContext });
    return ok ? { ok: true, factor: "webauthn" } : { ok: false, reason: "invalid" };
  } catch {
    // A malformed assertion is a failed one: the caller answers the same either way.
    return { ok: false, reason: "invalid" };
  }
}
