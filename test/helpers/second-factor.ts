// A second factor for a test account whose API token (or aal-2 session) the MFA policy would otherwise hold: a
// confirmed authenticator app, enrolled through the MFA service as a finished enrolment leaves it.
import type { OpenedApp } from "../../src/app/index.ts";
import { totpCode } from "../../src/http/auth/test-client.ts";

/** Gives `userId` a confirmed authenticator app unless it holds a factor already; returns the app's secret (null: it had one). */
export async function ensureSecondFactor(app: OpenedApp, userId: string): Promise<string | null> {
  if (await app.accounts.mfa.hasMfa(userId)) return null;
  const { secret } = await app.accounts.mfa.totp.begin(userId, userId);
  if (!(await app.accounts.mfa.totp.confirm(userId, totpCode(secret, app.clock.now())))) throw new Error("the fixture's authenticator app was not confirmed");
  return secret;
}
