// Builds the account services from configuration: the password policy object, the new-password policy,
// the user and role stores, flood control, the job store, and the services the HTTP account surface uses:
// sessions, API tokens, MFA, the mail outbox, password reset tokens and email changes.
import { createEmailChangeService, DEFAULT_EMAIL_CHANGE_POLICY, type EmailChangeService } from "../accounts/email-change/index.ts";
import { FloodControl } from "../accounts/flood/flood.ts";
import { createMfaService, MFA_FLOOD_NAMESPACE, MFA_FLOOD_POLICY, type MfaService } from "../accounts/mfa/index.ts";
import { createOfflineBreachFile, createPasswordPolicy, createRangeBreachChecker, type BreachChecker, type PasswordPolicy, type PasswordPolicyOptions } from "../accounts/password-policy/index.ts";
import { createPasswordResetService, createResetMailer, type PasswordResetService, type ResetMailer } from "../accounts/password-reset/index.ts";
import { createPasswordContext, type PasswordContext } from "../accounts/passwords/index.ts";
import { RoleStore } from "../accounts/roles/role-store.ts";
import { createSessionManager, type SessionManager } from "../accounts/sessions/index.ts";
import { createTokenService, type TokenService } from "../accounts/tokens/index.ts";
import { createUserStore, type UserStore } from "../accounts/users/user-store.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { Keyring } from "../crypto/keyring.ts";
import { JobStore } from "../jobs/job-store.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import { Outbox } from "../notify/outbox.ts";
import type { Logger } from "pino";
import { datedAheadToleranceFor } from "../store/clock-skew.ts";
import type { Database } from "../store/database.ts";
import type { Config } from "./config.ts";
import { linkStatesIn } from "./link-states.ts";
import { RefusalSampler } from "../accounts/login/refusal-sampler.ts";
import { PasswordWorkGate } from "../accounts/passwords/work-gate.ts";

/** API tokens one account may mint an hour: above the live-token cap (50, reachable in one hour), far below a loop's. */
export const TOKEN_MINTS_PER_HOUR = 60;

/**
 * Authenticator-app replacements one account may begin an hour, and sets of recovery codes it may make: each one mails
 * the owner a notice (ASVS 6.3.7), so without a bound a session — an intruder's at the owner's unlocked computer — could
 * fill the owner's mailbox and bury the notices that matter (ASVS 2.4.1). Five covers a lost QR code or a misprint.
 */
export const APP_REPLACEMENTS_PER_HOUR = 5;
export const RECOVERY_CODE_SETS_PER_HOUR = 5;

/**
 * Second factors one account may enrol an hour, passkeys and authenticator apps together: each enrolment mails the
 * owner "a sign-in factor was added", and the 20-passkey cap bounds only what is live, so a session adding and removing
 * a passkey (or removing and enrolling the app again) in a loop buried the notice that mattered among dozens (ASVS
 * 2.4.1, 6.3.7; test/notice-suppression-red-team.test.ts). Ten covers an owner registering a handful of keys and an
 * app in one sitting, with a few ceremonies to spare. Removals have no budget: each removes a factor that is there, so
 * an hour's removals are bounded by the live factors and this budget's enrolments, and removing one is the owner's
 * remedy (a lost key, a thief's passkey), which no budget may hold back.
 */
export const FACTOR_ENROLMENTS_PER_HOUR = 10;

/**
 * Sign-up mails one mailbox (its spellings folded, mailboxKey) may get an hour, however many clients ask: each sign-up
 * mails an address the caller chose, so a crowd of client addresses could otherwise bury one inbox (ASVS 2.4.1). As
 * many as an email change's per-mailbox budget, and apart from it (signupRecipients below).
 */
export const SIGN_UPS_PER_MAILBOX_PER_HOUR = 3;

export interface AccountServices {
  passwords: PasswordContext;
  policy: PasswordPolicy;
  users: UserStore;
  roles: RoleStore;
  flood: FloodControl;
  /** Which refused (throttled) attempts get an audit event of their own; the rest are counted (refusal-sampler.ts). */
  refusals: RefusalSampler;
  /**
   * The same for refusals of a signed-in caller (api.refused, auth.csrf.refused, auth.reauth.required), with a budget
   * of their own: sharing the anonymous one, a flood of throttled logins in the same minute crowded out a help desk's
   * escalation attempt, left as a bare count under "others".
   */
  callerRefusals: RefusalSampler;
  /**
   * Which requests made with an API token are recorded as `api.token.used`: the first of each hour per token and client
   * address (src/http/auth/authenticate.ts). Apart from the refusals' samplers, and with no budget across tokens: a
   * shared one let an account's fleet of tokens, used from many addresses, leave a thief's first use of a leaked token
   * unrecorded. What bounds the events is what a token's holder pays for them: a request from a distinct address each.
   */
  tokenUses: RefusalSampler;
  /** Password-checking requests admitted at a time (BULWARK_PASSWORD_CHECKS_IN_FLIGHT); the rest get 503. */
  passwordWork: PasswordWorkGate;
  /**
   * Breached-password lookups waiting at a time (the same size and per-client share as passwordWork): a request gives
   * its password-work slot back while its lookup waits on the network (outsidePasswordWork, src/http/auth).
   */
  breachLookups: PasswordWorkGate;
  /**
   * Email-change link mails per recipient (its lookup key) per hour, whoever asks (namespace "mail-to"): an email change
   * names any address, and each account could otherwise mail it its own hourly share. Spent by email changes only.
   */
  mailRecipients: FloodControl;
  /**
   * Sign-up mails per recipient (its lookup key) per hour, whoever asks (namespace "signup-to",
   * SIGN_UPS_PER_MAILBOX_PER_HOUR). Apart from mailRecipients: sharing it, three anonymous sign-ups an hour for
   * sub-addresses of a mailbox withheld, hour after hour, the link of its owner's own email change to it
   * (test/lockout-red-team.test.ts). So one mailbox gets at most the two budgets together (6 an hour) of these mails.
   */
  signupRecipients: FloodControl;
  /** Public requests that send mail (reset, sign-up), counted per client address: its own counters (namespace "mail"). */
  mailRequests: FloodControl;
  /**
   * API tokens minted per account an hour (namespace "mint", TOKEN_MINTS_PER_HOUR): the live-token cap alone let a
   * leaked token mint and revoke in a loop, each mint a row, an audit event and a notice mailed to the owner.
   */
  tokenMints: FloodControl;
  /** Authenticator-app replacements begun per account an hour (namespace "mfa-replace", APP_REPLACEMENTS_PER_HOUR). */
  appReplacements: FloodControl;
  /** Recovery-code sets made per account an hour (namespace "recovery-codes", RECOVERY_CODE_SETS_PER_HOUR). */
  recoveryCodeSets: FloodControl;
  /** Second factors enrolled per account an hour, passkeys and apps together (namespace "mfa-enrol", FACTOR_ENROLMENTS_PER_HOUR). */
  factorEnrolments: FloodControl;
  jobs: JobStore;
  /** Browser sessions (cookie `__Host-bulwark-session`). */
  sessions: SessionManager;
  /** API tokens `bwk_…` for automation. */
  tokens: TokenService;
  /** TOTP, recovery codes and WebAuthn. */
  mfa: MfaService;
  /** The durable mail queue: security notices and reset links go through it. */
  outbox: Outbox;
  /** Single-use password reset tokens. */
  passwordReset: PasswordResetService;
  /** A reset link's token row and its mail in one transaction (the reset form, containment, an administrator's set-email). */
  resetMailer: ResetMailer;
  /** Email-address changes confirmed by a link to the new address. */
  emailChanges: EmailChangeService;
}

/**
 * `text` fit for a User-Agent comment (RFC 9110 §5.6.5): every character that is not printable ASCII, and "%", "(",
 * ")" and "\\", as the percent-encoded bytes of its UTF-8. A header value must be Latin-1 (fetch throws before sending
 * otherwise), so a service name in Cyrillic made every range lookup fail, and fail-closed refused every new password.
 * Only the request header is encoded: mail, pages and authenticator apps get the name as written.
 *
 * @example
 * userAgentComment("Банк (prod)") // "%D0%91%D0%B0%D0%BD%D0%BA %28prod%29"
 */
function userAgentComment(text: string): string {
  return text.replace(/[^\x20-\x7e]|[%()\\]/gu, (c) => Array.from(Buffer.from(c, "utf8"), (b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join(""));
}

/** The breach lookups the configuration asks for (range API first, then the offline file), and where their outages are logged. */
function breachCheckers(config: Config, logger: Pick<Logger, "warn"> | undefined): Pick<PasswordPolicyOptions, "breachCheckers" | "onBreachCheckUnavailable"> {
  const { breach } = config;
  const checkers: BreachChecker[] = [];
  if (breach.rangeURL !== null) {
    checkers.push(createRangeBreachChecker({ baseUrl: breach.rangeURL, timeoutMs: breach.timeoutMs, onFailure: breach.onFailure, userAgent: `bulwark (${userAgentComment(config.serviceName)})` }));
  }
  if (breach.file !== null) checkers.push(createOfflineBreachFile(breach.file));
  if (checkers.length === 0) return {};
  return {
    breachCheckers: checkers,
    // The reason names the source and what failed, never the password or its hash.
    onBreachCheckUnavailable: (event) => logger?.warn({ breachCheck: event }, `breached-password lookup unavailable (${event.checker}): ${event.failClosed ? "the password was refused" : "the password was accepted unchecked"}`),
  };
}

export function buildAccounts(deps: { config: Config; database: Database; clock: Clock; random: RandomSource; audit: AuditLog; keyring: Keyring; logger?: Pick<Logger, "warn"> }): AccountServices {
  const { config, database, clock, random, audit, keyring } = deps;
  // Every limiter keys its rows with the keyring's flood key (HMAC-SHA256): the same on every node and across master
  // key rotations, and a copy of the tables gives no typed text back to a word list (ASVS 14.2.4, 16.2.5).
  const keyOf = (text: string): string => keyring.floodKey(text);
  const flood = new FloodControl({ database, clock, keyOf });
  // One tolerance for sessions and links dated ahead of a node's clock: the skew a node may have and still serve
  // (src/store/clock-skew.ts), so nodes the product lets serve never refuse, nor purge, each other's genuine ones.
  const datedAheadToleranceMs = datedAheadToleranceFor(config.maxClockSkewMs);
  // Link mails are sealed at rest under the keyring: a copy of the database files holds no working link. And sent only
  // while their link still works, as its service judges it (linkStatesIn).
  const outbox = new Outbox({ database, clock, random, linkCipher: keyring, publicURL: config.http.publicURL, linkStates: linkStatesIn(database.db, clock, datedAheadToleranceMs) });
  const passwordReset = createPasswordResetService({ database, clock, random, policy: { datedAheadToleranceMs } });
  const publicURL = new URL(config.http.publicURL);
  return {
    passwords: createPasswordContext({ random, argon2: config.argon2 }),
    policy: createPasswordPolicy({ minLength: config.passwordMinLength, ...breachCheckers(config, deps.logger) }),
    // The initial-password lifetime in force bounds those already handed out too (createUserStore).
    users: createUserStore({ database, clock, random, initialPasswordMs: config.initialPasswordMs }),
    roles: new RoleStore({ database, clock, audit }),
    flood,
    refusals: new RefusalSampler(),
    callerRefusals: new RefusalSampler(),
    tokenUses: new RefusalSampler({ windowMs: 60 * 60_000, budget: Number.MAX_SAFE_INTEGER, maxKeys: 100_000 }),
    passwordWork: new PasswordWorkGate({ capacity: config.http.passwordChecksInFlight }),
    breachLookups: new PasswordWorkGate({ capacity: config.http.passwordChecksInFlight }),
    mailRequests: new FloodControl({ database, clock, keyOf, namespace: "mail", policy: { ipLimit: config.http.mailRequestsPerHour, ipWindowMs: 60 * 60_000 } }),
    tokenMints: new FloodControl({ database, clock, keyOf, namespace: "mint", policy: { ipLimit: TOKEN_MINTS_PER_HOUR, ipWindowMs: 60 * 60_000 } }),
    // Each begin or set mails the owner: counted per account as they start (takeFor), apart from every other limiter.
    appReplacements: new FloodControl({ database, clock, keyOf, namespace: "mfa-replace", policy: { ipLimit: APP_REPLACEMENTS_PER_HOUR, ipWindowMs: 60 * 60_000 } }),
    recoveryCodeSets: new FloodControl({ database, clock, keyOf, namespace: "recovery-codes", policy: { ipLimit: RECOVERY_CODE_SETS_PER_HOUR, ipWindowMs: 60 * 60_000 } }),
    factorEnrolments: new FloodControl({ database, clock, keyOf, namespace: "mfa-enrol", policy: { ipLimit: FACTOR_ENROLMENTS_PER_HOUR, ipWindowMs: 60 * 60_000 } }),
    // As many as one account's own email-change links an hour (DEFAULT_EMAIL_CHANGE_POLICY): per mailbox, whoever asks.
    mailRecipients: new FloodControl({ database, clock, keyOf, namespace: "mail-to", policy: { ipLimit: DEFAULT_EMAIL_CHANGE_POLICY.maxPerWindow, ipWindowMs: DEFAULT_EMAIL_CHANGE_POLICY.windowMs } }),
    // Sign-ups per mailbox in counters of their own: anonymous requests cannot spend what an owner's change needs.
    signupRecipients: new FloodControl({ database, clock, keyOf, namespace: "signup-to", policy: { ipLimit: SIGN_UPS_PER_MAILBOX_PER_HOUR, ipWindowMs: 60 * 60_000 } }),
    jobs: new JobStore({ database, clock, random }),
    sessions: createSessionManager({ database, clock, random, policy: { ...config.http.session, datedAheadToleranceMs } }),
    tokens: createTokenService({ database, clock, random }),
    mfa: createMfaService({
      // Its own flood counters and limits: code guessing is bounded per user, apart from password guessing.
      database, clock, random, keyring, flood: new FloodControl({ database, clock, keyOf, policy: MFA_FLOOD_POLICY, namespace: MFA_FLOOD_NAMESPACE }), issuer: config.serviceName,
      // The session lifetimes in force: a waiting enrolment stands only while its session does.
      session: config.http.session,
      // WebAuthn binds credentials to the public host name (the RP ID) and checks the page origin: the public URL's
      // only, for registration and assertion alike. Not BULWARK_TRUSTED_ORIGINS: those may post a form with a cookie
      // (CSRF), and a page on one under the RP ID (a marketing subdomain, one taken over) would otherwise run a passkey
      // ceremony for the account and pass the second factor for a relay that holds only the password (ASVS 6.3.3,
      // test/phishing-relay-red-team.test.ts).
      webauthn: { rpID: publicURL.hostname, rpName: config.serviceName, origins: [config.http.publicURL] },
    }),
    outbox,
    passwordReset,
    resetMailer: createResetMailer({ database, resets: passwordReset, outbox, random }),
    emailChanges: createEmailChangeService({ database, clock, random, outbox, audit, policy: { datedAheadToleranceMs } }),
  };
}
