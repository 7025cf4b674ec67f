// The login core: throttle, look up, verify (a dummy verify of the default scheme for unknown accounts,
// so they cost the same), rehash to the default scheme on success, audit every outcome (never the password).
import type { Logger } from "pino";
import type { AuditLog } from "../../audit/audit-log.ts";
import { fingerprint } from "../../crypto/tokens.ts";
import type { FloodControl } from "../flood/flood.ts";
import type { PasswordContext } from "../passwords/index.ts";
import type { User, UserStore } from "../users/user-store.ts";
import { MAX_EMAIL } from "../users/normalise.ts";

export interface LoginAttempt {
  identifier: string;
  password: string;
  ip: string | null;
  userAgent?: string | null;
  requestId?: string;
}

export type LoginResult =
  | { outcome: "success"; user: User; rehashed: boolean }
  | { outcome: "must-change-password"; user: User; rehashed: boolean }
  | { outcome: "invalid" }
  | { outcome: "throttled"; retryAfterMs: number };

export interface LoginDeps {
  users: UserStore;
  passwords: PasswordContext;
  flood: FloodControl;
  audit: AuditLog;
  logger: Pick<Logger, "warn" | "error">;
}

type Failure = "unknown-account" | "wrong-password" | "no-password" | "password-invalidated" | "unsupported-hash" | "disabled" | "locked" | "malformed";

/** Why a stored hash cannot log anyone in (checked before any verify). */
function unusable(user: User): Failure | null {
  if (user.passwordHash === null) return "no-password";
  if (user.passwordInvalidatedAt !== null) return "password-invalidated";
  return null;
}

/**
 * Authenticates one attempt.
 *
 * @example
 * const result = await login(deps, { identifier: "ana@example.org", password, ip: "203.0.113.9" });
 * if (result.outcome === "throttled") reply.header("retry-after", Math.ceil(result.retryAfterMs / 1000));
 */
export async function login(deps: LoginDeps, attempt: LoginAttempt): Promise<LoginResult> {
  const { users, passwords, flood, audit } = deps;
  const base = { requestId: attempt.requestId ?? "" };
  const context = { ip: attempt.ip, userAgent: attempt.userAgent?.slice(0, 256) ?? null };
  // Over-long identifiers cannot belong to an account; they still cost a verify and count as failures.
  const identifier = attempt.identifier.slice(0, MAX_EMAIL + 1);
  const flooding = { identifier, ip: attempt.ip };

  // The attempt is counted as a failure as it starts (FloodControl.begin), so parallel guesses count each other; a
  // success takes it back. The account read is independent: run together (one round trip on PostgreSQL). A
  // throttled attempt still gets no verify, and the account read tells it nothing it returns.
  const tooLong = attempt.identifier.length > MAX_EMAIL;
  const [verdict, user] = await Promise.all([flood.begin(flooding), tooLong ? null : users.findByIdentifier(identifier)]);
  if (!verdict.allowed) {
    await audit.append({ ...base, type: "auth.login.throttled", actor: "anonymous", subject: `id:${fingerprint(identifier.toLowerCase())}`, data: { ...context, reason: verdict.reason } });
    return { outcome: "throttled", retryAfterMs: verdict.retryAfterMs };
  }

  let failure: Failure | null = null;
  let newHash: string | null = null;
  if (!user) {
    await passwords.dummyVerify(attempt.password);
    failure = tooLong ? "malformed" : "unknown-account";
  } else if ((failure = unusable(user)) !== null) {
    await passwords.dummyVerify(attempt.password);
  } else {
    try {
      const result = await passwords.verifyAndRehash(attempt.password, user.passwordHash as string);
      if (result.status === "invalid") failure = "wrong-password";
      else if ("newHash" in result) newHash = result.newHash;
    } catch (error) {
      // A stored hash the policy refuses (unsupported or out of bounds) logs nobody in.
      deps.logger.warn({ userId: user.id, err: (error as Error).message }, "stored password hash is unsupported");
      failure = "unsupported-hash";
    }
    // The password was right, but the account may not be used: the same answer as a wrong password.
    if (failure === null && user.status === "disabled") failure = "disabled";
    if (failure === null && user.lockedAt !== null) failure = "locked";
  }

  if (failure !== null) {
    await audit.append({
      ...base, type: "auth.login.failed", actor: "anonymous",
      subject: user ? user.id : `id:${fingerprint(identifier.toLowerCase())}`,
      data: { ...context, reason: failure },
    });
    return { outcome: "invalid" };
  }

  const account = user as User;
  let rehashed = false;
  if (newHash !== null) {
    try {
      rehashed = await users.swapPasswordHash(account.id, account.passwordHash, { hash: newHash, scheme: passwords.defaultScheme, changed: false });
    } catch (error) {
      // The login is good; the upgrade will be tried again at the next one.
      deps.logger.error({ userId: account.id, err: (error as Error).message }, "could not store the rehashed password");
    }
  }
  await flood.succeeded(verdict.ticket);
  await users.recordLogin(account.id, attempt.ip);
  const mustChange = account.passwordMustChange;
  await audit.append({
    ...base, type: "auth.login.succeeded", actor: account.id, subject: account.id,
    data: { ...context, rehashed, fromScheme: account.passwordScheme, mustChangePassword: mustChange },
  });
  const fresh = { ...account, passwordHash: rehashed ? newHash : account.passwordHash, passwordScheme: rehashed ? passwords.defaultScheme : account.passwordScheme };
  return mustChange ? { outcome: "must-change-password", user: fresh, rehashed } : { outcome: "success", user: fresh, rehashed };
}
