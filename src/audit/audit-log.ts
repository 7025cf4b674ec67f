// The append-only, hash-chained audit log. Appends from many processes (and PostgreSQL nodes) keep one
// linear chain: an event is inserted only if the head is still the one its hash was computed over.
import type { StatementSync } from "node:sqlite";
import { CompiledQuery, type Kysely } from "kysely";
import { newOrderedId } from "../crypto/tokens.ts";
import type { Signer } from "../crypto/signer.ts";
import { verifyWithPublicKey } from "../crypto/keyring.ts";
import { fromBase64URL, toBase64URL } from "../lib/encoding.ts";
import type { Clock } from "../lib/clock.ts";
import { RuntimeFailure } from "../lib/errors.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";
import { canonicalValue } from "./canonical.ts";
import { GENESIS_HASH, checkpointMessage, eventHash, type ChainFields } from "./chain.ts";
import { verifyChain, type Checkpoint, type VerifyReport } from "./verify.ts";

export interface AuditInput {
  /** Dotted event type, e.g. `bulwark.init`, `auth.login.failed`. */
  type: string;
  /** Who did it: a user id, `system`, `cli:<os user>`... */
  actor?: string;
  /** What it was done to. */
  subject?: string;
  data?: Record<string, unknown>;
  requestId?: string;
}

export interface AuditEvent {
  seq: number;
  id: string;
  type: string;
  actor: string;
  subject: string;
  data: Record<string, unknown>;
  at: number;
  requestId: string;
  prevHash: string;
  hash: string;
}

export interface AuditLogOptions {
  database: Database;
  clock: Clock;
  random: RandomSource;
  /** Signs checkpoints; without it no checkpoint is taken. */
  signer?: () => Promise<Signer>;
  /** Take a signed checkpoint every N events (default 1000). */
  checkpointEvery?: number;
}

// Events are bounded so a caller cannot bloat the log with one huge record.
const MAX_DATA_BYTES = 64 * 1024;
const MAX_FIELD = 512;
const PAGE = 5000;

// Outside a transaction an append cannot be rolled back after it succeeded, so the cached head is the true
// head or older; a plain insert at head+1 either lands on the chain or collides on seq and retries.
const INSERT_PLAIN_SQL =
  "INSERT INTO audit_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) " +
  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (seq) DO NOTHING";

// Inside a caller's transaction the event may still roll back, so the insert also checks that the head it
// links to is the current one (a rolled-back head must never be linked to).
const INSERT_SQL =
  "INSERT INTO audit_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) " +
  "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM audit_head WHERE id = 1 AND seq = $11 AND hash = $12) " +
  "ON CONFLICT (seq) DO NOTHING";

function bounded(name: string, value: string): string {
  if (value.length > MAX_FIELD) throw new RuntimeFailure("BULWARK_ERR_AUDIT_FIELD", `audit ${name} is longer than ${MAX_FIELD} characters`);
  return value;
}

export class AuditLog {
  readonly #database: Database;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #signer: (() => Promise<Signer>) | undefined;
  readonly #every: number;
  readonly #insertSQL: string;
  readonly #insertPlainSQL: string;
  #head: { seq: number; hash: string } | null = null;

  constructor(options: AuditLogOptions) {
    this.#database = options.database;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#signer = options.signer;
    this.#every = options.checkpointEvery ?? 1000;
    // node:sqlite numbers parameters as ?NNN; PostgreSQL as $N. Same statement otherwise.
    const numbered = (q: string): string => (options.database.dialect === "sqlite" ? q.replace(/\$(\d+)/g, "?$1") : q);
    this.#insertSQL = numbered(INSERT_SQL);
    this.#insertPlainSQL = numbered(INSERT_PLAIN_SQL);
  }

  #plainStatement: StatementSync | null = null;

  #sqliteInsert(values: unknown[]): boolean {
    this.#plainStatement ??= this.#database.sqlite!.prepare(this.#insertPlainSQL);
    return this.#plainStatement.run(...(values as Array<string | number>)).changes === 1;
  }

  async #readHead(db: Kysely<Schema>): Promise<{ seq: number; hash: string }> {
    const row = await db.selectFrom("audit_head").select(["seq", "hash"]).where("id", "=", 1).executeTakeFirst();
    return row ? { seq: Number(row.seq), hash: row.hash } : { seq: 0, hash: GENESIS_HASH };
  }

  /**
   * Appends one event and returns it. Safe under concurrent appends from other processes.
   *
   * @example
   * await audit.append({ type: "keyring.key-created", actor: "system", subject: keyId });
   */
  async append(input: AuditInput): Promise<AuditEvent> {
    return this.appendIn(this.#database.db, input);
  }

  /** Appends inside a caller's transaction, so the event commits (or rolls back) with its change. */
  async appendIn(db: Kysely<Schema>, input: AuditInput): Promise<AuditEvent> {
    // Normalised once: the text is stored and hashed, the value is what the caller gets back.
    const value = canonicalValue(input.data ?? {}) as Record<string, unknown>;
    const data = JSON.stringify(value);
    if (Buffer.byteLength(data) > MAX_DATA_BYTES) {
      throw new RuntimeFailure("BULWARK_ERR_AUDIT_FIELD", `audit data is larger than ${MAX_DATA_BYTES} bytes`);
    }
    const base = {
      id: newOrderedId("evt", this.#clock.now(), this.#random),
      type: bounded("type", input.type),
      actor: bounded("actor", input.actor ?? "system"),
      subject: bounded("subject", input.subject ?? ""),
      requestId: bounded("request id", input.requestId ?? ""),
      data,
    };
    const autocommit = db === this.#database.db;
    for (let attempt = 0; attempt < 10_000; attempt++) {
      // In a transaction the head is read inside it; outside, the cached head (if any) is tried first.
      const head = (autocommit ? this.#head : null) ?? (await this.#readHead(db));
      const fields: ChainFields = { ...base, seq: head.seq + 1, at: this.#clock.now(), prevHash: head.hash };
      const hash = eventHash(fields);
      const values = [fields.seq, fields.id, fields.type, fields.actor, fields.subject, fields.data, fields.at, fields.requestId, fields.prevHash, hash];
      const inserted = autocommit && this.#database.sqlite && !this.#database.sqlite.isTransaction
        // node:sqlite runs a statement synchronously: with no transaction open on the connection, a direct
        // prepared insert cannot interleave with anything else, so it skips the query builder (the hot path).
        ? this.#sqliteInsert(values)
        : (await db.executeQuery(
            autocommit ? CompiledQuery.raw(this.#insertPlainSQL, values) : CompiledQuery.raw(this.#insertSQL, [...values, head.seq, head.hash]),
          )).numAffectedRows === 1n;
      if (inserted) {
        // An event appended in a transaction may roll back: never cache it as the head.
        this.#head = autocommit ? { seq: fields.seq, hash } : null;
        if (this.#signer && fields.seq % this.#every === 0 && db === this.#database.db) await this.checkpoint();
        return { ...fields, data: value, hash };
      }
      // Another writer moved the head (or our cached head was rolled back): read it again.
      this.#head = null;
      if (attempt > 10) await new Promise((r) => setTimeout(r, Math.min(50, attempt)));
    }
    throw new RuntimeFailure("BULWARK_ERR_AUDIT_CONTENTION", "could not append to the audit log: the chain head kept moving");
  }

  /** Signs the current head and stores it as a checkpoint. Returns null on an empty log. */
  async checkpoint(): Promise<Checkpoint | null> {
    if (!this.#signer) return null;
    const head = await this.#readHead(this.#database.db);
    if (head.seq === 0) return null;
    const signer = await this.#signer();
    const at = this.#clock.now();
    const signature = toBase64URL(signer.sign(checkpointMessage(head.seq, head.hash, at)));
    await this.#database.db
      .insertInto("audit_checkpoints")
      .values({ seq: head.seq, hash: head.hash, at, key_id: signer.keyId, signature })
      .onConflict((oc) => oc.column("seq").doNothing())
      .execute();
    return { seq: head.seq, hash: head.hash, at, keyId: signer.keyId, signature };
  }

  async checkpoints(): Promise<Checkpoint[]> {
    const rows = await this.#database.db.selectFrom("audit_checkpoints").selectAll().orderBy("seq").execute();
    return rows.map((r) => ({ seq: Number(r.seq), hash: r.hash, at: Number(r.at), keyId: r.key_id, signature: r.signature }));
  }

  /** Stored events in seq order, starting after `afterSeq`. */
  async *rows(options: { afterSeq?: number; sinceAt?: number } = {}): AsyncGenerator<ChainFields & { hash: string }> {
    for await (const page of this.pages(options)) yield* page;
  }

  /** Stored events in seq order, a page (array) at a time. */
  async *pages(options: { afterSeq?: number; sinceAt?: number } = {}): AsyncGenerator<Array<ChainFields & { hash: string }>> {
    if (this.#database.sqlite && options.sinceAt === undefined) {
      yield* this.#sqlitePages(options.afterSeq ?? 0);
      return;
    }
    let after = options.afterSeq ?? 0;
    for (;;) {
      let q = this.#database.db.selectFrom("audit_events").selectAll().where("seq", ">", after).orderBy("seq").limit(PAGE);
      if (options.sinceAt !== undefined) q = q.where("at", ">=", options.sinceAt);
      const page = await q.execute();
      yield page.map((r) => ({
        seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at: Number(r.at),
        requestId: r.request_id, prevHash: r.prev_hash, hash: r.hash, data: r.data,
      }));
      if (page.length < PAGE) return;
      after = Number(page[page.length - 1]!.seq);
    }
  }

  /**
   * SQLite fast path for verify and export: one prepared statement read as arrays, in pages so the
   * write lock is never held off by a long read, without building two objects per row.
   */
  async *#sqlitePages(afterSeq: number): AsyncGenerator<Array<ChainFields & { hash: string }>> {
    const stmt = this.#database.sqlite!.prepare(
      "SELECT seq, id, type, actor, subject, data, at, request_id, prev_hash, hash FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?",
    );
    stmt.setReturnArrays(true);
    let after = afterSeq;
    for (;;) {
      const page = stmt.all(after, PAGE * 4) as unknown as Array<[number, string, string, string, string, string, number, string, string, string]>;
      yield page.map((r) => ({ seq: r[0], id: r[1], type: r[2], actor: r[3], subject: r[4], data: r[5], at: r[6], requestId: r[7], prevHash: r[8], hash: r[9] }));
      if (page.length < PAGE * 4) return;
      after = page[page.length - 1]![0];
    }
  }

  /** Events as exported (data parsed), for `audit export` and `audit tail`. */
  async *events(options: { afterSeq?: number; sinceAt?: number } = {}): AsyncGenerator<AuditEvent> {
    for await (const r of this.rows(options)) yield toEvent(r);
  }

  /** The newest `count` events, oldest first. */
  async tail(count: number): Promise<AuditEvent[]> {
    const rows = await this.#database.db.selectFrom("audit_events").selectAll().orderBy("seq", "desc").limit(count).execute();
    return rows.reverse().map((r) =>
      toEvent({ seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at: Number(r.at), requestId: r.request_id, prevHash: r.prev_hash, hash: r.hash, data: r.data }),
    );
  }

  /**
   * Verifies the stored chain, the recorded head, every stored checkpoint (hash and signature) and
   * any checkpoints exported earlier.
   */
  async verify(options: { exported?: Checkpoint[]; onProgress?: (n: number) => void } = {}): Promise<VerifyReport> {
    const head = await this.#readHead(this.#database.db);
    const stored = await this.checkpoints();
    const signer = this.#signer ? await this.#signer() : null;
    return verifyChain(this.pages(), {
      head,
      checkpoints: [...stored, ...(options.exported ?? [])],
      verifySignature: (cp) => {
        const message = checkpointMessage(cp.seq, cp.hash, cp.at);
        const signature = fromBase64URL(cp.signature);
        if (cp.publicKey) return verifyWithPublicKey(cp.publicKey, message, signature);
        // Without the keyring a stored checkpoint's signature cannot be checked; its hash still is.
        return signer ? signer.verify(cp.keyId, message, signature) : true;
      },
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
  }
}

function toEvent(r: ChainFields & { hash: string }): AuditEvent {
  return { seq: r.seq, id: r.id, type: r.type, actor: r.actor, subject: r.subject, data: JSON.parse(r.data) as Record<string, unknown>, at: r.at, requestId: r.requestId, prevHash: r.prevHash, hash: r.hash };
}
