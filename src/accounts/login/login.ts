// The login core: look up, throttle (counted against the account, whatever identifier names it, answered by the
// spelling typed), verify (with a dummy verify of the default scheme for unknown accounts and on top of cheaper
// stored hashes, so both cost the same), rehash to the default scheme only for an account that may sign in, refuse
// an expired initial password like a wrong one, audit every outcome (never the password). A browser known to the
// account is throttled by a window of its own rather than the account's 100-failure stop (LoginAttempt.knownBrowser).
import type { Logger } from "pino";
import type { AuditLog } from "../../audit/audit-log.ts";
import type { FloodControl, FloodReason } from "../flood/flood.ts";
import type { PasswordContext } from "../passwords/index.ts";
import type { User, UserStore } from "../users/user-store.ts";
import { MAX_EMAIL } from "../users/normalise.ts";
import { RECORD, unrecordedCounts, type RefusalSampler } from "./refusal-sampler.ts";
import { ipSite } from "../flood/ip-bucket.ts";

export interface LoginAttempt {
  identifier: string;
  password: string;
  ip: string | null;
  userAgent?: string | null;
  requestId?: string;
  /**
   * Leave a success's attempt counted, and the account's failure streak in place, until the caller calls the result's
   * `settle` (after it stored the session and queued the notice the streak calls for). Cleared at once, a store that
   * failed between the two lost the streak: once it recovered, the guesser signed in with `failuresBefore` 0 and the
   * owner was never told (ASVS 6.3.5). Never settled, the attempt stays a failure (as a 401 says it was); a caller whose
   * own work failed after the verify calls `release` instead (the answer was an error: neither a failure nor a success).
   * The success's event (`auth.login.succeeded`) is left to the caller too, to `record` once the session exists: so it
   * can name the session (a responder ends exactly what the intruder made) and say whether the browser was new.
   */
  deferSettle?: boolean;
  /**
   * Whether the browser making the attempt signed in to `account` before (its known-device cookie is valid for the
   * account as stored: session-routes' knownDevice): the text naming the browser when it did (its device id), null
   * otherwise. Asked after the lookup and before flood control decides, since the cookie is bound to the account's id
   * and password change time: a known browser is held by a window of its own instead of the account's 100-failure
   * stop, which anyone naming the account fills (Attempt.known, NIST SP 800-63B §5.2.2). Asked for an identifier that
   * names no account too, with an account that cannot exist (NO_ACCOUNT), so that both do the same work (ASVS 6.3.8);
   * the answer is then ignored. Synchronous: two HMACs, no statement.
   */
  knownBrowser?: (account: { id: string; passwordChangedAt: number | null }) => string | null;
}

/** What knownBrowser is asked about for an identifier that names no account: no account has an empty id. */
const NO_ACCOUNT = Object.freeze({ id: "", passwordChangedAt: null });

/**
 * Appends a success's `auth.login.succeeded`, with the session the caller made for it: its id, and whether the
 * browser was new to the account (no known-device cookie for it, docs/http-auth.md). Called once.
 */
export type RecordSuccess = (session?: { sessionId: string; newDevice: boolean }) => Promise<void>;

export type LoginResult =
  /**
   * `failuresBefore`: failed attempts in a row on the account before this one (ASVS 6.3.5: many make the success
   * suspicious). `settle`: clears the account's window and streak (done already unless `deferSettle` was asked).
   * `record`: appends `auth.login.succeeded` with what the caller adds (done already unless `deferSettle` was asked).
   * `knownBrowser`: whether `LoginAttempt.knownBrowser` named the browser known to the account (the caller need not ask
   * its cookie again: the account's password change time is the one it was asked with). `release`: takes the attempt
   * back, neither a failure nor a success (FloodControl.release; nothing once settled), for a caller whose own work
   * failed before it answered (the answer was an error, not a sign-in).
   */
  | { outcome: "success"; user: User; rehashed: boolean; failuresBefore: number; knownBrowser: boolean; settle: () => Promise<void>; record: RecordSuccess; release: () => Promise<void> }
  | { outcome: "must-change-password"; user: User; rehashed: boolean; failuresBefore: number; knownBrowser: boolean; settle: () => Promise<void>; record: RecordSuccess; release: () => Promise<void> }
  | { outcome: "invalid" }
  /**
   * `reason` "consecutive" is the 100-failure stop, which no wait lifts (only a success elsewhere, a password reset or
   * an administrator): `retryAfterMs` is then no promise and should not be sent as Retry-After. Unknown identifiers
   * get it exactly like known ones, so it reveals nothing. "known" is a known browser's own window (knownBrowser): a
   * wait, like "ip" and "account".
   */
  | { outcome: "throttled"; retryAfterMs: number; reason: FloodReason };

export interface LoginDeps {
  users: UserStore;
  passwords: PasswordContext;
  flood: FloodControl;
  audit: AuditLog;
  logger: Pick<Logger, "warn" | "error">;
  /** The audit tag of an identifier that names no account (Keyring.identifierTag): keyed, so a word list cannot reverse it. */
  tag: (identifier: string) => string;
  /**
   * Which throttled attempts get their own audit event (see refusal-sampler.ts): without one, every refusal is
   * recorded. The server passes one per process.
   */
  refusals?: RefusalSampler;
  /** The time the sampler's windows are read from (default Date.now). */
  now?: () => number;
}

type Failure =
  | "unknown-account" | "wrong-password" | "no-password" | "password-invalidated" | "unsupported-hash" | "disabled" | "locked"
  | "initial-password-expired" | "malformed" | "throttled-other-spelling";

/** Why a stored hash cannot log anyone in (checked before any verify). */
function unusable(user: User): Failure | null {
  if (user.passwordHash === null) return "no-password";
  if (user.passwordInvalidatedAt !== null) return "password-invalidated";
  return null;
}

/**
 * Why the account may not sign in even with the right password: disabled, locked, or holding an initial password
 * (generated or set by an administrator) past its expiry (ASVS 6.4.1: it must not become a lasting way in, say
 * after sitting in a ticket for weeks) — under the lifetime in force, not only the one it was issued under
 * (the store reads it so, createUserStore). The password is still verified, so the audit can tell a right one from a
 * wrong one, and the answer is a wrong password's.
 */
function refusal(users: UserStore, user: User): Failure | null {
  if (user.status === "disabled") return "disabled";
  if (user.lockedAt !== null) return "locked";
  if (users.initialPasswordExpired(user)) return "initial-password-expired";
  return null;
}

/**
 * Verifies `password` against the user's stored hash: with verifyAndRehash for an account that may sign in (a new
 * hash comes back when the stored one should be upgraded), with a plain verify for one `refused` (disabled, locked,
 * an expired initial password) — never rehashed, so that a right guess there costs no more than a wrong one (the
 * same 401 must not time differently). A stored hash cheaper to
 * verify than the default argon2id is topped up with the dummy verify, side by side, on a match and a mismatch
 * alike, so an account imported with md5 answers a wrong password no faster than an unknown account (ASVS 6.3.8);
 * so is a hash the policy refuses, and a password over the hash's own length bound, both refused without hashing.
 */
async function check(deps: LoginDeps, user: User, password: string, refused: Failure | null): Promise<{ failure: Failure | null; newHash: string | null }> {
  const { passwords } = deps;
  const stored = user.passwordHash as string;
  const mayUse = refused === null;
  const verify = async (): Promise<{ failure: Failure | null; newHash: string | null }> => {
    try {
      if (!mayUse) return { failure: (await passwords.verify(password, stored)) ? null : "wrong-password", newHash: null };
      const result = await passwords.verifyAndRehash(password, stored);
      return { failure: result.status === "invalid" ? "wrong-password" : null, newHash: "newHash" in result ? result.newHash : null };
    } catch (error) {
      // A stored hash the policy refuses (unsupported or out of bounds) logs nobody in.
      deps.logger.warn({ userId: user.id, err: (error as Error).message }, "stored password hash is unsupported");
      return { failure: "unsupported-hash", newHash: null };
    }
  };
  // The password goes along: one over the stored hash's own bound (a wrapped Drupal 7 hash's 512 bytes) is refused
  // without hashing, so it is topped up too.
  const [checked] = await Promise.all([verify(), passwords.cheaperThanDefault(stored, password) ? passwords.dummyVerify(password) : null]);
  return checked;
}

/**
 * Authenticates one attempt.
 *
 * @example
 * const result = await login(deps, { identifier: "ana@example.org", password, ip: "203.0.113.9" });
 * // A window lifts after retryAfterMs; the 100-failure stop ("consecutive") does not lift with time.
 * if (result.outcome === "throttled" && result.reason !== "consecutive") reply.header("retry-after", Math.ceil(result.retryAfterMs / 1000));
 */
export async function login(deps: LoginDeps, attempt: LoginAttempt): Promise<LoginResult> {
  const { users, passwords, flood, audit } = deps;
  const base = { requestId: attempt.requestId ?? "" };
  const context = { ip: attempt.ip, userAgent: attempt.userAgent?.slice(0, 256) ?? null };
  // Over-long identifiers cannot belong to an account; they still cost a verify and count as failures.
  const identifier = attempt.identifier.slice(0, MAX_EMAIL + 1);

  // Looked up first, so that the attempt is counted against the account rather than the text typed: its email in any
  // case and its username share one window and one 100-failure stop (ASVS 6.3.1), and clearStreak(email) — a reset,
  // an administrator — lifts it for every identifier. An unknown identifier is counted under itself; both paths run
  // the same statements in the same order (ASVS 6.3.8). The attempt is counted as a failure as it starts
  // (FloodControl.begin), so parallel guesses count each other; a success takes it back. A throttled attempt gets
  // no verify, and the account read tells it nothing it returns.
  const tooLong = attempt.identifier.length > MAX_EMAIL;
  const user = tooLong ? null : await users.findByIdentifier(identifier);
  // A browser known to the account is not held by the account's stop (knownBrowser). Asked whatever the lookup found,
  // so an unknown identifier costs the same; only an account's answer is used (no browser is known to no account).
  const browser = attempt.knownBrowser?.(user ?? NO_ACCOUNT) ?? null;
  const known = user && browser !== null ? { known: browser } : {};
  // The spelling typed goes along: a 429 from the account's shared window would otherwise come for a username and an
  // email together exactly when they name one account (flood.ts, Attempt.spelling).
  const verdict = await flood.begin({ identifier: user ? user.email : identifier, ip: attempt.ip, ...(user ? { spelling: identifier } : {}), ...known });
  if (!verdict.allowed) {
    // Sampled by what is throttled (the client address, or the account): a client whose window is full can repeat
    // this as fast as the server answers, each event a row of the audit log; the ones left out are counted on the next.
    // The address as flood control counts it (an IPv6 client by its /64): one new interface id per request is one client.
    // The identifier by its keyed tag, never as typed (the scope is written in the summary of unrecorded counts).
    const subject = `id:${deps.tag(identifier.toLowerCase())}`;
    // An IPv6 client by its site (/48): one holder of a /48 rotating /64s was one sampler scope per /64, each with an
    // event of its own a minute, bounded only by the global budget (a /64's refusals are a share of its site's).
    const scope = verdict.reason === "ip" ? `login:ip:${attempt.ip ? ipSite(attempt.ip) : ""}` : `login:${verdict.reason}:${subject}`;
    const sample = deps.refusals?.take(scope, (deps.now ?? Date.now)()) ?? RECORD;
    if (sample.record) {
      await audit.append({ ...base, type: "auth.login.throttled", actor: "anonymous", subject, data: { ...context, reason: verdict.reason, ...unrecordedCounts(sample) } });
    }
    return { outcome: "throttled", retryAfterMs: verdict.retryAfterMs, reason: verdict.reason };
  }

  let failure: Failure | null = null;
  let newHash: string | null = null;
  if (verdict.blind) {
    // The account's window is full through another spelling: no password is checked (the account gets no more
    // guesses), and the answer is the one an unknown identifier typed this way would get, a failure (ASVS 6.3.8).
    await passwords.dummyVerify(attempt.password);
    failure = "throttled-other-spelling";
  } else if (!user) {
    await passwords.dummyVerify(attempt.password);
    failure = tooLong ? "malformed" : "unknown-account";
  } else if ((failure = unusable(user)) !== null) {
    await passwords.dummyVerify(attempt.password);
  } else {
    // Checked whatever the account's state (the audit tells a right password on a disabled account from a wrong one);
    // rehashed only when the account may sign in (see check).
    const refused = refusal(users, user);
    const checked = await check(deps, user, attempt.password, refused);
    // A right password on an account that may not be used gets the same answer as a wrong one; the audit says why.
    failure = checked.failure ?? refused;
    newHash = checked.newHash;
  }

  if (failure !== null) {
    await audit.append({
      ...base, type: "auth.login.failed", actor: "anonymous",
      subject: user ? user.id : `id:${deps.tag(identifier.toLowerCase())}`,
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
  const settle = (): Promise<void> => flood.succeeded(verdict.ticket);
  const release = (): Promise<void> => flood.release(verdict.ticket);
  const deferred = attempt.deferSettle === true;
  const mustChange = account.passwordMustChange;
  // `failuresBefore` goes in the event too: a success after a run of failures is the guess that worked (ASVS 6.3.5),
  // and a responder reading the log after a stuffing wave looks for exactly those.
  const record: RecordSuccess = (session) => audit.append({
    ...base, type: "auth.login.succeeded", actor: account.id, subject: account.id,
    data: { ...context, rehashed, fromScheme: account.passwordScheme, mustChangePassword: mustChange, failuresBefore: verdict.streak, ...session },
  }).then(() => undefined);
  try {
    if (!deferred) await settle();
    await users.recordLogin(account.id, attempt.ip);
    if (!deferred) await record();
  } catch (error) {
    // The answer is an error, not a sign-in: the right password is not left counted as a failure (the owner's retry
    // would read as a guess that worked after failures, ASVS 6.3.5), nor as a success (a store past its wait bound).
    await releaseQuietly(deps, release, account.id);
    throw error;
  }
  const fresh = { ...account, passwordHash: rehashed ? newHash : account.passwordHash, passwordScheme: rehashed ? passwords.defaultScheme : account.passwordScheme };
  return { outcome: mustChange ? "must-change-password" : "success", user: fresh, rehashed, failuresBefore: verdict.streak, knownBrowser: browser !== null, settle, record, release };
}

/**
 * Takes an attempt back after the work that followed its verify failed (LoginResult.release, FactorProof.release),
 * logging rather than throwing when that fails too (a store that is down): the caller rethrows the error that stopped
 * it. `what` names the attempt in the log.
 */
export async function releaseQuietly(deps: Pick<LoginDeps, "logger">, release: () => Promise<void>, userId: string, what = "the flood attempt of a login that failed after its verify"): Promise<void> {
  try {
    await release();
  } catch (error) {
    deps.logger.error({ userId, err: (error as Error).message }, `could not take back ${what}`);
  }
}
