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

export interface Schema {
  bulwark_migrations: MigrationsTable;
  bulwark_meta: MetaTable;
  keyring_keys: KeyringKeysTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  check_runs: CheckRunsTable;
  check_findings: CheckFindingsTable;
}
