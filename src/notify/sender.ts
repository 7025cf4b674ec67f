// The outbox sender: claims due messages under a lease, delivers them, and records the outcome — sent,
// retry later (backoff with jitter), or dead. Several senders, on one node or many, share one queue. Whether a
// security notice reached its relay is audited with the outcome, in one transaction.
import type { Kysely } from "kysely";
import { newId } from "../crypto/tokens.ts";
import { clockStep, readClock, type Clock, type ClockReading } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import { DEFAULT_RETRY, retryDelay, type RetryPolicy } from "./backoff.ts";
import { notifyErrors } from "./errors.ts";
import { AGED_AFTER_MS, type Outbox, type OutboxMessage, type SetAsideMessage } from "./outbox.ts";
import type { DeliveryOutcome, MailTransport } from "./transport.ts";
import { connectionWarning, recipientDomain, withoutMailboxes, withoutSecretsOf } from "./delivery-errors.ts";
import { deliveryEvent, isSecurityNotice, type NoticeDeliveryAudit } from "./delivery-audit.ts";
import { STORE_BUSY_RETRY_SECONDS, storeBusyError } from "../store/errors.ts";
import type { Schema } from "../store/schema.ts";

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
   * How long a claim lasts, in ms (default 15 minutes). It is renewed between deliveries, and each delivery
   * has a deadline a quarter of the lease before the lease ends: the transport aborts the SMTP transaction
   * there, so a sender never completes a delivery on a claim another sender may have taken over (a
   * tarpitting server cannot stretch one delivery past the lease). Clocks of the nodes sharing a queue must
   * agree to well within that quarter. A lease whose three quarters hold the whole deliveryTimeoutMs (the
   * defaults: 11¼ minutes for 11) is renewed before a delivery would start with less than its deadline, so
   * every delivery gets all of it; a shorter one is renewed at half-life. At most a day.
   */
  leaseMs?: number;
  /**
   * The longest one delivery may take (connect, TLS, every reply, the data), in ms; default 11 minutes: the 10
   * RFC 5321 §4.5.3.2.6 gives a relay to answer the end of the data, and one for the rest. At most a day.
   */
  deliveryTimeoutMs?: number;
  /** Default DEFAULT_RETRY. maxAttempts 1 to 1000; delays whole ms, base ≤ max ≤ 7 days. */
  retry?: RetryPolicy;
}

export interface SenderDeps {
  outbox: Outbox;
  transport: MailTransport;
  clock: Clock;
  random: RandomSource;
  /**
   * Told about every message that goes dead, every claim lost, and every step of the clock with the mail it held
   * (#judgeClock). Never given a full recipient address.
   */
  logger?: { warn(obj: object, msg: string): void };
  /**
   * Records in the audit log whether each security notice reached its relay (delivery-audit.ts). The server
   * wires it (src/http/mail-runner.ts); without it nothing is audited and outcomes are recorded as before.
   */
  audit?: NoticeDeliveryAudit;
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

// RFC 5321 §4.5.3.2.6: a client waits 10 minutes for the reply to the end of the data, since the relay may be
// scanning or handing the message on before it queues it, and a client that gives up sooner makes the relay deliver
// one more copy per retry (it had accepted the first). With 2 minutes, a relay answering in 61 s got every attempt of
// a notice or reset link, up to DEFAULT_RETRY's 31, and the row ended dead though it was delivered. The deadline is
// those 10 minutes and one for connecting, TLS, the commands and the data (the transport's socketTimeout lets any one
// silence last the 10 minutes). The lease holds it with its quarter of margin: 15 × ¾ = 11¼ minutes, so renewing it 15
// s after a renewal keeps every delivery's whole deadline (ensureLease); a crashed sender's mail waits 15 minutes.
const DEFAULT_DELIVERY_TIMEOUT = 11 * 60_000;
const DEFAULT_LEASE = 15 * 60_000;

/**
 * How far this node's wall time may move apart from the time that elapsed (Clock.elapsed) between two readings of the
 * sender before it counts as a step of the clock (#judgeClock): NTP slews a clock by at most 0.5 ms a second, well
 * under a second between readings taken at every claim and delivery; 30 s is the skew nodes are allowed by default
 * (BULWARK_MAX_CLOCK_SKEW_SECONDS). A smaller step forward stays inside a lease's quarter of margin.
 */
const CLOCK_STEP_MS = 30_000;

/**
 * The longest wait the outbox schedules but a retry's backoff and a lease (the sender's own policy): a notice gathering
 * the hour's sign-ins from new browsers is due at the end of its hour plus the dated-ahead tolerance (src/http/auth/
 * helpers.ts), under 2 hours for any skew limit under half an hour. Mail due further ahead was dated by a clock ahead of
 * this one: the sender says so (#judgeClock).
 */
const GATHERING_WAIT_MS = 2 * 3_600_000;

/**
 * Backoff between two tries of recording a delivery the store was too busy to record (#recorded): from a quarter of a
 * second, doubling, to about one lock wait's bound (STORE_BUSY_RETRY_SECONDS); each try itself waits up to the pool's
 * lock_timeout, and ends the moment the lock is let go.
 */
const RECORDING_RETRY_BASE_MS = 250;
const RECORDING_RETRY_MAX_MS = STORE_BUSY_RETRY_SECONDS * 1000;
/** A signal never aborted: the pause of a recording with no `cut` to end it early. */
const NEVER = new AbortController().signal;

/** Resolves after `ms`, or at once when `signal` is aborted; leaves no timer or listener behind. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
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

const DEAD_LOG = "outbox message is dead and will not be retried; `bulwark outbox status` lists it, `bulwark outbox requeue-dead` sends it again";

export class OutboxSender {
  /** Runs whose TLS or connection failure was logged already: once per run, however many messages it touches. */
  readonly #tlsWarned = new WeakSet<RunReport>();
  readonly #deps: SenderDeps;
  readonly #name: string;
  readonly #batchSize: number;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #deliveryTimeoutMs: number;
  /** Deliveries end this long before their lease does: room to record the outcome, and for clock skew. */
  readonly #margin: number;
  /** A batch's lease is renewed between deliveries once less than this is left of it (ensureLease in runOnce). */
  readonly #renewBelow: number;
  readonly #retry: RetryPolicy;
  /**
   * Deliveries in flight (or about to start) over every run of this sender. `run` lets runs overlap (the next batch is
   * claimed while a delivery of the last one still waits for its relay's reply), so the concurrency bound is kept here,
   * for the sender, rather than per run.
   */
  #busy = 0;
  /** Woken whenever a delivery slot is given back. */
  readonly #slotWaiters = new Set<() => void>();
  /**
   * Ids of the messages this sender's batches are delivering: left out of every claim it makes (Outbox.claim's
   * `notIn`). Its clock stepped past a lease while the relay still had the message, the sender's next claim took its own
   * live lease and delivered the mail a second time. In memory, not by claim name: after a restart the process holds
   * nothing, and its predecessor's mail is free once its leases end, as ADR 0004 has it (`host/pid` names repeat).
   */
  readonly #delivering = new Set<string>();
  /** Each batch still holding mail: renews all its leases at the time the clock reads now, after a step (#judgeClock). */
  readonly #leaseKeepers = new Set<() => Promise<void>>();
  /** The clock as the sender last read it (#judgeClock), to tell a step of the wall time from time that passed. */
  #reading: ClockReading | null;
  /**
   * Whether mail dated ahead is looked for at the next claim (Outbox.dueAtOnceAhead): at the first (a step while the
   * sender was down), after a step back, and again while the last look freed as much as it may at once (mail was left).
   */
  #lookAhead = true;
  /**
   * Until when, in elapsed time (Clock.elapsed), the sender takes over no lease (Outbox.claim's `takeOver: false`), or
   * null: one lease after it saw its clock stepped forward. Other processes on this host saw the same step, their
   * deliveries in flight hold leases that look over by the new wall time, and only the elapsed time can show them over.
   */
  #noTakeOverUntil: number | null = null;
  /** Judgements of the clock take turns: a step is acted on once, and every claim waits until it has been. */
  #clockTurn: Promise<void> = Promise.resolve();
  readonly #longestWaitMs: number;

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
    this.#margin = Math.ceil(this.#leaseMs / 4);
    // At half-life; and sooner, before a delivery would start with less than its whole deadline left before the margin
    // (a reset link's delivery started late in a lease was cut at what was left of it, under the RFC's 10 minutes), when
    // a fresh lease holds the deadline at all. When it does not, renewing before every delivery would buy seconds with a
    // write each, and half-life it stays.
    this.#renewBelow = this.#leaseMs - this.#margin > this.#deliveryTimeoutMs
      ? Math.max(this.#leaseMs / 2, this.#margin + this.#deliveryTimeoutMs)
      : this.#leaseMs / 2;
    this.#longestWaitMs = Math.max(this.#retry.maxDelayMs, this.#leaseMs, GATHERING_WAIT_MS);
    this.#reading = readClock(deps.clock);
  }

  /**
   * Before a claim or a lease renewal: has this node's clock been stepped since the sender last read it (its wall time
   * moved more than CLOCK_STEP_MS apart from the time that elapsed: NTP stepping it, `date -s`, a host resumed)? Then
   * every batch renews its leases at the time the clock reads now, where they are live by the time that elapsed, and it
   * is logged. After a step forward, for one lease of elapsed time, its claims take over no lease (#mayTakeOver): the
   * leases of other processes on this host (the same clock, the same step) look over by the wall time and are not. After
   * a step back, and once at the sender's first claim, the mail queued due at once and dated ahead of the clock is made
   * due now (Outbox.dueAtOnceAhead; at the next claims again while some was left), and, when a step back was seen or
   * such mail was found, the queued and failed mail still waiting ahead is logged, with its count and until when. A clock without `elapsed` is believed. Other nodes' leases
   * are theirs to keep: they are judged by the rule on the nodes' clocks (ADR 0004).
   */
  #judgeClock(): Promise<void> {
    const run = this.#clockTurn.then(() => this.#actOnStep());
    this.#clockTurn = run.catch(() => {});
    return run;
  }

  async #actOnStep(): Promise<void> {
    const { clock, outbox, logger } = this.#deps;
    const last = this.#reading;
    const now = readClock(clock);
    const step = clockStep(last, now);
    const stepped = Math.abs(step) > CLOCK_STEP_MS;
    this.#reading = now;
    try {
      if (stepped) {
        const seconds = (Math.abs(step) / 1000).toFixed(1);
        logger?.warn({ clockStepMs: Math.round(step), sender: this.#name },
          `outbox: this node's clock was stepped ${seconds} s ${step > 0 ? "forward" : "back"} (its wall time moved that much more or less than the time that ` +
          "elapsed: NTP, by hand, or a host resumed); the sender renews the leases of the mail it holds at the time the clock reads now" +
          (step < 0
            ? ", and mail queued due at once but dated ahead of the clock is made due now"
            : `, and takes over no other sender's lease for ${Math.round(this.#leaseMs / 1000)} s (the mail other processes on this host deliver looks over by the new time)`));
        // now is not null: a step is measured between two readings.
        if (step > 0 && now !== null) this.#noTakeOverUntil = now.elapsed + this.#leaseMs;
        await Promise.all([...this.#leaseKeepers].map((renew) => renew()));
      }
      if (step < -CLOCK_STEP_MS || this.#lookAhead) {
        const ahead = await outbox.dueAtOnceAhead({ longestWaitMs: this.#longestWaitMs });
        this.#lookAhead = ahead.left > 0;
        if (ahead.madeDue > 0) {
          logger?.warn({ madeDue: ahead.madeDue, sender: this.#name },
            "outbox: mail queued due at once was dated ahead of this node's clock (a step back of the clock, here or on the node that queued it); it is due now");
        }
        if (ahead.left > 0) {
          logger?.warn({ left: ahead.left, sender: this.#name },
            `outbox: ${ahead.left} more messages queued due at once are still dated ahead of this node's clock (at most 100,000 are made due at a time, ` +
            "most urgent first); the sender makes them due at its next claims");
          return;
        }
        // Said when the clock is known to have read ahead (a step back seen, or mail freed: dated by a clock ahead of
        // this one), not at every start: a retry in its backoff is no news then.
        if (ahead.heldAhead > 0 && (step < -CLOCK_STEP_MS || ahead.madeDue > 0)) {
          logger?.warn({ held: ahead.heldAhead, until: new Date(ahead.heldUntil ?? 0).toISOString(), sender: this.#name },
            "outbox: queued and failed mail waits ahead of this node's clock (a retry's backoff, a gathering notice, mail handed back after a failed " +
            "attempt); it is held until its due time, and after a step of the clock back, the step longer");
        }
        if (ahead.beyondLongestWait > 0) {
          logger?.warn({ held: ahead.beyondLongestWait, until: new Date(ahead.latest ?? 0).toISOString(), longestWaitMs: this.#longestWaitMs, sender: this.#name },
            "outbox: mail waits further ahead than the longest wait the outbox schedules (a retry's backoff, a lease, a gathering notice): dated by a clock " +
            "ahead of this one (stepped back since?); it is held until then");
        }
      }
    } catch (error) {
      // Judged again at the next claim.
      this.#reading = last;
      throw error;
    }
  }

  /**
   * Whether a claim may take over leases that look over (`sending` rows): not until one lease of elapsed time has
   * passed since the sender saw its clock stepped forward (#noTakeOverUntil), when a lease taken before the step is over
   * by the time that really passed. Queued and failed mail is claimed meanwhile; a crashed sender's mail waits that long.
   */
  #mayTakeOver(): boolean {
    if (this.#noTakeOverUntil === null) return true;
    const now = readClock(this.#deps.clock);
    if (now !== null && now.elapsed < this.#noTakeOverUntil) return false;
    this.#noTakeOverUntil = null;
    return true;
  }

  /** Takes a delivery slot of this sender, waiting for one while all are taken; false (nothing taken) once `stop` is aborted. */
  async #takeSlot(stop?: AbortSignal): Promise<boolean> {
    for (;;) {
      if (stop?.aborted) return false;
      // Checked and taken with no await between: two waiters woken together cannot both take the last slot.
      if (this.#busy < this.#concurrency) {
        this.#busy++;
        return true;
      }
      await this.#slotGivenBack(stop);
    }
  }

  #giveSlot(): void {
    this.#busy--;
    for (const wake of [...this.#slotWaiters]) wake();
  }

  /** Resolves when a slot is given back or `stop` is aborted, whichever comes first. */
  #slotGivenBack(stop?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        this.#slotWaiters.delete(wake);
        stop?.removeEventListener("abort", wake);
        resolve();
      };
      this.#slotWaiters.add(wake);
      stop?.addEventListener("abort", wake, { once: true });
    });
  }

  /**
   * Delivers due mail until `stop` is aborted: `bulwark serve`'s loop (src/http/mail-runner.ts). Each batch is a
   * runOnce. A batch with nothing left to start no longer holds the next claim back until its slowest delivery ends:
   * as soon as a delivery slot is free, the next batch is claimed and its mail goes out in the free slots, while the
   * slow delivery keeps waiting for its relay (up to its 11-minute deadline, RFC 5321 §4.5.3.2.6). A reset link queued
   * meanwhile waits for a free slot, not for that relay. Deliveries in flight over all batches stay within
   * `concurrency`, each batch keeps its own claim and lease, and an empty queue is polled every `idleMs` (default
   * 2000). `stop` starts no further delivery or claim and hands back every batch's unstarted mail; `cut` aborts the
   * deliveries in flight, handed back with their attempt taken back (see runOnce). Resolves once `stop` is aborted and
   * every batch has ended, so a caller that cuts after a grace waits about that grace and the writes recording the
   * cut deliveries. `onReport` hears each batch's report when it ends, `onError` each batch that failed (a database
   * error; the loop goes on).
   *
   * @example
   * const stop = new AbortController();
   * const done = sender.run({ stop: stop.signal, onReport: (r) => log(r) });
   * // … on shutdown:
   * stop.abort();
   * await done;
   */
  async run(options: { stop: AbortSignal; cut?: AbortSignal; idleMs?: number; onReport?: (report: RunReport) => void; onError?: (error: unknown) => void }): Promise<void> {
    const { stop, cut } = options;
    const idleMs = options.idleMs ?? 2000;
    const batches = new Set<Promise<void>>();
    while (!stop.aborted) {
      let claimed = 0;
      let allStarted!: () => void;
      const startedAll = new Promise<void>((resolve) => (allStarted = resolve));
      const batch: Promise<void> = this.runOnce({ stop, ...(cut ? { cut } : {}), onAllStarted: (report) => {
        claimed = report.claimed;
        allStarted();
      } })
        .then((report) => options.onReport?.(report), (error: unknown) => options.onError?.(error))
        .finally(() => {
          batches.delete(batch);
          allStarted();
        });
      batches.add(batch);
      await startedAll;
      if (claimed === 0) {
        // Nothing was due (or the claim failed): poll again later. A batch still delivering goes on meanwhile.
        await pause(idleMs, stop);
        continue;
      }
      // Something was claimed, so more may be due: claim again as soon as a delivery slot is free.
      while (this.#busy >= this.#concurrency && !stop.aborted) await this.#slotGivenBack(stop);
    }
    await Promise.all(batches);
  }

  /**
   * Claims one batch of due messages and delivers it. Returns what happened; `claimed: 0` means idle. Once `stop`
   * is aborted no further delivery starts, and the messages of the batch not yet started are handed back (due at once
   * for any sender, no attempt counted) instead of waiting out their lease; once `cut` is aborted, deliveries in flight
   * are aborted too and handed back the same way, their attempt taken back (the cut is the server's doing).
   * `onAllStarted` is called once, with the report so far, when nothing of the batch is left to start (deliveries may
   * still be in flight; at the latest when runOnce returns): `run` claims the next batch then. Deliveries take slots of
   * the sender, shared with any other batch it is delivering, `concurrency` in all.
   *
   * @example
   * const report = await sender.runOnce();
   */
  async runOnce(options: { stop?: AbortSignal; cut?: AbortSignal; onAllStarted?: (report: RunReport) => void } = {}): Promise<RunReport> {
    const report: RunReport = { claimed: 0, sent: 0, retried: 0, dead: 0, released: 0, lostClaims: 0 };
    let toldAllStarted = false;
    const allStarted = (): void => {
      if (toldAllStarted) return;
      toldAllStarted = true;
      options.onAllStarted?.(report);
    };
    try {
      return await this.#batch(report, allStarted, options);
    } finally {
      allStarted();
    }
  }

  /** runOnce's batch: claims, delivers within the sender's slots, calls `allStarted` once nothing is left to start. */
  async #batch(report: RunReport, allStarted: () => void, options: { stop?: AbortSignal; cut?: AbortSignal }): Promise<RunReport> {
    const { outbox, clock } = this.#deps;
    // A fresh claim token per batch, so even this sender's own stale claims are told apart from its new ones.
    const claimer = `${this.#name}/${newId("clm", this.#deps.random)}`;
    // A step of the clock since the last claim or renewal is acted on first: the leases of the mail in flight renewed,
    // mail dated ahead made due (#judgeClock).
    await this.#judgeClock();
    // Read before the claim: every held message's lease in the table ends at leaseEnds or later. With the time that
    // elapsed, to judge the lease by after a step.
    let leaseFrom = clock.now();
    let leaseFromElapsed = clock.elapsed?.() ?? null;
    // What the claim itself settled (a sealed body that did not open, a link to an origin no longer configured) is
    // counted and logged like any outcome.
    let unopenedWarned = false;
    // Not audited (#recorded): the claim sets aside only link mail (SINGLE_USE_LINK_KINDS), never a security notice,
    // whose body the outbox stores and hands out as it is.
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
    // A stop that came before the claim claims nothing (run may start a batch just as the server stops).
    if (options.stop?.aborted) return report;
    const batch = await outbox.claim({ claimer, limit: this.#batchSize, leaseMs: this.#leaseMs, notIn: [...this.#delivering], takeOver: this.#mayTakeOver(), onSetAside });
    report.claimed = batch.length;
    if (batch.length === 0) return report;

    let leaseEnds = leaseFrom + this.#leaseMs;
    const margin = this.#margin;
    let held = new Set(batch.map((m) => m.id));
    // Kept in claim order: priority first. Urgent messages claimed mid-batch go to the front.
    const pending = [...batch];
    const inFlight = new Set<string>();
    // Taken off `pending` but never started: their attempt could not be counted (see worker). Handed back with `pending`.
    const unstarted: string[] = [];
    // Renewing and claiming urgent mail take turns, so a renewal sees every message claimed before it.
    let turn: Promise<void> = Promise.resolve();
    const exclusive = (work: () => Promise<void>): Promise<void> => {
      const run = turn.then(work);
      turn = run.catch(() => {});
      return run;
    };

    // Renew (see #renewBelow) for the messages in flight or not yet started; a message whose claim was lost is dropped,
    // never delivered: someone else owns it now.
    const renew = async (stepped: boolean): Promise<void> => {
      const ids = [...inFlight, ...pending.map((m) => m.id)];
      leaseFrom = clock.now();
      leaseFromElapsed = clock.elapsed?.() ?? null;
      held = await outbox.renew({ claimer, ids, leaseMs: this.#leaseMs, stepped });
      leaseEnds = leaseFrom + this.#leaseMs;
    };
    const ensureLease = async (): Promise<void> => {
      // A step of the clock first: it renews this lease too, when it is live (#judgeClock).
      await this.#judgeClock();
      if (leaseEnds - clock.now() > this.#renewBelow) return;
      await exclusive(async () => {
        if (leaseEnds - clock.now() > this.#renewBelow) return; // another worker just renewed
        await renew(false);
      });
    };
    // After a step of the clock (#judgeClock): the lease is judged by the time that elapsed since it was taken, and when
    // it is live so, renewed at the time the clock reads now, whatever its end in the table says (a step forward past it,
    // or back, which would leave it ahead by the step). A lease over in elapsed time too is left to ensureLease.
    const renewAfterStep = (): Promise<void> => exclusive(async () => {
      const elapsed = clock.elapsed?.();
      if (elapsed === undefined || leaseFromElapsed === null || elapsed - leaseFromElapsed >= this.#leaseMs) return;
      await renew(true);
    });

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
    // While one worker claims urgent mail, another that finds nothing pending must not say all is started: the claim
    // may put mail in front any moment.
    let claimingUrgent = false;
    const claimUrgent = async (): Promise<void> => {
      const head = pending[0];
      if (!head || head.priority <= 0 || passedLongEnough(head)) return;
      await exclusive(async () => {
        const next = pending[0];
        if (!next || next.priority <= 0 || passedLongEnough(next)) return;
        claimingUrgent = true;
        try {
          if (!(await outbox.hasDueBelow(next.priority))) return;
          // Claimed after leaseFrom, so their leases end after leaseEnds too.
          const urgent = await outbox.claim({ claimer, limit: this.#concurrency, leaseMs: this.#leaseMs, belowPriority: next.priority, notIn: [...this.#delivering], takeOver: this.#mayTakeOver(), onSetAside });
          report.claimed += urgent.length;
          if (urgent.length > 0 && !passedSince.has(next.id)) passedSince.set(next.id, clock.now());
          for (const m of urgent) held.add(m.id);
          // Each is more urgent than everything pending (the head had the lowest priority number).
          pending.unshift(...urgent);
        } finally {
          claimingUrgent = false;
        }
      });
    };

    const worker = async (): Promise<void> => {
      for (;;) {
        // A slot of the sender first (another batch's deliveries may hold some: see run), so neither a renewal nor a
        // budget is read long before the delivery they are for starts.
        if (!(await this.#takeSlot(options.stop))) return;
        try {
          await ensureLease();
          await claimUrgent();
          // Checked again after those reads: a stop that came while they waited starts no delivery either.
          if (options.stop?.aborted) return;
          const message = pending.shift();
          // The batch's last message is starting (or none was left): run may claim the next batch for the free slots.
          if (pending.length === 0 && !claimingUrgent) allStarted();
          if (!message) return;
          const budget = Math.min(this.#deliveryTimeoutMs, leaseEnds - margin - clock.now());
          if (!held.has(message.id) || budget <= 0) {
            report.released++;
            continue;
          }
          inFlight.add(message.id);
          this.#delivering.add(message.id);
          try {
            // Counted before the transport runs (#deliver). A count that failed (a store busy past its wait: another
            // process holding SQLite's write lock) sent nothing: the message is handed back with the batch's unstarted
            // ones at its end, not left claimed until its lease ends (a reset link waited 15 minutes,
            // test/sqlite-busy-b-red-team.test.ts); handed back as started on none (had the count committed after all, it
            // stays counted: budget spent, no mail sent). One that reached the transport never is: the recording is
            // retried, never the delivery (ADR 0021).
            const attempt = await outbox.startAttempt({ id: message.id, claimer }).catch((error: unknown) => {
              unstarted.push(message.id);
              throw error;
            });
            await this.#deliver(message, attempt, claimer, report, budget, options.cut);
          } finally {
            inFlight.delete(message.id);
            this.#delivering.delete(message.id);
          }
        } finally {
          this.#giveSlot();
        }
      }
    };
    // Every worker settled before the batch ends, a failed one (a database error) included: none goes on delivering
    // after runOnce has returned (run's stop waits for its batches, and the SMTP pool closes after that).
    this.#leaseKeepers.add(renewAfterStep);
    try {
      const workers = await Promise.allSettled(Array.from({ length: Math.min(this.#concurrency, batch.length) }, worker));
      const left = [...pending.map((m) => m.id), ...unstarted];
      if (left.length > 0) report.released += await outbox.release({ claimer, ids: left });
      const failed = workers.find((w): w is PromiseRejectedResult => w.status === "rejected");
      if (failed) throw failed.reason;
      return report;
    } finally {
      this.#leaseKeepers.delete(renewAfterStep);
    }
  }

  /**
   * Runs batches one after the other until nothing is due (or `maxBatches` ran). For tests, one-shot CLI runs and
   * drills; a server calls `run` instead.
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

  /**
   * Records `sent` or `dead` through `mark` (fenced by the claim: false when it was lost). A security notice, when the
   * sender has an audit dependency, gets its event (#deliveryEvent) in the same transaction: a crash or a failure
   * between the two cannot leave the notice recorded with no event, nor an event for an outcome that was not
   * recorded. A lost claim appends nothing (the sender that took the row over records its own outcome).
   * A store that is busy (storeBusyError: the audit head or the row held past PostgreSQL's lock_timeout, 5 s) is waited
   * out: the recording is tried again with backoff, the message's lease renewed before each try (fenced by the claim:
   * a claim lost meanwhile is false), for up to one lease of time, so the mail the relay accepted is not
   * delivered again for a lock a frozen node or a DBA held for seconds (amended, test/bounded-waits-b-red-team.test.ts:
   * the 55P03 was raised, the row stayed claimed and another claim sent the notice a second time). Any other failure,
   * a busy store past that time, or a busy store once `cut` is aborted (a stopping server does not wait) rolls the
   * outcome back and is raised, as a failed markSent is: the row stays claimed, and once its lease ends it is delivered
   * again (the owner may get the notice twice, under the same Message-ID) and recorded then, never lost without a trace.
   */
  async #recorded(message: OutboxMessage, attempt: number, mark: (executor?: Kysely<Schema>) => Promise<boolean>, outcome: { providerMessageId: string | null } | { error: string }, claim: { claimer: string; cut?: AbortSignal | undefined }): Promise<boolean> {
    const { audit, outbox, logger } = this.#deps;
    const audited = audit !== undefined && isSecurityNotice(message.kind);
    // Built before the transaction: nothing but the two writes holds the write lock.
    const event = audited ? deliveryEvent(audit, message, attempt, outcome) : null;
    const record = (): Promise<boolean> => audit === undefined || event === null ? mark() : outbox.transaction(async (trx) => {
      if (!(await mark(trx))) return false;
      await audit.appendIn(trx, event);
      return true;
    });
    const started = this.#elapsed();
    for (let tries = 1; ; tries++) {
      try {
        return await record();
      } catch (error) {
        if (storeBusyError(error) !== null && !claim.cut?.aborted && this.#elapsed() - started < this.#leaseMs) {
          // The row is still this sender's while its claim token is: renewed, no other claim takes it over meanwhile. A
          // renewal the same busy store refuses is skipped: the row itself may be held then, and a claim passes over a
          // held row (FOR UPDATE SKIP LOCKED). Renewed even when the lease ran out while renewals were refused (`lapsed`):
          // the claim token, not the lease's end, says whose the row is; judged by the end, an intact claim was given up
          // and the notice delivered again (test/new-code-twentyseven-b-red-team.test.ts).
          const kept = await outbox.renew({ claimer: claim.claimer, ids: [message.id], leaseMs: this.#leaseMs, lapsed: true })
            .catch((renewal: unknown) => {
              if (storeBusyError(renewal) === null) throw renewal;
              return null;
            });
          if (kept !== null && !kept.has(message.id)) return false;
          await pause(Math.min(RECORDING_RETRY_BASE_MS * 2 ** (tries - 1), RECORDING_RETRY_MAX_MS), claim.cut ?? NEVER);
          if (!claim.cut?.aborted) continue;
        }
        if (audited) {
          logger?.warn(
            { messageId: message.id, kind: message.kind, outcome: "error" in outcome ? "dead" : "sent", tries },
            "a security notice's delivery could not be recorded with its audit event; it stays claimed and is delivered again once its lease ends",
          );
        }
        throw error;
      }
    }
  }

  /** Time by the clock nobody steps when the sender's clock keeps one (Clock.elapsed), else its wall time. */
  #elapsed(): number {
    return this.#deps.clock.elapsed?.() ?? this.#deps.clock.now();
  }

  /**
   * Delivers within `budgetMs` (the transport aborts past it) and records the outcome under the claim; `attempt` is what
   * Outbox.startAttempt returned for it (null: the claim was lost).
   */
  async #deliver(message: OutboxMessage, attempt: number | null, claimer: string, report: RunReport, budgetMs: number, cut?: AbortSignal): Promise<void> {
    const { outbox, transport, clock, random, logger } = this.#deps;
    const dead = async (error: string, attempt: number): Promise<boolean> => {
      const recorded = await this.#recorded(message, attempt, (executor) => outbox.markDead({ id: message.id, claimer, error }, executor), { error }, { claimer, cut });
      if (recorded) {
        report.dead++;
        this.#loggedDead(message, error);
      }
      return recorded;
    };
    // The attempt is counted before the transport runs (by the worker: see #batch). Past the budget means earlier
    // senders died in the middle of delivering this very message (a failure they recorded would have ended it at the
    // budget): stop rather than crash-loop (and possibly re-send) forever.
    if (attempt === null) {
      // Taken over before anything was sent (the lease ran out meanwhile): the new holder delivers it.
      report.released++;
      return;
    }
    if (attempt > this.#retry.maxAttempts) {
      if (!(await dead(`given up after ${attempt - 1} attempts, the last cut off by a sender that died mid-delivery (its lease expired)`, attempt))) report.lostClaims++;
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
      const sent = { id: message.id, claimer, providerMessageId: outcome.providerMessageId };
      recorded = await this.#recorded(message, message.attempts, (executor) => outbox.markSent(sent, executor), { providerMessageId: outcome.providerMessageId }, { claimer, cut });
      if (recorded) report.sent++;
    } else if (outcome.permanent || message.attempts >= this.#retry.maxAttempts) {
      recorded = await dead(outcome.error, message.attempts);
    } else {
      const nextAttemptAt = clock.now() + retryDelay(message.attempts, this.#retry, random);
      recorded = await outbox.markRetry({ id: message.id, claimer, error: outcome.error, nextAttemptAt });
      if (recorded) report.retried++;
      const warning = connectionWarning(outcome.error);
      if (warning !== null && !this.#tlsWarned.has(report)) {
        this.#tlsWarned.add(report);
        logger?.warn(
          { messageId: message.id, kind: message.kind, recipientDomain: recipientDomain(message.to), lastError: withoutMailboxes(outcome.error, message.to).slice(0, 500) },
          warning,
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
