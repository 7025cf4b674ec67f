// Table types for Kysely. Times are integers (milliseconds since the epoch); booleans are 0/1; JSON is
// text. These choices keep one migration set and one query set valid on SQLite and PostgreSQL.
import type { ColumnType } from "kysely";

export interface MigrationsTable {
  version: number;
  name: string;
  applied_at: number;
}

export interface MetaTable {
  name: string;
  value: string;
}

export interface KeyringKeysTable {
  id: string;
  purpose: string;
  status: string;
  created_at: number;
  wrapped: string;
  public_key: string | null;
}

export interface AuditEventsTable {
  seq: number;
  id: string;
  type: string;
  actor: string;
  subject: string;
  data: string;
  at: number;
  request_id: string;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface AuditCheckpointsTable {
  seq: number;
  hash: string;
  at: number;
  key_id: string;
  signature: string;
}

export interface CheckRunsTable {
  id: string;
  check_name: string;
  at: number;
  findings: number;
  max_severity: string | null;
  extra: string;
}

export interface CheckFindingsTable {
  run_id: string;
  ord: number;
  finding_id: string;
  severity: string;
  title: string;
  detail: string;
  evidence: string;
  remediation: string;
}

export interface UsersTable {
  id: string;
  email: string;
  email_key: string;
  username: string | null;
  username_key: string | null;
  /**
   * Confusable skeletons of the email and username as shown (migration 23, src/accounts/users/confusables.ts), null
   * only for no username. Unique among the accounts not marked as look-alikes (`*_lookalike` = 1: stored before the
   * rule beside an account that reads the same; their skeleton still refuses any new look-alike).
   */
  email_skeleton: string | null;
  username_skeleton: string | null;
  email_lookalike: ColumnType<number, number | undefined, number>;
  username_lookalike: ColumnType<number, number | undefined, number>;
  display_name: string | null;
  status: string;
  locked_at: number | null;
  locked_reason: string | null;
  password_hash: string | null;
  password_scheme: string | null;
  password_changed_at: number | null;
  password_must_change: number;
  password_invalidated_at: number | null;
  created_at: number;
  updated_at: number;
  last_login_at: number | null;
  last_login_ip: string | null;
  external_source: string | null;
  external_id: string | null;
  seeded: number;
  /** When an administrator-set initial password stops signing in (migration 19); null: not an initial password. */
  password_initial_expires_at: number | null;
  /** 1 while the password is one whoever created the account knew, or derives from one (migration 24); 0 otherwise. */
  password_unproven: ColumnType<number, number | undefined, number>;
  /** When a containment job held the account's reset link back (migration 27): the public form sends none meanwhile. */
  reset_held_at: number | null;
}

export interface FloodEventsTable {
  scope: string;
  key: string;
  at: number;
  /** The spelling an account event was typed with (hashed; migration 18); "" for IP events and older rows. */
  via: ColumnType<string, string | undefined, string>;
}

export interface FloodStreaksTable {
  key: string;
  failures: number;
  updated_at: number;
}

export interface JobsTable {
  id: string;
  kind: string;
  status: string;
  spec: string;
  cursor: string | null;
  total: number;
  done: number;
  counts: string;
  actor: string;
  incident_id: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
  /**
   * Migration 20: the database's order counter (revocation_counter, migration 16) taken when the job was created, and
   * read when it last ended (null while under way). Orders jobs across nodes whatever their clocks say; 0 for rows
   * written before the migration (docs/decisions/0010-job-order-by-epoch.md).
   */
  created_epoch: number;
  finished_epoch: number | null;
  /**
   * Migration 22: "<caller's user id>:<Idempotency-Key>" of the API request that created the job (unique), and a hash
   * of that request's body; null for jobs created without a key (the CLI, older rows).
   */
  request_key: string | null;
  request_fingerprint: string | null;
}

export interface RolesTable {
  name: string;
  description: string;
  builtin: number;
  created_at: number;
}

export interface RolePermissionsTable {
  role: string;
  permission: string;
}

export interface UserRolesTable {
  user_id: string;
  role: string;
  granted_at: number;
  granted_by: string;
}


// Migration 3: the email outbox.
/** One row per message: the outbox is the only record that an email is owed, so it is never deleted by the sender. */
export interface OutboxMessagesTable {
  id: string;
  /** Unique: enqueueing the same key twice keeps one row (a retried request or job cannot duplicate a message). */
  idempotency_key: string;
  to_address: string;
  subject: string;
  body_text: string;
  body_html: string | null;
  kind: string;
  /** Lower is sent first: security notices (0) overtake a 100,000-recipient campaign (10). */
  priority: number;
  status: string;
  attempts: number;
  /** When the row may next be claimed; while `sending` it equals the lease expiry, so one index finds both. */
  next_attempt_at: number;
  last_error: string | null;
  created_at: number;
  sent_at: number | null;
  claimed_by: string | null;
  claimed_until: number | null;
  provider_message_id: string | null;
  campaign_id: string | null;
  /** Migration 36: when the message's single-use link stops working (not sent after it), null for mail without one. */
  not_after: number | null;
  /** Migration 36: the account whose current address the message is for (not sent once it has another), else null. */
  account_id: string | null;
  /** Migration 38: the id of the link row the message carries (not sent once that link is closed), else null. */
  link_id: string | null;
}

// Migration 4: sessions and revocation stamps.
export interface SessionsTable {
  id: string;
  user_id: string | null;
  secret_hash: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  ip: string | null;
  user_agent: string | null;
  aal: number;
  /** revocation_counter's value when issued (migration 16); a stamp with a larger not_before_epoch refuses it. */
  issued_epoch: number;
  /** The second factor that raised it to aal 2 (migration 25, factorRef); null below aal 2, or not known (older rows). */
  factor: string | null;
  /**
   * 1 when the login that made it found its browser known, or (an account with a second factor) queued the new-device
   * notice for it (migration 34, Session.deviceTold); 0 otherwise.
   */
  device_told: ColumnType<number, number | undefined, number>;
}

export interface RevocationStampsTable {
  scope: string;
  not_before: number;
  updated_at: number;
  /** Migration 16: rows issued with a smaller revocation_counter value are refused (0: none). */
  not_before_epoch: ColumnType<number, number | undefined, number>;
}

/** Migration 17: sessions a rotation replaced, for a minute (src/accounts/sessions/session-manager.ts). */
export interface ReplacedSessionsTable {
  id: string;
  secret_hash: string;
  replaced_at: number;
}

/** Migration 16: the one-row counter a revocation stamp raise increments (src/accounts/sessions/revocation.ts). */
export interface RevocationCounterTable {
  id: number;
  value: number;
}

// Migration 5: second factors and API tokens.
export interface MfaTotpTable {
  user_id: string;
  secret_ct: string;
  created_at: number;
  confirmed_at: number | null;
  last_step: number | null;
  // Migration 30: a replacement app waiting for its first code (its sealed secret and when it was begun); null: none.
  pending_secret_ct: ColumnType<string | null, string | null | undefined, string | null>;
  pending_created_at: ColumnType<number | null, number | null | undefined, number | null>;
  // Migration 32: the session that began it, the only one that may confirm it.
  pending_session_id: ColumnType<string | null, string | null | undefined, string | null>;
  // Migration 35: the session that began the app's enrolment while not confirmed, the only one that may confirm it; null
  // once confirmed (and on enrolments begun before it, or by a caller outside any session).
  enrolment_session_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface MfaRecoveryCodesTable {
  id: string;
  user_id: string;
  code_hash: string;
  created_at: number;
  used_at: number | null;
}

export interface WebAuthnCredentialsTable {
  id: string;
  user_id: string;
  public_key: string;
  counter: number;
  transports: string;
  created_at: number;
  last_used_at: number | null;
  name: string;
  /** When the passkey was caught as cloned (migration 29): every assertion with it is refused until it is removed. */
  suspended_at: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface WebAuthnChallengesTable {
  challenge: string;
  user_id: string | null;
  purpose: string;
  /** The flow the challenge belongs to ("session:<id>", "reset:<token id>"); '' by default (migration 14). */
  context: ColumnType<string, string | undefined, string>;
  created_at: number;
  expires_at: number;
}

export interface APITokensTable {
  id: string;
  user_id: string;
  name: string;
  secret_hash: string;
  scopes: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  last_used_ip: string | null;
  revoked_at: number | null;
  /** Migration 12: the token that minted this one (null when a session did). Optional only for older inserts. */
  parent_id?: string | null;
  /** revocation_counter's value when issued (migration 16). */
  issued_epoch: number;
}

// Migration 7: containment jobs and linked identities.
export interface ContainJobUsersTable {
  job_id: string;
  /** 1-based position in the resolved scope: batches are ranges of seq, so a resumed job sees the same set. */
  seq: number;
  user_id: string;
}

export interface ContainChangesTable {
  job_id: string;
  lever: string;
  /** The user's seq in the job's recorded scope (contain_job_users): records are keyed and walked by it. */
  seq: number;
  user_id: string;
  /** What inside the user changed ("" for the user row itself, the role name for a demotion). */
  entity: string;
  /** JSON of the columns before the job changed them, and after (null when the row was deleted). */
  before: string;
  after: string | null;
  /** null until an undo job handles it; then "restored" or "skipped" (changed since). */
  undo_status: string | null;
}

export interface IdentitiesTable {
  id: string;
  user_id: string;
  provider: string;
  subject: string;
  /** Provider tokens, encrypted under the keyring (bound to table, column and row id). */
  access_token_ct: string | null;
  refresh_token_ct: string | null;
  created_at: number;
  last_used_at: number | null;
}

export interface PasswordResetTokensTable {
  id: string;
  user_id: string;
  secret_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

/**
 * Every table the migrations create, as `listTables` names them once all have run (revocation_counter is a view on
 * PostgreSQL, so it is not listed there). Checked against a fresh database on both dialects
 * (src/store/store.conformance.test.ts): a database at the latest version must hold each of them.
 */
export const SCHEMA_TABLES = [
  "api_tokens", "audit_checkpoints", "audit_events", "audit_head", "bulwark_meta", "bulwark_migrations", "check_findings",
  "check_runs", "contain_changes", "contain_job_users", "email_change_tokens", "flood_events", "flood_streaks", "identities",
  "jobs", "keyring_keys", "mfa_recovery_codes", "mfa_totp", "outbox_messages", "password_reset_tokens", "replaced_sessions",
  "revocation_stamps", "role_permissions", "roles", "sessions", "user_roles", "users", "webauthn_challenges", "webauthn_credentials",
] as const;

export interface Schema {
  roles: RolesTable;
  role_permissions: RolePermissionsTable;
  user_roles: UserRolesTable;
  users: UsersTable;
  flood_events: FloodEventsTable;
  flood_streaks: FloodStreaksTable;
  jobs: JobsTable;
  bulwark_migrations: MigrationsTable;
  bulwark_meta: MetaTable;
  keyring_keys: KeyringKeysTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  check_runs: CheckRunsTable;
  check_findings: CheckFindingsTable;
  outbox_messages: OutboxMessagesTable;
  sessions: SessionsTable;
  revocation_stamps: RevocationStampsTable;
  revocation_counter: RevocationCounterTable;
  replaced_sessions: ReplacedSessionsTable;
  mfa_totp: MfaTotpTable;
  mfa_recovery_codes: MfaRecoveryCodesTable;
  webauthn_credentials: WebAuthnCredentialsTable;
  webauthn_challenges: WebAuthnChallengesTable;
  api_tokens: APITokensTable;
  contain_job_users: ContainJobUsersTable;
  contain_changes: ContainChangesTable;
  identities: IdentitiesTable;
  password_reset_tokens: PasswordResetTokensTable;
  email_change_tokens: EmailChangeTokensTable;
}

/** Pending email-address changes (migration 9, src/accounts/email-change). */
export interface EmailChangeTokensTable {
  id: string;
  user_id: string;
  new_email: string;
  secret_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** revocation_counter's value when issued (migration 16). */
  issued_epoch: number;
}
