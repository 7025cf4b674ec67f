// The outbox sender: claims due messages under a lease, delivers them, and records the outcome — sent,
// retry later (backoff with jitter), or dead. Several senders, on one node or many, share one queue.
import { newId } from "../crypto/tokens.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import { DEFAULT_RETRY, retryDelay, type RetryPolicy } from "./backoff.ts";
import { notifyErrors } from "./errors.ts";
import { AGED_AFTER_MS, type Outbox, type OutboxMessage, type SetAsideMessage } from "./outbox.ts";
import type { DeliveryOutcome, MailTransport } from "./transport.ts";
import { LOCAL_CHARS } from "./validate.ts";

export interface SenderOptions {
  /** Names this sender in claims (host/process), for operators reading the table. */
  name: string;
  /**
   * Messages claimed at once. A more urgent message that becomes due while a batch is being delivered is
   * claimed between two deliveries and goes next (a reset link does not wait behind a campaign batch).
   * An integer from 1 to 1000; default 100.
   */
  batchSize?: number;
  /** Deliveries in flight at once (match the SMTP pool's maxConnections): an integer from 1 to 100; default 5. */
  concurrency?: number;
  /**
   * How long a claim lasts, in ms (default 5 minutes). It is renewed between deliveries, and each delivery
   * has a deadline a quarter of the lease before the lease ends: the transport aborts the SMTP transaction
   * there, so a sender never completes a delivery on a claim another sender may have taken over (a
   * tarpitting server cannot stretch one delivery past the lease). Clocks of the nodes sharing a queue must
   * agree to well within that quarter. At most a day.
   */
  leaseMs?: number;
  /** The longest one delivery may take (connect, TLS, every reply, the data), in ms; default 2 minutes, at most a day. */
  deliveryTimeoutMs?: number;
  /** Default DEFAULT_RETRY. maxAttempts 1 to 1000; delays whole ms, base ≤ max ≤ 7 days. */
  retry?: RetryPolicy;
}

export interface SenderDeps {
  outbox: Outbox;
  transport: MailTransport;
  clock: Clock;
  random: RandomSource;
  /** Told about every message that goes dead and every claim lost. Never given a full recipient address. */
  logger?: { warn(obj: object, msg: string): void };
}

export interface RunReport {
  claimed: number;
  sent: number;
  retried: number;
  dead: number;
  /**
   * Claims lost, or too close to their end to fit a delivery's deadline, before the message was started
   * (left for the next claim, not sent here).
   */
  released: number;
  /** Outcomes that could not be recorded because another sender had taken the row over. */
  lostClaims: number;
}

const DEFAULT_LEASE = 5 * 60_000;
const DEFAULT_DELIVERY_TIMEOUT = 2 * 60_000;

/** `ana@example.org` → `example.org`: logs say where mail went wrong, not to whom. */
function recipientDomain(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

// Anything shaped like local@domain, the local part drawn from every character the address check allows
// (an apostrophe included: o'hara@…), so no part of a mailbox survives.
const MAILBOX = new RegExp(`[${LOCAL_CHARS}]+@([A-Za-z0-9.-]+)`, "g");

/**
 * A server's reply often quotes the recipient ("550 5.1.1 <ana@example.org>: unknown user"): keep the domain.
 * The message's own recipient goes first, verbatim and in any case, so even an address written into the row
 * behind enqueue's checks is hidden; then every other address-shaped text.
 */
function withoutMailboxes(text: string, recipient: string): string {
  // Link tokens too: every log line passes here, whatever the text's origin.
  text = withoutLinkTokens(text);
  // An empty recipient (only a row written behind enqueue's back has one) would match between every character.
  const own = recipient === "" ? text : text.replace(new RegExp(recipient.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"), "gi"), `…@${recipientDomain(recipient)}`);
  return own.replace(MAILBOX, "…@$1");
}

// A single-use link's token (src/crypto/link-token.ts: `<prefix>_<26 base32>.<43 base64url>`), and whatever follows
// `token=` in a link (the fragment `#token=…` our mails carry, a query, either percent-encoded). A content filter that
// refuses a message often quotes the URL it refused ("554 5.7.1 URL https://…/auth/reset#token=… is listed"), and that
// token is live: whoever reads the log line or `bulwark outbox status` could reset the account's password with it
// (ASVS 16.2.5). Matched loosely (any prefix, either case) so a relay's rewriting of the link does not slip through;
// a token cut short at the end of the text (the transport keeps 500 characters) goes too, its secret half a secret still.
const LINK_TOKEN = /[A-Za-z0-9]+_[A-Za-z2-7]{26}\.(?:[A-Za-z0-9_-]{43,}|[A-Za-z0-9_-]*$)/g;
const TOKEN_PARAMETER = /((?:#|%23|[?&;])token(?:=|%3D))[^\s"'<>&#]+/gi;

/** A relay's answer with every link token replaced by "…", the rest left readable. */
function withoutLinkTokens(text: string): string {
  return text.replace(LINK_TOKEN, "…").replace(TOKEN_PARAMETER, "$1…");
}

/** The shortest run of a link's secret taken out of a relay's answer: what is left of the secret is ≤ 7 characters a piece. */
const SECRET_RUN = 8;

/**
 * A relay's answer about `message` with every run of SECRET_RUN characters of the message's own link secrets taken
 * out, then withoutLinkTokens. A filter on the undecoded body quotes it as sent: quoted-printable breaks a link every
 * 76 characters with "=" and a line end, so the secret arrives in pieces no pattern of a token's shape matches, and the
 * row's idempotency key names the link's id (the other half). The sender knows what it sent, so it looks for that.
 */
function withoutSecretsOf(error: string, message: Pick<OutboxMessage, "text" | "html">): string {
  const runs = new Set<string>();
  for (const body of [message.text, message.html ?? ""]) {
    for (const token of body.match(LINK_TOKEN) ?? []) {
      const secret = token.slice(token.indexOf(".") + 1);
      for (let i = 0; i + SECRET_RUN <= secret.length; i++) runs.add(secret.slice(i, i + SECRET_RUN));
    }
  }
  if (runs.size > 0) {
    const cut = new Uint8Array(error.length);
    for (let i = 0; i + SECRET_RUN <= error.length; i++) {
      if (runs.has(error.slice(i, i + SECRET_RUN))) cut.fill(1, i, i + SECRET_RUN);
    }
    let kept = "";
    for (let i = 0; i < error.length; i++) {
      if (cut[i] === 0) kept += error[i];
      else if (i === 0 || cut[i - 1] === 0) kept += "…";
    }
    error = kept;
  }
  return withoutLinkTokens(error);
}

// Bounds on the sender's options, each with its reason. Batches: the ids of a batch are bind parameters of one
// lease renewal, and the outbox bounds its own batches at 1000. Concurrency: the SMTP pool's maxConnections
// (config.ts) is at most 100, and deliveries beyond it only queue. Lease and deadline: a lease of more than a
// day would keep a crashed sender's mail waiting that long. Retries: 1000 attempts and a week between two
// already dwarf DEFAULT_RETRY (31 attempts over 24 to 48 hours).
const MAX_BATCH = 1000;
const MAX_CONCURRENCY = 100;
const MAX_LEASE_MS = 24 * 3_600_000;
const MAX_ATTEMPTS = 1000;
const MAX_RETRY_DELAY_MS = 7 * 24 * 3_600_000;

/** Returns `value` when it is an integer in [min, max]; else throws BULWARK_ERR_MAIL_CONFIG naming the option and the value. */
function boundedInteger(option: string, value: unknown, min: number, max: number): number {
  if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return value;
  const shown = typeof value === "number" ? String(value) : JSON.stringify(value) ?? String(value);
  throw notifyErrors.badConfig(`the sender's ${option} must be an integer from ${min} to ${max}, got ${shown}`);
}

/** Checks a retry policy: a NaN or negative value would retry forever, never, or at a time no database stores. */
function checkRetry(retry: RetryPolicy): RetryPolicy {
  if (typeof retry !== "object" || retry === null) throw notifyErrors.badConfig("the sender's retry must be an object with maxAttempts, baseDelayMs and maxDelayMs");
  const maxAttempts = boundedInteger("retry.maxAttempts", retry.maxAttempts, 1, MAX_ATTEMPTS);
  const baseDelayMs = boundedInteger("retry.baseDelayMs", retry.baseDelayMs, 0, MAX_RETRY_DELAY_MS);
  const maxDelayMs = boundedInteger("retry.maxDelayMs", retry.maxDelayMs, baseDelayMs, MAX_RETRY_DELAY_MS);
  return { maxAttempts, baseDelayMs, maxDelayMs };
}

/**
 * A delivery failure that says TLS to the relay could not be set up: a certificate that does not verify (wrong
 * name, unknown issuer, self-signed), or no STARTTLS where it is required. An interception on the path to the
 * relay looks exactly like this, so it is logged at once rather than only retried until the message goes dead.
 */
const TLS_FAILURE = /certificate|altnames|self[- ]signed|unable to verify|ERR_TLS|ETLS|CERT_|SSL routines|wrong version number|STARTTLS/i;

const DEAD_LOG = "outbox message is dead and will not be retried; `bulwark outbox status` lists it, `bulwark outbox requeue-dead` sends it again";

export class OutboxSender {
  /** Runs whose TLS failure was logged already: once per run, however many messages it touches. */
  readonly #tlsWarned = new WeakSet<RunReport>();
  readonly #deps: SenderDeps;
  readonly #name: string;
  readonly #batchSize: number;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #deliveryTimeoutMs: number;
  readonly #retry: RetryPolicy;

  constructor(deps: SenderDeps, options: SenderOptions) {
    this.#deps = deps;
    this.#name = options.name;
    // Refused rather than repaired: batchSize 0 never sends, -1 is "no limit" to SQLite, and a NaN concurrency or
    // attempt budget starts no worker or retries for ever, all silently.
    this.#batchSize = boundedInteger("batchSize", options.batchSize ?? 100, 1, MAX_BATCH);
    this.#concurrency = boundedInteger("concurrency", options.concurrency ?? 5, 1, MAX_CONCURRENCY);
    this.#leaseMs = boundedInteger("leaseMs", options.leaseMs ?? DEFAULT_LEASE, 1, MAX_LEASE_MS);
    this.#deliveryTimeoutMs = boundedInteger("deliveryTimeoutMs", options.deliveryTimeoutMs ?? DEFAULT_DELIVERY_TIMEOUT, 1, MAX_LEASE_MS);
    this.#retry = checkRetry(options.retry ?? DEFAULT_RETRY);
  }

  /**
   * Claims one batch of due messages and delivers it. Returns what happened; `claimed: 0` means idle. Once `stop`
   * is aborted no further delivery starts, and the messages of the batch not yet started are handed back (due at once
   * for any sender, no attempt counted) instead of waiting out their lease; once `cut` is aborted, deliveries in flight
   * are aborted too and handed back the same way, their attempt taken back (the cut is the server's doing).
   *
   * @example
   * const report = await sender.runOnce();
   */
  async runOnce(options: { stop?: AbortSignal; cut?: AbortSignal } = {}): Promise<RunReport> {
    const { outbox, clock } = this.#deps;
    // A fresh claim token per batch, so even this sender's own stale claims are told apart from its new ones.
    const claimer = `${this.#name}/${newId("clm", this.#deps.random)}`;
    const report: RunReport = { claimed: 0, sent: 0, retried: 0, dead: 0, released: 0, lostClaims: 0 };
    // Read before the claim: every held message's lease in the table ends at leaseEnds or later.
    let leaseFrom = clock.now();
    // What the claim itself settled (a sealed body that did not open) is counted and logged like any outcome.
    let unopenedWarned = false;
    const onSetAside = (m: SetAsideMessage): void => {
      if (m.dead) {
        report.dead++;
        this.#loggedDead(m, m.error);
        return;
      }
      report.retried++;
      // Once per run: a key table that cannot be read fails every link mail of the batch alike.
      if (unopenedWarned) return;
      unopenedWarned = true;
      this.#deps.logger?.warn(
        { messageId: m.id, kind: m.kind, recipientDomain: recipientDomain(m.to), lastError: withoutMailboxes(m.error, m.to).slice(0, 500) },
        "a sealed link mail could not be opened for now (the key table could not be read?); it waits for a retry",
      );
    };
    const batch = await outbox.claim({ claimer, limit: this.#batchSize, leaseMs: this.#leaseMs, onSetAside });
    report.claimed = batch.length;
    if (batch.length === 0) return report;

    let leaseEnds = leaseFrom + this.#leaseMs;
    // Deliveries end this long before the lease does: room to record the outcome, and for clock skew.
    const margin = Math.ceil(this.#leaseMs / 4);
    let held = new Set(batch.map((m) => m.id));
    // Kept in claim order: priority first. Urgent messages claimed mid-batch go to the front.
    const pending = [...batch];
    const inFlight = new Set<string>();
    // Renewing and claiming urgent mail take turns, so a renewal sees every message claimed before it.
    let turn: Promise<void> = Promise.resolve();
    const exclusive = (work: () => Promise<void>): Promise<void> => {
      const run = turn.then(work);
      turn = run.catch(() => {});
      return run;
    };

    // Renew at half-life for the messages in flight or not yet started; a message whose claim was lost is dropped,
    // never delivered: someone else owns it now.
    const ensureLease = async (): Promise<void> => {
      if (clock.now() < leaseEnds - this.#leaseMs / 2) return;
      await exclusive(async () => {
        if (clock.now() < leaseEnds - this.#leaseMs / 2) return; // another worker just renewed
        const ids = [...inFlight, ...pending.map((m) => m.id)];
        leaseFrom = clock.now();
        held = await outbox.renew({ claimer, ids, leaseMs: this.#leaseMs });
        leaseEnds = leaseFrom + this.#leaseMs;
      });
    };

    // When more urgent mail was first claimed in front of a message of this batch (by id). A message passed over for
    // AGED_AFTER_MS counts as a notice for the rest of the batch: nothing more is claimed in front of it. Without this
    // bound one account regenerating its recovery codes as fast as the relay delivers (each a notice) kept another
    // user's reset link at the head of the batch for as long as it went on, and the batch, never ending, never let the
    // next claim's aged share run either (ADR 0004). Counted from the first pass, not from the claim: a campaign batch
    // claimed long ago still lets a fresh reset link in ahead of each of its messages, as the ADR promises.
    const passedSince = new Map<string, number>();
    const passedLongEnough = (m: OutboxMessage): boolean => {
      const since = passedSince.get(m.id);
      return since !== undefined && clock.now() - since >= AGED_AFTER_MS;
    };

    // Between deliveries: is anything more urgent than the next message of this batch due (a reset link
    // queued while a campaign batch is going out)? A read first; a claim only when there is something.
    const claimUrgent = async (): Promise<void> => {
      const head = pending[0];
      if (!head || head.priority <= 0 || passedLongEnough(head)) return;
      await exclusive(async () => {
        const next = pending[0];
        if (!next || next.priority <= 0 || passedLongEnough(next) || !(await outbox.hasDueBelow(next.priority))) return;
        // Claimed after leaseFrom, so their leases end after leaseEnds too.
        const urgent = await outbox.claim({ claimer, limit: this.#concurrency, leaseMs: this.#leaseMs, belowPriority: next.priority, onSetAside });
        report.claimed += urgent.length;
        if (urgent.length > 0 && !passedSince.has(next.id)) passedSince.set(next.id, clock.now());
        for (const m of urgent) held.add(m.id);
        // Each is more urgent than everything pending (the head had the lowest priority number).
        pending.unshift(...urgent);
      });
    };

    const worker = async (): Promise<void> => {
      for (;;) {
        if (options.stop?.aborted) return;
        await ensureLease();
        await claimUrgent();
        // Checked again after those reads: a stop that came while they waited starts no delivery either.
        if (options.stop?.aborted) return;
        const message = pending.shift();
        if (!message) return;
        const budget = Math.min(this.#deliveryTimeoutMs, leaseEnds - margin - clock.now());
        if (!held.has(message.id) || budget <= 0) {
          report.released++;
          continue;
        }
        inFlight.add(message.id);
        try {
          await this.#deliver(message, claimer, report, budget, options.cut);
        } finally {
          inFlight.delete(message.id);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, batch.length) }, worker));
    if (pending.length > 0) report.released += await outbox.release({ claimer, ids: pending.map((m) => m.id) });
    return report;
  }

  /**
   * Runs batches until nothing is due (or `maxBatches` ran). For tests, one-shot CLI runs and drills;
   * a server calls runOnce on a timer instead.
   */
  async drain(options: { maxBatches?: number } = {}): Promise<RunReport> {
    const total: RunReport = { claimed: 0, sent: 0, retried: 0, dead: 0, released: 0, lostClaims: 0 };
    const max = options.maxBatches ?? Number.POSITIVE_INFINITY;
    for (let i = 0; i < max; i++) {
      const r = await this.runOnce();
      for (const k of Object.keys(total) as Array<keyof RunReport>) total[k] += r[k];
      // A batch whose every message went dead at its claim hands none out, yet more may be due.
      if (r.claimed === 0 && r.dead === 0) break;
    }
    return total;
  }

  /** Logs a message that went dead: id, kind, recipient domain (never the mailbox), attempts and the error. */
  #loggedDead(message: { id: string; kind: string; to: string; attempts: number }, error: string): void {
    this.#deps.logger?.warn(
      { messageId: message.id, kind: message.kind, recipientDomain: recipientDomain(message.to), attempts: message.attempts, lastError: withoutMailboxes(error, message.to).slice(0, 500) },
      DEAD_LOG,
    );
  }

  /** Delivers within `budgetMs` (the transport aborts past it) and records the outcome under the claim. */
  async #deliver(message: OutboxMessage, claimer: string, report: RunReport, budgetMs: number, cut?: AbortSignal): Promise<void> {
    const { outbox, transport, clock, random, logger } = this.#deps;
    const dead = async (error: string): Promise<boolean> => {
      const recorded = await outbox.markDead({ id: message.id, claimer, error });
      if (recorded) {
        report.dead++;
        this.#loggedDead(message, error);
      }
      return recorded;
    };
    // The attempt is counted before the transport runs. Past the budget means earlier senders died in the
    // middle of delivering this very message (a failure they recorded would have ended it at the budget):
    // stop rather than crash-loop (and possibly re-send) forever.
    const attempt = await outbox.startAttempt({ id: message.id, claimer });
    if (attempt === null) {
      // Taken over before anything was sent (the lease ran out meanwhile): the new holder delivers it.
      report.released++;
      return;
    }
    if (attempt > this.#retry.maxAttempts) {
      if (!(await dead(`given up after ${attempt - 1} attempts, the last cut off by a sender that died mid-delivery (its lease expired)`))) report.lostClaims++;
      return;
    }
    message = { ...message, attempts: attempt };
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error("delivery deadline passed")), budgetMs);
    let outcome: DeliveryOutcome;
    try {
      // A stopping server's cut ends the delivery too (transient: tried again later, perhaps by another node).
      outcome = await transport.send(message, { signal: cut ? AbortSignal.any([deadline.signal, cut]) : deadline.signal });
    } catch (error) {
      // A transport should return failures; one that throws must not strand the rest of the batch.
      outcome = { ok: false, permanent: false, error: `transport error: ${String((error as Error)?.message ?? error)}`.replace(/[\r\n]+/g, " ").slice(0, 500) };
    } finally {
      clearTimeout(timer);
    }
    // Before the error is stored (last_error, which `bulwark outbox status` prints), logged or retried on: a relay's
    // answer may quote the very link the mail carries. Mailboxes are stripped for the log lines (withoutMailboxes).
    if (!outcome.ok) outcome = { ...outcome, error: withoutSecretsOf(outcome.error, message) };
    let recorded: boolean;
    if (!outcome.ok && cut?.aborted) {
      // Cut by this server's own shutdown: not the message's failure. Handed back, due at once for any sender, the
      // attempt not charged — never sent dead on what was its last attempt.
      recorded = (await outbox.release({ claimer, ids: [message.id], uncountAttempt: true })) === 1;
      if (recorded) report.released++;
    } else if (outcome.ok) {
      recorded = await outbox.markSent({ id: message.id, claimer, providerMessageId: outcome.providerMessageId });
      if (recorded) report.sent++;
    } else if (outcome.permanent || message.attempts >= this.#retry.maxAttempts) {
      recorded = await dead(outcome.error);
    } else {
      const nextAttemptAt = clock.now() + retryDelay(message.attempts, this.#retry, random);
      recorded = await outbox.markRetry({ id: message.id, claimer, error: outcome.error, nextAttemptAt });
      if (recorded) report.retried++;
      if (TLS_FAILURE.test(outcome.error) && !this.#tlsWarned.has(report)) {
        this.#tlsWarned.add(report);
        logger?.warn(
          { messageId: message.id, kind: message.kind, recipientDomain: recipientDomain(message.to), lastError: withoutMailboxes(outcome.error, message.to).slice(0, 500) },
          "TLS to the mail relay failed (its certificate does not verify, or it offers no TLS): messages wait for a retry; check the relay's host name and certificate in BULWARK_SMTP_URL, and whether something sits between this server and the relay",
        );
      }
    }
    if (!recorded) {
      report.lostClaims++;
      // The claim was taken over although deliveries end before the lease does: the clocks of the nodes
      // disagree, or the database stalled. The other sender may deliver again (same Message-ID).
      logger?.warn({ messageId: message.id, sender: this.#name }, "outbox claim lost during delivery; the message may be delivered twice");
    }
  }
}
