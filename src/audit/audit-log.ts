// The append-only, hash-chained audit log. Appends from many processes (and PostgreSQL nodes) keep one
// linear chain: an event is inserted only if the head is still the one its hash was computed over.
import type { StatementSync } from "node:sqlite";
import { CompiledQuery, sql, type Kysely } from "kysely";
import { newOrderedId } from "../crypto/tokens.ts";
import type { Signer } from "../crypto/signer.ts";
import { KEY_FRESHNESS_MS, verifyWithPublicKey } from "../crypto/keyring.ts";
import { fromBase64URL, toBase64URL } from "../lib/encoding.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { DEFAULT_DATED_AHEAD_TOLERANCE_MS } from "../store/clock-skew.ts";
import { isSQLiteBusy } from "../store/errors.ts";
import type { Schema } from "../store/schema.ts";
import { numberedFor } from "../store/sqlite-dialect-prepared.ts";
import { canonicalValue } from "./canonical.ts";
import { GENESIS_HASH, checkpointMessage, eventHash, type ChainFields } from "./chain.ts";
import { auditErrors, type AuditError } from "./errors.ts";
import { MAX_EVENT_TIME_MS } from "./event-time.ts";
import { pagesIn, storedPages, tailEvents, toEvent, type AuditEvent, type ReadOptions, type StoredRow } from "./read-events.ts";
import { checkpointKeyProblem, firstCheckpointProblem, keyOrder } from "./signing-keys.ts";
import { brokenReport, checkCheckpointSchedule, untimelyProblem, verifyChain, type Checkpoint, type VerifyProblem, type VerifyReport } from "./verify.ts";

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

export type { AuditEvent } from "./read-events.ts";

export interface AuditLogOptions {
  database: Database;
  clock: Clock;
  random: RandomSource;
  /**
   * Signs checkpoints; without it no checkpoint is taken and stored signatures cannot be checked. Given `executor`
   * (a caller's transaction), it must read anything it needs through it: on SQLite a read outside the transaction
   * would wait for it for ever.
   */
  signer?: SignerSource;
  /** Take a signed checkpoint every N events (default 1000). */
  checkpointEvery?: number;
  /**
   * How far ahead of this clock the store's keys may be dated while a log with no checkpoint is still taken as young
   * (firstCheckpointProblem), and how late after its signing key's retirement verify takes a checkpoint
   * (checkpointKeyProblem): the skew two nodes may have and still serve. DEFAULT_DATED_AHEAD_TOLERANCE_MS (60 s) by
   * default; the app gives datedAheadToleranceFor(config.maxClockSkewMs), as for sessions and links. 0 or more.
   */
  aheadToleranceMs?: number;
}

type Head = { seq: number; hash: string };
type SignableOptions = { rotation?: boolean; first?: boolean; nextEvent?: boolean };
/** #signable's verdict: the signer to sign with, and why not (`error`: the refusal to throw, when it has a code of its own). */
type Signable = { signer: Signer; problem: VerifyProblem | null; error?: AuditError };

/**
 * The current signer, read through `executor` when given (see AuditLogOptions.signer); `reload`: read the key table
 * first, whatever the keyring's freshness window says (a checkpoint below was signed by a key it does not know yet).
 */
export type SignerSource = (executor?: Kysely<Schema>, options?: { reload?: boolean }) => Promise<Signer>;

export interface AuditVerifyOptions {
  /** Checkpoints exported earlier (kept elsewhere) to hold the chain against. */
  exported?: Checkpoint[];
  /** Checks an exported checkpoint's signature (see checkpointKeyCheck); by default, with the key it carries. */
  verifyExported?: (checkpoint: Checkpoint) => boolean;
  onProgress?: (events: number) => void;
}
type Prepared = { value: Record<string, unknown>; base: Omit<ChainFields, "seq" | "at" | "prevHash"> };

// Events are bounded so a caller cannot bloat the log with one huge record.
const MAX_DATA_BYTES = 64 * 1024;
const MAX_FIELD = 512;
const MAX_ATTEMPTS = 10_000;
// How old a remembered signer may grow before an append fetches it again (inside a caller's transaction, through
// it): the keyring's own freshness window, within which it notices a rotation made elsewhere.
const SIGNER_REFRESH_MS = KEY_FRESHNESS_MS;

// Outside a transaction an append cannot be rolled back after it succeeded, so the cached head is the true
// head or older; a plain insert at head+1 either lands on the chain or collides on seq and retries.
const INSERT_PLAIN_SQL =
  "INSERT INTO audit_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) " +
  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (seq) DO NOTHING";

// Inside a transaction the event may still roll back, so the insert also checks that the head it links to
// is the current one (a rolled-back head must never be linked to).
const INSERT_SQL =
  "INSERT INTO audit_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) " +
  "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM audit_head WHERE id = 1 AND seq = $11 AND hash = $12) " +
  "ON CONFLICT (seq) DO NOTHING";

function bounded(name: string, value: string): string {
  if (value.length > MAX_FIELD) throw auditErrors.fieldTooLong(name, MAX_FIELD);
  // A lone surrogate is hashed as given (JSON escapes it) but stored by the database as U+FFFD, so the event
  // could never verify again. Data needs no such rule: its canonical JSON escapes lone surrogates as text.
  if (!value.isWellFormed()) throw auditErrors.fieldNotWellFormed(name);
  return value;
}

export class AuditLog {
  readonly #database: Database;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #signer: SignerSource | undefined;
  readonly #every: number;
  readonly #aheadToleranceMs: number;
  readonly #insertSQL: string;
  readonly #insertPlainSQL: string;
  #head: Head | null = null;
  // The newest committed checkpoint's position, as far as this process knows: never above the stored one, so
  // deciding "not due yet" from it can never skip a checkpoint. Only committed facts are cached here.
  #lastCheckpoint: number | null = null;
  /** After a scheduled checkpoint was refused (#signable), the position from which signing is tried again. */
  #retrySigningAt = 0;
  // The same, per caller transaction, including checkpoints that transaction took (which may still roll back).
  readonly #inTransaction = new WeakMap<object, number>();
  // The signer, as last fetched. Fetching can read the key table (the keyring reloads keys made by other
  // processes), which inside a transaction on SQLite's single connection would wait for that transaction for
  // ever; so an append inside a caller's transaction fetches it through that transaction (#transactionSigner).
  #signerCache: Signer | null = null;
  #signerFetchedAt = -Infinity;
  // The newest event this process knows committed: its own append outside a transaction, a checkpoint it signed, or an
  // append in a caller's transaction once seen stored (#settle). Each was linked or signed only over a log that still
  // held the one before (#alteredProblem), so its hash vouches for all of them: a log that no longer holds it was cut
  // back or rewritten by a writer of the tables, and signing it would vouch for the erasure (ASVS 16.4.2). Kept in
  // memory only: a restart (as after a restore from backup) forgets it.
  #committed: Head | null = null;
  // The newest event appended in a caller's transaction. Nothing tells this class when that transaction commits, so the
  // event becomes a fact only when read back stored through another executor (#settle).
  #pending: { trx: WeakRef<Kysely<Schema>>; head: Head } | null = null;

  constructor(options: AuditLogOptions) {
    this.#database = options.database;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#signer = options.signer;
    this.#every = options.checkpointEvery ?? 1000;
    if (!Number.isSafeInteger(this.#every) || this.#every < 1) throw new RangeError(`checkpointEvery must be a positive integer, got ${options.checkpointEvery}`);
    this.#aheadToleranceMs = options.aheadToleranceMs ?? DEFAULT_DATED_AHEAD_TOLERANCE_MS;
    if (!Number.isSafeInteger(this.#aheadToleranceMs) || this.#aheadToleranceMs < 0) {
      throw new RangeError(`aheadToleranceMs must be a whole number of milliseconds, 0 or more, got ${options.aheadToleranceMs}`);
    }
    this.#insertSQL = numberedFor(options.database, INSERT_SQL);
    this.#insertPlainSQL = numberedFor(options.database, INSERT_PLAIN_SQL);
    // Fetched now, before any caller's transaction can need it (see #signerCache); a failure waits for a retry.
    this.#signer?.().then((s) => (this.#signerCache ??= s), () => {});
  }

  /** The remembered signer while it is younger than SIGNER_REFRESH_MS, else null. */
  #freshSigner(): Signer | null {
    const age = this.#clock.now() - this.#signerFetchedAt;
    return this.#signerCache !== null && age < SIGNER_REFRESH_MS && age >= 0 ? this.#signerCache : null;
  }

  /** The signer for an append inside the caller's transaction `trx`: the remembered one while fresh, else read through `trx`. */
  async #transactionSigner(trx: Kysely<Schema>): Promise<Signer | null> {
    const fresh = this.#freshSigner();
    if (fresh !== null || !this.#signer) return fresh;
    // No signer can be had now (no signing key yet): the checkpoint waits, as it would without one.
    return this.#currentSigner(this.#signer, trx).catch(() => this.#signerCache);
  }

  /** The current signer, fetched (through `executor` when given: a caller's transaction) and remembered. */
  async #currentSigner(signer: SignerSource, executor?: Kysely<Schema>, reload = false): Promise<Signer> {
    const fetchedAt = this.#clock.now();
    this.#signerCache = await signer(executor, reload ? { reload } : {});
    this.#signerFetchedAt = fetchedAt;
    return this.#signerCache;
  }

  /**
   * The signer for an append outside a transaction, or null when none can be had (no signing key yet, as while
   * `init` records its migrations): the event is still appended, and a checkpoint due stays due.
   */
  async #appendSigner(signer: SignerSource): Promise<Signer | null> {
    try {
      return await this.#currentSigner(signer);
    } catch {
      return null;
    }
  }

  #plainStatement: StatementSync | null = null;

  /** null: another process holds the write lock (the insert, alone, changed nothing); the driver's path waits for it. */
  #sqliteInsert(values: unknown[]): boolean | null {
    this.#plainStatement ??= this.#database.sqlite!.prepare(this.#insertPlainSQL);
    try {
      return this.#plainStatement.run(...(values as Array<string | number>)).changes === 1;
    } catch (error) {
      if (isSQLiteBusy(error)) return null;
      throw error;
    }
  }

  /** The recorded head; a missing head row reads as an empty log's (so verify names the events it does not record). */
  async #readHead(db: Kysely<Schema>): Promise<Head> {
    return (await this.#headRow(db)) ?? { seq: 0, hash: GENESIS_HASH };
  }

  async #headRow(db: Kysely<Schema>): Promise<Head | null> {
    // As text: a forged head past what a JavaScript number holds reads as a (rounded) position verify can report.
    const row = await db.selectFrom("audit_head").select([sql<string>`CAST(seq AS TEXT)`.as("seq"), "hash"]).where("id", "=", 1).executeTakeFirst();
    return row ? { seq: Number(row.seq), hash: row.hash } : null;
  }

  async #readLastCheckpoint(db: Kysely<Schema>): Promise<number> {
    const row = await db.selectFrom("audit_checkpoints").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst();
    return row?.seq == null ? 0 : Number(row.seq);
  }

  /**
   * After an insert that stored nothing, reads the head again. A head that moved means another writer won the
   * race: retry. A head that did not move means the position after it is taken by a row the head does not
   * record (each insert moves the head in the same statement), so every retry would collide: fail now. So
   * does a missing head row, which no guarded insert can ever match.
   */
  async #nextHead(db: Kysely<Schema>, tried: Head): Promise<Head> {
    this.#head = null;
    const row = await this.#headRow(db);
    if (row === null) throw auditErrors.headMissing();
    if (row.seq === tried.seq && row.hash === tried.hash) {
      const taken = await db.selectFrom("audit_events").select("seq").where("seq", "=", tried.seq + 1).executeTakeFirst();
      if (taken) throw auditErrors.headBehind(row);
    }
    return row;
  }

  /** Remembers `head` as committed by this process (#committed), when it is newer than what it knew. */
  #remember(head: Head): void {
    if (this.#committed === null || head.seq > this.#committed.seq) this.#committed = { seq: head.seq, hash: head.hash };
  }

  /**
   * Settles the event appended in a caller's transaction (#pending), read through `db`, another executor: on SQLite the
   * connection is that transaction's until it ends, and on PostgreSQL another connection sees only committed rows. Stored
   * with its hash, it committed; another hash at its position, it rolled back (or was rewritten before this look: no
   * worse than never knowing it). Not stored yet: still open, or rolled back with nothing appended since; asked again
   * later. `head`, just read through `db`, spares the read when it is that event (a server's next request, mostly).
   * Returns the event when it settled as committed (at or below `head`).
   */
  async #settle(db: Kysely<Schema>, head: Head): Promise<Head | null> {
    const pending = this.#pending;
    if (pending === null || pending.trx.deref() === db) return null;
    let stored: string | null = null;
    if (head.seq === pending.head.seq && head.hash === pending.head.hash) stored = head.hash;
    else if (head.seq >= pending.head.seq) stored = (await db.selectFrom("audit_events").select("hash").where("seq", "=", pending.head.seq).executeTakeFirst())?.hash ?? "";
    if (stored === null) return null;
    if (this.#pending === pending) this.#pending = null;
    if (stored !== pending.head.hash) return null;
    this.#remember(pending.head);
    return pending.head;
  }

  /**
   * Whether the log with head `head` (read through `db`) still holds `known`, the newest event this process knew committed
   * (#committed) before it read `head`: null when it does, else the error naming why not. The head below it with the event
   * gone (the log cut back), or another hash at its position (rewritten and re-linked), pass every check against stored
   * rows, since the chain links and ends at its head; signing that head, or linking to it, would put Bulwark's key behind
   * the erasure. Other nodes only ever move the head past this process's events, so they never meet this. `known` is
   * taken before the head is read: this process's own append committing in between (on PostgreSQL, on another
   * connection) is then not mistaken for a head moved back. Free when `head` is `known` (one process's appends in a
   * row); otherwise one read by position.
   */
  async #alteredProblem(db: Kysely<Schema>, head: Head, known: Head | null, doing: string): Promise<AuditError | null> {
    // An event just seen stored at or below `head` is held to in place of an older fact: its hash covers that one.
    const settled = await this.#settle(db, head);
    if (settled !== null && (known === null || settled.seq > known.seq)) known = settled;
    if (known === null || (head.seq === known.seq && head.hash === known.hash)) return null;
    const row = await db.selectFrom("audit_events").select("hash").where("seq", "=", known.seq).executeTakeFirst();
    if (row === undefined || row.hash !== known.hash) return auditErrors.committedAltered(known, { hash: row?.hash ?? null, head }, { doing });
    if (head.seq > known.seq) return null;
    // Stored as committed, but the head row does not record it: moved back over it (or deleted), which has its own
    // error and repair, or forged at its very position.
    if (head.seq === known.seq) return auditErrors.committedAltered(known, { hash: head.hash, head }, { doing });
    return (await this.#recordedHead(db, doing).then(() => null, (error: AuditError) => error)) ?? auditErrors.headBehind(head, { doing, stored: known.seq });
  }

  /**
   * The check before an append links to `head`: throws when the new event would take a position at or below one this
   * process committed (the log cut back or replaced under it). Returns whether the head holds what it committed, so the
   * new event may become a fact in turn; one linked over a rewrite below the head is appended (the service goes on),
   * but never vouches for it: #committed stays where the rewrite is seen, and every checkpoint is refused.
   */
  async #linkable(db: Kysely<Schema>, head: Head, known: Head | null): Promise<boolean> {
    const altered = await this.#alteredProblem(db, head, known, "append to the audit log");
    if (altered !== null && known !== null && head.seq <= known.seq) throw altered;
    return altered === null;
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
    const prepared = this.#prepare(input);
    if (db !== this.#database.db) {
      // A checkpoint due here is signed with a signer no older than the keyring's freshness window, fetched through
      // the caller's transaction when the one at hand is older: a process that appended only inside transactions
      // (a containment worker) went on signing with a key another node had retired, for as long as it ran. Without
      // one (no signing key yet) the checkpoint is left due, and the next append outside a transaction takes it.
      const { event, linked } = await this.#appendInTransaction(db, prepared, await this.#transactionSigner(db));
      // The event may roll back: never cache it, and drop the cached head, which it makes stale. Known committed only
      // once read back from elsewhere.
      this.#head = null;
      if (linked) this.#pending = { trx: new WeakRef(db), head: { seq: event.seq, hash: event.hash } };
      return event;
    }
    return this.#appendAutocommit(prepared);
  }

  #prepare(input: AuditInput): Prepared {
    // Normalised once: the text is stored and hashed, the value is what the caller gets back.
    const value = canonicalValue(input.data ?? {}) as Record<string, unknown>;
    const data = JSON.stringify(value);
    if (Buffer.byteLength(data) > MAX_DATA_BYTES) throw auditErrors.dataTooLarge(MAX_DATA_BYTES);
    return {
      value,
      base: {
        id: newOrderedId("evt", this.#clock.now(), this.#random),
        type: bounded("type", input.type),
        actor: bounded("actor", input.actor ?? "system"),
        subject: bounded("subject", input.subject ?? ""),
        requestId: bounded("request id", input.requestId ?? ""),
        data,
      },
    };
  }

  async #appendAutocommit(prepared: Prepared): Promise<AuditEvent> {
    const db = this.#database.db;
    // The cached head (if any) is tried first: this process's own last event, so linking to it needs no check. A head
    // read from the database is checked against what this process committed before anything links to it.
    let fresh = this.#head === null;
    let known = this.#committed;
    let head = this.#head ?? (await this.#readHead(db));
    // The cached head becomes a fact only when it is the one this process knew (not one linked over a rewrite, below).
    let linked = known === null || (head.seq === known.seq && head.hash === known.hash);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // Kept fresh: a key rotated out elsewhere signs nothing here past SIGNER_REFRESH_MS.
      const signer = this.#freshSigner() ?? (this.#signer ? await this.#appendSigner(this.#signer) : null);
      if (signer) {
        this.#lastCheckpoint ??= await this.#readLastCheckpoint(db);
        if (head.seq + 1 - this.#lastCheckpoint >= this.#every) {
          // This append is due a checkpoint: event and checkpoint go in one transaction, so no crash or error can
          // store the one without the other (verify holds stored checkpoints to this schedule).
          const { event, newestCheckpoint, linked } = await this.#database.transaction((trx) => this.#appendInTransaction(trx, prepared, signer));
          // Committed: both are facts now.
          this.#head = { seq: event.seq, hash: event.hash };
          if (linked) this.#remember(this.#head);
          if (newestCheckpoint !== null) this.#lastCheckpoint = Math.max(this.#lastCheckpoint, newestCheckpoint);
          return event;
        }
      }
      if (fresh) linked = await this.#linkable(db, head, known);
      const fields: ChainFields = { ...prepared.base, seq: head.seq + 1, at: this.#clock.now(), prevHash: head.hash };
      const hash = eventHash(fields);
      const values = [fields.seq, fields.id, fields.type, fields.actor, fields.subject, fields.data, fields.at, fields.requestId, fields.prevHash, hash];
      // node:sqlite runs a statement synchronously: with no transaction open on the connection, a direct prepared insert
      // cannot interleave with anything else, so it skips the query builder (the hot path); null when it met another
      // process's lock, which the driver's path then waits for.
      const direct = this.#database.sqlite && !this.#database.sqlite.isTransaction ? this.#sqliteInsert(values) : null;
      const inserted = direct ?? (await db.executeQuery(CompiledQuery.raw(this.#insertPlainSQL, values))).numAffectedRows === 1n;
      if (inserted) {
        this.#head = { seq: fields.seq, hash };
        if (linked) this.#remember(this.#head);
        return { ...fields, data: prepared.value, hash };
      }
      // Another writer moved the head (or our cached head is stale): read it again.
      known = this.#committed;
      head = await this.#nextHead(db, head);
      fresh = true;
      if (attempt > 10) await new Promise((r) => setTimeout(r, Math.min(50, attempt)));
    }
    throw auditErrors.contention();
  }

  /** `linked`: the event was linked over a log holding what this process committed (#linkable), so it may become a fact. */
  async #appendInTransaction(trx: Kysely<Schema>, prepared: Prepared, signer: Signer | null): Promise<{ event: AuditEvent; newestCheckpoint: number | null; linked: boolean }> {
    // In a transaction the head is read inside it. What this process knew committed is taken before each read (#alteredProblem).
    let known = this.#committed;
    let head = await this.#readHead(trx);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const linked = await this.#linkable(trx, head, known);
      const fields: ChainFields = { ...prepared.base, seq: head.seq + 1, at: this.#clock.now(), prevHash: head.hash };
      const hash = eventHash(fields);
      const values = [fields.seq, fields.id, fields.type, fields.actor, fields.subject, fields.data, fields.at, fields.requestId, fields.prevHash, hash];
      const inserted = (await trx.executeQuery(CompiledQuery.raw(this.#insertSQL, [...values, head.seq, head.hash]))).numAffectedRows === 1n;
      if (inserted) {
        const newestCheckpoint = signer ? await this.#scheduledCheckpoint(trx, signer, fields.seq, hash) : null;
        return { event: { ...fields, data: prepared.value, hash }, newestCheckpoint, linked };
      }
      known = this.#committed;
      head = await this.#nextHead(trx, head);
      if (attempt > 10) await new Promise((r) => setTimeout(r, Math.min(50, attempt)));
    }
    throw auditErrors.contention();
  }

  /**
   * Takes the scheduled checkpoint in the transaction that just appended event `seq`, when `seq` is `every` or
   * more past the newest stored checkpoint. Every event before `seq` is committed (the chain is linear and the
   * insert checked the head), and so is every checkpoint taken with one, so the read below sees them all.
   * Returns the newest checkpoint position seen in this transaction, or null when none had to be read.
   */
  async #scheduledCheckpoint(trx: Kysely<Schema>, signer: Signer, seq: number, hash: string): Promise<number | null> {
    const known = Math.max(this.#lastCheckpoint ?? -Infinity, this.#inTransaction.get(trx) ?? -Infinity);
    if (seq - known < this.#every) return null; // `known` is never above the stored newest: surely not due
    let newest = await this.#readLastCheckpoint(trx);
    if (seq - newest >= this.#every && seq >= this.#retrySigningAt) {
      const judged = await this.#signable(trx, signer, { seq, hash });
      signer = judged.signer;
      if (judged.problem === null) {
        const at = this.#clock.now();
        const signature = toBase64URL(signer.sign(checkpointMessage(seq, hash, at)));
        await trx.insertInto("audit_checkpoints").values({ seq, hash, at, key_id: signer.keyId, signature }).onConflict((oc) => oc.column("seq").doNothing()).execute();
        newest = seq;
      } else {
        // Nothing is signed over a chain the stored rows do not hold; the append commits unsigned and verify will
        // say why. Checked again an interval later, not on every append meanwhile.
        this.#retrySigningAt = seq + this.#every;
      }
    }
    this.#inTransaction.set(trx, newest);
    return newest;
  }

  /**
   * Why `target` must not be signed, or null when it may. A signature vouches for the chain up to it, so the
   * stored events from the newest stored checkpoint below it (its signature checked) up to `target` must re-hash
   * and link, and the event at `target.seq` must carry `target.hash`. Otherwise the process holding the key is a
   * signing oracle: whoever can write the tables aims the head at a forged hash, waits for a routine checkpoint
   * (an append on the schedule, a server stop, `audit checkpoint`), then swaps the forged rows in. Reads at most
   * the events since the newest checkpoint (one schedule interval on a healthy log), through `db` (the transaction
   * that signs). Returns the signer to sign with: `signer`, or the current one read again (through `db`, the key table
   * first) when the checkpoint below is signed by a key `signer` does not hold or a newer one (another node rotated
   * moments ago, and this one must not sign with the retired key after the new key signed). `rotation`: for a signing-key
   * rotation (`given` is the new key); `first`: an operator's --first; `nextEvent`: judged for the event to be appended
   * after `target` (a rotation's dry run, which appends none), so the checkpoint below may be the one at `target`.
   */
  async #signable(db: Kysely<Schema>, given: Signer, target: Head, options: SignableOptions = {}): Promise<Signable> {
    const { rotation = false, first = false, nextEvent = false } = options;
    let signer = given;
    const refused = (problem: string): Signable => ({ signer, problem: { seq: from, id: null, problem } });
    const base = await db.selectFrom("audit_checkpoints").selectAll().where("seq", nextEvent ? "<=" : "<", target.seq).orderBy("seq", "desc").limit(1).executeTakeFirst();
    const from = base ? Number(base.seq) : 1;
    // No checkpoint below at all, in a store whose keys are older than a log may go without one: not signed on routine
    // nor by a rotation (either would vouch for a whole rewrite with the checkpoints deleted); an operator's --first may.
    if (!base && !first) {
      const none = firstCheckpointProblem(signer, this.#clock.now(), { aheadToleranceMs: this.#aheadToleranceMs });
      if (none !== null) return refused(none);
    }
    // A checkpoint this process stored or saw stored, above the newest one below the target now, is gone: deleted (and
    // the events after the one below perhaps rewritten), or the log cut back under it. Signing would vouch for that.
    const known = this.#lastCheckpoint ?? 0;
    if (known > (base ? Number(base.seq) : 0)) {
      return refused(`the checkpoint at event #${known}, which this process stored or read, is no longer stored below event #${target.seq} ` +
        `(the newest there is ${base ? `#${Number(base.seq)}` : "none"}): checkpoints were deleted or the log cut back; refusing to vouch for what follows`);
    }
    // Likewise an event this process committed after the newest checkpoint: cut away, or rewritten with the chain
    // re-linked, though everything below re-hashes and links.
    // `target` is held (the head locked, or the event this transaction just appended): none of this process's appends
    // can commit past it meanwhile, so what it knows now is what it knew when `target` was read.
    const altered = await this.#alteredProblem(db, target, this.#committed, "sign a checkpoint");
    if (altered) return { ...refused(altered.message), error: altered };
    let order = base ? keyOrder(signer, base.key_id) : null;
    if (base && order === "older" && !rotation && this.#signer) {
      signer = await this.#currentSigner(this.#signer, db, true);
      order = keyOrder(signer, base.key_id);
    }
    if (order === "older") return refused(`the checkpoint at event #${from} is signed with ${base?.key_id}, a newer signing key than this process's ${signer.keyId}`);
    // After a rotation every checkpoint is the new key's (the rotation signs one at once): a retired key's right below
    // means the new key's were deleted, and signing over it would vouch for whatever the retired key signed since.
    if (order === "newer" && !rotation) {
      return refused(`the newest checkpoint below, at event #${from}, is signed with the retired signing key ${base?.key_id}, and the current key ${signer.keyId} signed none ` +
        "after it: its checkpoints were deleted (or it was made current without `audit rotate-signing-key`); refusing to vouch for what the retired key signed");
    }
    const checkpoints: Checkpoint[] = base ? [{ seq: from, hash: base.hash, at: Number(base.at), keyId: base.key_id, signature: base.signature }] : [];
    const report = await verifyChain(pagesIn(db, from, target.seq), {
      // From a checkpoint: its event's link to the one before is what that checkpoint's signature already covers.
      partial: base !== undefined,
      head: target,
      checkpoints,
      verifySignature: (cp) => signer.verify(cp.keyId, checkpointMessage(cp.seq, cp.hash, cp.at), fromBase64URL(cp.signature)),
    });
    if (report.ok && base && report.checkpointsChecked !== 1) return refused(`the checkpoint at event #${from} is not stored with its event`);
    return { signer, problem: report.problem };
  }

  /**
   * Signs the current head and stores it as a checkpoint. Returns null on an empty log; throws when the stored chain
   * does not hold the head (#signable), and when the log holds no checkpoint yet though its key is over an hour old
   * (firstCheckpointProblem), unless `first` (an operator's `audit checkpoint --first`, by `actor`): then, when no
   * checkpoint is stored at all, the event `audit.first-checkpoint` records who vouched for the log, and the checkpoint
   * covers it. In a transaction holding the head (appends wait), so that no checkpoint lands between reading which key
   * signed the newest one and signing this one.
   */
  async checkpoint(options: { first?: boolean; actor?: string } = {}): Promise<Checkpoint | null> {
    const source = this.#signer;
    if (!source) return null;
    const cp = await this.#database.transaction(async (trx) => {
      const known = this.#committed;
      await this.#lockHead(trx);
      // A missing head row reads as an empty log elsewhere (#readHead): here, over stored events, it is refused.
      let head = await this.#recordedHead(trx, "sign a checkpoint");
      if (head === null || head.seq === 0) return null;
      // Before the answer below, which may be a checkpoint already stored: a log cut back to one, under this process
      // that committed events past it, is refused here (and logged by whoever asked: a maintenance pass, a stop).
      const altered = await this.#alteredProblem(trx, head, known, "sign a checkpoint");
      if (altered) throw altered;
      // The head already signed (a rotation's checkpoint, a scheduled one): that checkpoint is the answer.
      const stored = await trx.selectFrom("audit_checkpoints").selectAll().where("seq", "=", head.seq).executeTakeFirst();
      if (stored && stored.hash === head.hash) return { seq: head.seq, hash: stored.hash, at: Number(stored.at), keyId: stored.key_id, signature: stored.signature };
      if (options.first === true && !(await trx.selectFrom("audit_checkpoints").select("seq").limit(1).executeTakeFirst())) {
        // An operator vouches for a log no checkpoint covers: who and when is part of what the checkpoint signs.
        const { event } = await this.#appendInTransaction(trx, this.#prepare({ type: "audit.first-checkpoint", actor: options.actor ?? "system", data: { events: head.seq } }), null);
        this.#head = null;
        head = { seq: event.seq, hash: event.hash };
      }
      return this.#signHead(trx, await this.#currentSigner(source, trx), head, false, options.first === true);
    });
    if (cp !== null) {
      this.#lastCheckpoint = Math.max(this.#lastCheckpoint ?? 0, cp.seq);
      // Signed (or found signed) over a log that held what this process committed: the signed event is one of its facts.
      this.#remember(cp);
    }
    return cp;
  }

  /** Holds the head row until the end of `trx` (PostgreSQL; SQLite's write lock, taken at BEGIN, already does): appends wait. */
  async #lockHead(trx: Kysely<Schema>): Promise<void> {
    if (this.#database.dialect === "postgres") await trx.selectFrom("audit_head").select("seq").where("id", "=", 1).forUpdate().execute();
  }

  /**
   * The head, read through `trx` (which holds it, #lockHead), when it records the stored log; null when the head row
   * is missing and no event is stored. #signable checks the events up to the head and none past it, so a head moved
   * back (the rows after it left in place) was signed as if the log ended there, while verify called the chain broken;
   * and a missing row over stored events read as an empty log. Both are refused here, naming `doing` (what was asked)
   * and the repair. With the head held, every committed event past it is one the head does not record.
   */
  async #recordedHead(trx: Kysely<Schema>, doing: string): Promise<Head | null> {
    const row = await this.#headRow(trx);
    if (row === null) {
      const stored = await trx.selectFrom("audit_events").select("seq").limit(1).executeTakeFirst();
      if (stored) throw auditErrors.headMissing({ doing });
      return null;
    }
    const past = await trx.selectFrom("audit_events").select(sql<string>`CAST(MIN(seq) AS TEXT)`.as("seq")).where("seq", ">", row.seq).executeTakeFirst();
    if (past?.seq != null) throw auditErrors.headBehind(row, { doing, stored: Number(past.seq) });
    return row;
  }

  /**
   * Throws what a signing-key rotation (recordSigningKeyRotation) would meet over the stored log now, and changes
   * nothing: a head that does not record the log (the rotation's event could not be appended), or a log its checkpoint
   * must not vouch for (#signable). For `audit rotate-signing-key --dry-run`, which promised rotations the real run then
   * refused. `signer` stands in for the new key: the current one, read again (key table first).
   */
  async checkRotation(signer: Signer): Promise<void> {
    // In a transaction holding the head, as a checkpoint reads it: an append landing meanwhile is not a head left behind.
    await this.#database.transaction(async (trx) => {
      await this.#lockHead(trx);
      const doing = "rotate the signing key (the rotation appends an event and signs a checkpoint at it)";
      // No head row: the rotation's append can link to nothing (#nextHead), even on an empty log.
      const head = await this.#recordedHead(trx, doing);
      if (head === null) throw auditErrors.headMissing({ doing });
      const { problem, error } = await this.#signable(trx, signer, head, { rotation: true, nextEvent: true });
      if (problem !== null) throw error ?? auditErrors.unsignable(problem.problem);
    });
  }

  /**
   * Records a signing-key rotation inside the caller's transaction `trx`, which has just stored the new key: appends
   * `input` and signs a checkpoint at it with `signer`, the new key's (Keyring.prepareSigningKey). The new key's
   * first checkpoint commits with the key, so a log that holds the key but none of its checkpoints was tampered
   * with (signing-keys.ts). No scheduled checkpoint is taken with the old key at this event.
   */
  async recordSigningKeyRotation(trx: Kysely<Schema>, signer: Signer, input: AuditInput): Promise<{ event: AuditEvent; checkpoint: Checkpoint }> {
    const { event, linked } = await this.#appendInTransaction(trx, this.#prepare(input), null);
    this.#head = null;
    if (linked) this.#pending = { trx: new WeakRef(trx), head: { seq: event.seq, hash: event.hash } };
    const checkpoint = await this.#signHead(trx, signer, { seq: event.seq, hash: event.hash }, true);
    this.#inTransaction.set(trx, event.seq);
    return { event, checkpoint };
  }

  /** Signs `head` with `given` (or the signer #signable reads again) through `trx`; throws when it must not be signed. */
  async #signHead(trx: Kysely<Schema>, given: Signer, head: Head, rotation: boolean, first = false): Promise<Checkpoint> {
    const { signer, problem, error } = await this.#signable(trx, given, head, { rotation, first });
    if (problem !== null) throw error ?? auditErrors.unsignable(problem.problem);
    const at = this.#clock.now();
    const signature = toBase64URL(signer.sign(checkpointMessage(head.seq, head.hash, at)));
    await trx.insertInto("audit_checkpoints").values({ seq: head.seq, hash: head.hash, at, key_id: signer.keyId, signature }).onConflict((oc) => oc.column("seq").doNothing()).execute();
    return { seq: head.seq, hash: head.hash, at, keyId: signer.keyId, signature };
  }

  async checkpoints(): Promise<Checkpoint[]> {
    const rows = await this.#database.db.selectFrom("audit_checkpoints").selectAll().orderBy("seq").execute();
    return rows.map((r) => ({ seq: Number(r.seq), hash: r.hash, at: Number(r.at), keyId: r.key_id, signature: r.signature }));
  }

  /** Stored events in seq order, starting after `afterSeq`. */
  async *rows(options: ReadOptions = {}): AsyncGenerator<StoredRow> {
    for await (const page of this.pages(options)) yield* page;
  }

  /** Stored events in seq order, a page (array) at a time. */
  pages(options: ReadOptions = {}): AsyncGenerator<StoredRow[]> {
    return storedPages(this.#database, options);
  }

  /** Events as exported (data parsed; an altered row's unparseable data comes back as `rawData`), for `audit export` and `audit tail`. */
  async *events(options: ReadOptions = {}): AsyncGenerator<AuditEvent> {
    for await (const r of this.rows(options)) yield toEvent(r);
  }

  /** The newest `count` events, oldest first. */
  async tail(count: number): Promise<AuditEvent[]> {
    return tailEvents(this.#database, count);
  }

  /**
   * Verifies the stored chain, the recorded head, every stored checkpoint (hash and signature) and any
   * checkpoints exported earlier; with a signer, also that stored checkpoints keep to the schedule (a
   * deleted one leaves too many events in a row without one).
   */
  async verify(options: AuditVerifyOptions = {}): Promise<VerifyReport> {
    return this.#verify({ ...options, checkHead: true });
  }

  async #verify(options: AuditVerifyOptions & { checkHead: boolean }): Promise<VerifyReport> {
    const db = this.#database.db;
    // Asked before the head is read (see #mustHoldEvents): an init that gets past recording its events meanwhile
    // then finds this verify already decided its store needs none.
    const mustHoldEvents = await this.#mustHoldEvents(db);
    const head = await this.#readHead(db);
    // Readers walk positions from #1 up, so a row stored below it would be skipped by every page: look for one.
    // So is one past the last position a JavaScript number holds exactly (no append gets there): reading it
    // would fail, so it is named here instead.
    const outside = await db.selectFrom("audit_events").select(["id", sql<string>`CAST(seq AS TEXT)`.as("position")])
      .where((eb) => eb.or([eb("seq", "<", 1), eb("seq", ">", Number.MAX_SAFE_INTEGER)])).orderBy("seq").limit(1).executeTakeFirst();
    if (outside) {
      const where = outside.position.startsWith("-") || outside.position === "0" ? "positions start at #1" : `positions end at #${Number.MAX_SAFE_INTEGER}`;
      return await brokenReport({ seq: Number(outside.position), id: outside.id, problem: `event #${outside.position} (${outside.id}) is stored outside the chain: ${where} (an inserted or renumbered row)` });
    }
    // A time past what a Date holds is one no append writes (appends take the clock's Date-backed now). Past what
    // a JavaScript number holds exactly, reading the row would fail; short of that, every report and reader that
    // shows the time would: so such a row is named here, before the walk.
    const untimely = await db.selectFrom("audit_events").select(["id", "seq", sql<string>`CAST(at AS TEXT)`.as("time")])
      .where((eb) => eb.or([eb("at", ">", MAX_EVENT_TIME_MS), eb("at", "<", -MAX_EVENT_TIME_MS)])).orderBy("seq").limit(1).executeTakeFirst();
    if (untimely) {
      return await brokenReport({ seq: Number(untimely.seq), id: untimely.id, problem: untimelyProblem(Number(untimely.seq), untimely.id, untimely.time) });
    }
    // Read after the head, so every checkpoint of an event it covers is among them; one taken by an append
    // after the head was read covers an event this walk does not reach, and is left to the next verify.
    const all = await this.checkpoints();
    const stored = all.filter((c) => !options.checkHead || c.seq <= head.seq);
    // One above the head is an append's made since the head was read, or one whose events were cut away with the
    // head moved back: asked after the walk, when an append would have moved the head past it.
    const above = options.checkHead ? all.filter((c) => c.seq > head.seq) : [];
    const signer = this.#signer ? await this.#signer() : null;
    const exported = new Set(options.exported ?? []);
    // Checking the head, the walk stops at it: events appended while verify runs (each moves the head in its own
    // commit) would otherwise look like a log that continues past its head. Whether one does is asked after.
    const report = await verifyChain(this.pages(options.checkHead ? { untilSeq: head.seq } : {}), {
      head: options.checkHead ? head : null,
      checkpoints: [...stored, ...exported],
      verifySignature: (cp) => {
        if (options.verifyExported && exported.has(cp)) return options.verifyExported(cp);
        const message = checkpointMessage(cp.seq, cp.hash, cp.at);
        const signature = fromBase64URL(cp.signature);
        if (cp.publicKey) return verifyWithPublicKey(cp.publicKey, message, signature);
        // Without the keyring a stored checkpoint's signature cannot be checked (null: not counted as verified);
        // its hash still is.
        return signer ? signer.verify(cp.keyId, message, signature) : null;
      },
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    if (report.ok && options.checkHead) {
      const beyond = await this.#beyondHead(head, above);
      if (beyond) return { ...report, ok: false, problem: beyond };
    }
    if (report.ok && report.events === 0 && mustHoldEvents) {
      // Three statements (delete the events, delete the checkpoints, reset the head) leave an empty chain that
      // links and matches its head: only the store's own record shows it held events.
      return { ...report, ok: false, problem: { seq: 1, id: null, problem: "the log holds no events, though this store's migrations are recorded and its keys exist, which every opening records as events first (store.migrated): the log was emptied" } };
    }
    // The schedule is only promised where checkpoints are taken: by an AuditLog with a signer.
    if (!report.ok || !signer) return report;
    const gap = checkCheckpointSchedule(stored.map((c) => c.seq), report.lastSeq, this.#every);
    if (gap) return { ...report, ok: false, problem: gap };
    // A log with events and no checkpoint at all is young, or was rewritten whole with its checkpoints deleted.
    const none = stored.length === 0 && report.events > 0 ? firstCheckpointProblem(signer, this.#clock.now(), { aheadToleranceMs: this.#aheadToleranceMs }) : null;
    if (none !== null) return { ...report, ok: false, problem: { seq: 1, id: null, problem: none } };
    // Which key signed which checkpoint, against the creation times the keyring holds (signing-keys.ts).
    const keys = checkpointKeyProblem(stored, signer, { aheadToleranceMs: this.#aheadToleranceMs });
    return keys ? { ...report, ok: false, problem: keys } : report;
  }

  /**
   * Whether the store must hold events: its migrations are recorded and a key is stored. Opening a store appends
   * one store.migrated event per migration it applied, but only after the migrations commit, so migrations alone
   * leave a moment (until those appends) when a fresh store's log is rightly empty. Keys are created by init
   * after those appends (open-app.ts), so a store holding a key has held events, and an empty log there was
   * emptied. Deleting the keys too would not help the intruder: the signer is then missing and verify fails.
   */
  async #mustHoldEvents(db: Kysely<Schema>): Promise<boolean> {
    const migrated = await db.selectFrom("bulwark_migrations").select("version").limit(1).executeTakeFirst();
    if (!migrated) return false;
    const key = await db.selectFrom("keyring_keys").select("id").limit(1).executeTakeFirst();
    return key !== undefined;
  }

  /**
   * After a walk that ended at `head` (read before it): an event stored past it is an append made since — which
   * moved the head in the same commit — or a row the head does not record (the head moved back, or an insert
   * without its trigger). The row is looked for first and the head read again second, so an append that stored
   * the row has moved the head by then; a head that has not moved, or moved back, is a problem.
   */
  async #beyondHead(head: Head, checkpointsAbove: Checkpoint[]): Promise<VerifyProblem | null> {
    const db = this.#database.db;
    const beyond = await db.selectFrom("audit_events").select(sql<string | null>`CAST(MAX(seq) AS TEXT)`.as("position")).where("seq", ">", head.seq).executeTakeFirst();
    const last = beyond?.position ?? null;
    const now = await this.#readHead(db);
    if (now.seq < head.seq) {
      return { seq: now.seq + 1, id: null, problem: `the chain head moved back from #${head.seq} to #${now.seq} while the log was being verified` };
    }
    if (last !== null && now.seq === head.seq) {
      return { seq: head.seq + 1, id: null, problem: `the chain head records #${head.seq}, but the log continues to #${last} (the head was moved back, or events were inserted without its trigger)` };
    }
    // A checkpoint commits with the event it signs, which moves the head to it, and the head never moves back: one
    // still above the head now covers events that are gone.
    const orphan = checkpointsAbove.find((c) => c.seq > now.seq);
    if (orphan) {
      return { seq: now.seq + 1, id: null, problem: `a signed checkpoint covers event #${orphan.seq}, but the log ends at #${now.seq} (newest events deleted and the head moved back)` };
    }
    return null;
  }

  /**
   * Moves a chain head that is behind the stored events (appends fail with BULWARK_ERR_AUDIT_HEAD_BEHIND) to
   * the newest stored event, after verifying the chain up to it, and records the repair as an event. Refuses
   * when the head is not behind, when the chain is broken, or when the trigger that keeps the head is gone.
   */
  async repairHead(actor: string): Promise<{ from: Head; to: Head }> {
    const db = this.#database.db;
    const trigger = this.#database.dialect === "sqlite"
      ? await sql`SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_events_advance_head'`.execute(db)
      : await sql`SELECT 1 FROM pg_trigger WHERE tgname = 'audit_events_advance_head'`.execute(db);
    if (trigger.rows.length === 0) throw auditErrors.headTriggerMissing();
    const row = await this.#headRow(db);
    const from = row ?? { seq: 0, hash: GENESIS_HASH };
    const report = await this.#verify({ checkHead: false });
    if (!report.ok) throw auditErrors.chainBroken(report.problem?.problem ?? "unknown problem");
    if (row !== null && report.lastSeq <= from.seq) throw auditErrors.headNotBehind(from, report.lastSeq);
    const to = { seq: report.lastSeq, hash: report.lastHash };
    // The move and the event that records it commit together: a crash between them left a repaired head that
    // no event accounted for, under an intact verdict.
    await this.#database.transaction(async (trx) => {
      // Only from the head we verified against (or into a missing row): a concurrent change makes this a no-op.
      const moved = await trx.insertInto("audit_head").values({ id: 1, ...to })
        .onConflict((oc) => oc.column("id").doUpdateSet(to).where("audit_head.seq", "=", from.seq).where("audit_head.hash", "=", from.hash))
        .executeTakeFirst();
      if (moved.numInsertedOrUpdatedRows !== 1n) throw auditErrors.contention();
      await this.appendIn(trx, { type: "audit.head-repaired", actor, data: { from, to } });
    });
    this.#head = null;
    return { from, to };
  }
}
