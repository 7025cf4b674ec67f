// Runs the outbox sender inside `bulwark serve` when SMTP is configured: a loop that delivers due messages
// and sleeps when the queue is empty. Without SMTP, messages stay queued and the server says so once.
import { hostname } from "node:os";
import { addressTag } from "../accounts/email-change/address-tag.ts";
import type { App } from "../app/types.ts";
import { createSMTPTransport, isLoopbackHost, OutboxSender, tlsRequired, type MailTransport, type RunReport } from "../notify/index.ts";
import type { NoticeDeliveryAudit } from "../notify/delivery-audit.ts";

export interface MailRunner {
  /** False when mail is not configured (nothing runs). */
  readonly running: boolean;
  /**
   * Starts no new delivery or claim, hands unstarted ones back, cuts those in flight past STOP_GRACE_MS (handed back,
   * their attempt not counted), closes the SMTP pool. Ends about STOP_GRACE_MS after the call, plus the writes that
   * hand the cut deliveries back, whatever the deadline of a delivery in flight. Safe to call twice.
   */
  stop(): Promise<void>;
}

/**
 * How long a stopping mail runner lets deliveries already in flight finish before it cuts them (they are retried
 * later): well inside the 10 s a supervisor (Docker, systemd's default is 90 s) waits after SIGTERM, with room for
 * the rest of the shutdown.
 */
export const STOP_GRACE_MS = 3_000;

export interface MailRunnerOptions {
  /** Wait between polls of an empty queue, in ms (default 2000); also while a slow delivery holds a slot. */
  idleMs?: number;
}

// One line per batch that did not simply deliver everything: deferred, dead (each also logged by the
// sender), released or lost claims. Quiet when all went out.
function logReport(app: App, report: RunReport): void {
  if (report.retried + report.dead + report.released + report.lostClaims === 0) return;
  const level = report.dead + report.lostClaims > 0 ? "warn" : "info";
  app.logger[level]({ outbox: report }, `outbox batch: ${report.sent} sent, ${report.retried} to retry, ${report.dead} dead`);
}

/**
 * The sender's audit of security notices delivered or given up (notify.security-notice.sent / .dead): events appended
 * in the transaction that records the outcome, naming the recipient by the keyed tag other events name addresses by.
 *
 * @example
 * new OutboxSender({ outbox: app.accounts.outbox, transport, clock: app.clock, random: app.random, audit: noticeDeliveryAudit(app) }, { name: "n" });
 */
export function noticeDeliveryAudit(app: Pick<App, "audit" | "keyring">): NoticeDeliveryAudit {
  return {
    appendIn: (trx, event) => app.audit.appendIn(trx, event),
    recipientTag: (address) => addressTag(app.keyring, address),
  };
}

/**
 * Starts delivering the outbox when `app.config.http.mail` is set.
 *
 * @example
 * const mail = await startMailRunner(app);
 * // … on shutdown:
 * await mail.stop();
 */
export async function startMailRunner(app: App, options: MailRunnerOptions = {}): Promise<MailRunner> {
  const mail = app.config.http.mail;
  if (mail === null) {
    app.logger.warn("mail is not configured (set BULWARK_SMTP_URL and BULWARK_MAIL_FROM): security notices and reset links are queued, not sent");
    return { running: false, stop: async () => {} };
  }
  if (!tlsRequired(mail.smtp) && !isLoopbackHost(mail.smtp.host)) {
    app.logger.warn({ smtpHost: mail.smtp.host }, "BULWARK_SMTP_URL has requireTLS=false: if the server offers no STARTTLS, mail, reset links and the SMTP password cross the network in clear");
  }
  const transport: MailTransport = await createSMTPTransport(mail);
  const sender = new OutboxSender(
    { outbox: app.accounts.outbox, transport, clock: app.clock, random: app.random, logger: app.logger, audit: noticeDeliveryAudit(app) },
    { name: `${hostname()}/${process.pid}`, concurrency: mail.smtp.maxConnections ?? 5 },
  );
  // Stopping: no new delivery starts and the batches' unstarted messages are handed back at once; past the grace,
  // deliveries still in flight are cut (a relay that answers slowly must not hold a shutdown past its supervisor's kill:
  // a delivery may wait 11 minutes for its relay's final reply, RFC 5321 §4.5.3.2.6). Cut deliveries are handed back
  // due at once, their attempt not counted, for this or another node to send again (under the same Message-ID).
  const stop = new AbortController();
  const cut = new AbortController();
  // sender.run claims the next batch as soon as a delivery slot is free, not once the slowest delivery of the last
  // batch has ended: a relay taking its 10 minutes over one message holds that slot, not a reset link queued meanwhile.
  const loop = sender.run({
    stop: stop.signal,
    cut: cut.signal,
    ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }),
    onReport: (report) => logReport(app, report),
    // A database hiccup must not kill the loop; the next poll tries again.
    onError: (error) => app.logger.error({ err: error }, "outbox sender run failed"),
  });
  app.logger.info({ smtpHost: mail.smtp.host, smtpPort: mail.smtp.port }, "outbox sender started");
  let stopped: Promise<void> | null = null;
  return {
    running: true,
    stop() {
      stopped ??= (async () => {
        stop.abort();
        const grace = setTimeout(() => cut.abort(new Error("the server is stopping")), STOP_GRACE_MS);
        await loop;
        clearTimeout(grace);
        await transport.close();
      })();
      return stopped;
    },
  };
}
