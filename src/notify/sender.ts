// The outbox sender: claims due messages under a lease, delivers them, and records the outcome — sent,
// retry later (backoff with jitter), or dead. Several senders, on one node or many, share one queue.
import { newId } from "../crypto/tokens.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import { DEFAULT_RETRY, retryDelay, type RetryPolicy } from "./backoff.ts";
import type { Outbox, OutboxMessage } from "./outbox.ts";
import type { MailTransport } from "./transport.ts";

export interface SenderOptions {
  /** Names this sender in claims (host/process), for operators reading the table. */
  name: string;
  /** Messages claimed at once. */
  batchSize?: number;
  /** Deliveries in flight at once (match the SMTP pool's maxConnections). */
  concurrency?: number;
  /**
   * How long a claim lasts, in ms. Must exceed the time one delivery can take (the SMTP socket timeout):
   * the lease is renewed between deliveries, and a message is never started on a lease about to end.
   */
  leaseMs?: number;
  retry?: RetryPolicy;
}

export interface SenderDeps {
  outbox: Outbox;
  transport: MailTransport;
  clock: Clock;
  random: RandomSource;
  logger?: { warn(obj: object, msg: string): void };
}

export interface RunReport {
  claimed: number;
  sent: number;
  retried: number;
  dead: number;
  /** Claims that expired before the message was started (left for the next claim, not sent here). */
  released: number;
  /** Outcomes that could not be recorded because another sender had taken the row over. */
  lostClaims: number;
}

const DEFAULT_LEASE = 5 * 60_000;

export class OutboxSender {
  readonly #deps: SenderDeps;
  readonly #name: string;
  readonly #batchSize: number;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #retry: RetryPolicy;

  constructor(deps: SenderDeps, options: SenderOptions) {
    this.#deps = deps;
    this.#name = options.name;
    this.#batchSize = options.batchSize ?? 100;
    this.#concurrency = Math.max(1, options.concurrency ?? 5);
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE;
    this.#retry = options.retry ?? DEFAULT_RETRY;
  }

  /**
   * Claims one batch of due messages and delivers it. Returns what happened; `claimed: 0` means idle.
   *
   * @example
   * const report = await sender.runOnce();
   */
  async runOnce(): Promise<RunReport> {
    const { outbox, clock } = this.#deps;
    // A fresh claim token per batch, so even this sender's own stale claims are told apart from its new ones.
    const claimer = `${this.#name}/${newId("clm", this.#deps.random)}`;
    const report: RunReport = { claimed: 0, sent: 0, retried: 0, dead: 0, released: 0, lostClaims: 0 };
    const batch = await outbox.claim({ claimer, limit: this.#batchSize, leaseMs: this.#leaseMs });
    report.claimed = batch.length;
    if (batch.length === 0) return report;

    let leaseEnds = clock.now() + this.#leaseMs;
    let held = new Set(batch.map((m) => m.id));
    const pending = [...batch];
    const inFlight = new Set<string>();
    let renewing: Promise<void> | null = null;

    // Renew at half-life for the messages in flight or not yet started; a message whose claim was lost is dropped,
    // never delivered: someone else owns it now.
    const ensureLease = async (): Promise<void> => {
      if (clock.now() < leaseEnds - this.#leaseMs / 2) return;
      renewing ??= (async () => {
        const ids = [...inFlight, ...pending.map((m) => m.id)];
        const stillHeld = await outbox.renew({ claimer, ids, leaseMs: this.#leaseMs });
        held = stillHeld;
        leaseEnds = clock.now() + this.#leaseMs;
      })().finally(() => { renewing = null; });
      await renewing;
    };

    const worker = async (): Promise<void> => {
      for (;;) {
        await ensureLease();
        const message = pending.shift();
        if (!message) return;
        if (!held.has(message.id) || clock.now() >= leaseEnds) {
          report.released++;
          continue;
        }
        inFlight.add(message.id);
        try {
          await this.#deliver(message, claimer, report);
        } finally {
          inFlight.delete(message.id);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, batch.length) }, worker));
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
      if (r.claimed === 0) break;
    }
    return total;
  }

  async #deliver(message: OutboxMessage, claimer: string, report: RunReport): Promise<void> {
    const { outbox, transport, clock, random, logger } = this.#deps;
    // The claim already counted this attempt. Past the budget means earlier senders died mid-delivery
    // on this very message: stop rather than crash-loop (and possibly re-send) forever.
    if (message.attempts > this.#retry.maxAttempts) {
      const recorded = await outbox.markDead({ id: message.id, claimer, error: `abandoned by senders ${message.attempts - 1} times (lease expired each time)` });
      if (recorded) report.dead++;
      else report.lostClaims++;
      return;
    }
    const outcome = await transport.send(message);
    let recorded: boolean;
    if (outcome.ok) {
      recorded = await outbox.markSent({ id: message.id, claimer, providerMessageId: outcome.providerMessageId });
      if (recorded) report.sent++;
    } else if (outcome.permanent || message.attempts >= this.#retry.maxAttempts) {
      recorded = await outbox.markDead({ id: message.id, claimer, error: outcome.error });
      if (recorded) report.dead++;
    } else {
      const nextAttemptAt = clock.now() + retryDelay(message.attempts, this.#retry, random);
      recorded = await outbox.markRetry({ id: message.id, claimer, error: outcome.error, nextAttemptAt });
      if (recorded) report.retried++;
    }
    if (!recorded) {
      report.lostClaims++;
      // The lease ran out during delivery and another sender took the row: it may deliver again
      // (same Message-ID). Operators should raise leaseMs if this appears.
      logger?.warn({ messageId: message.id, sender: this.#name }, "outbox claim lost during delivery; the message may be delivered twice");
    }
  }
}
