// Runs the outbox sender inside `bulwark serve` when SMTP is configured: a loop that delivers due messages
// and sleeps when the queue is empty. Without SMTP, messages stay queued and the server says so once.
import { hostname } from "node:os";
import type { App } from "../app/types.ts";
import { createSMTPTransport, isLoopbackHost, OutboxSender, tlsRequired, type MailTransport, type RunReport } from "../notify/index.ts";

export interface MailRunner {
  /** False when mail is not configured (nothing runs). */
  readonly running: boolean;
  /** Starts no new delivery, hands unstarted ones back, cuts those in flight past STOP_GRACE_MS, closes the SMTP pool. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * How long a stopping mail runner lets deliveries already in flight finish before it cuts them (they are retried
 * later): well inside the 10 s a supervisor (Docker, systemd's default is 90 s) waits after SIGTERM, with room for
 * the rest of the shutdown.
 */
export const STOP_GRACE_MS = 3_000;

export interface MailRunnerOptions {
  /** Wait between polls of an empty queue, in ms (default 2000). */
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
    { outbox: app.accounts.outbox, transport, clock: app.clock, random: app.random, logger: app.logger },
    { name: `${hostname()}/${process.pid}`, concurrency: mail.smtp.maxConnections ?? 5 },
  );
  const idleMs = options.idleMs ?? 2000;
  let stopping = false;
  // Stopping: no new delivery starts and the batch's unstarted messages are handed back at once; past the grace,
  // deliveries still in flight are cut (a relay that answers slowly must not hold a shutdown past its supervisor's kill).
  const stop = new AbortController();
  const cut = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let wake: (() => void) | null = null;
  const loop = (async () => {
    while (!stopping) {
      let claimed = 0;
      try {
        const report = await sender.runOnce({ stop: stop.signal, cut: cut.signal });
        claimed = report.claimed;
        logReport(app, report);
      } catch (error) {
        // A database hiccup must not kill the loop; the next poll tries again.
        app.logger.error({ err: error }, "outbox sender run failed");
      }
      if (stopping) break;
      if (claimed === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, idleMs);
        });
        timer = null;
        wake = null;
      }
    }
  })();
  app.logger.info({ smtpHost: mail.smtp.host, smtpPort: mail.smtp.port }, "outbox sender started");
  let stopped: Promise<void> | null = null;
  return {
    running: true,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        stop.abort();
        if (timer) clearTimeout(timer);
        (wake as (() => void) | null)?.();
        const grace = setTimeout(() => cut.abort(new Error("the server is stopping")), STOP_GRACE_MS);
        await loop;
        clearTimeout(grace);
        await transport.close();
      })();
      return stopped;
    },
  };
}
