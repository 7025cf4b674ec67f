// Table types for Kysely. Times are integers (milliseconds since the epoch); booleans are 0/1; JSON is
// text. These choices keep one migration set and one query set valid on SQLite and PostgreSQL.

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
}

export interface FloodEventsTable {
  scope: string;
  key: string;
  at: number;
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
}
