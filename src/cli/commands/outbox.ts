// `bulwark outbox status [--json]` and `bulwark outbox requeue-dead [--dry-run] [--yes] [--json]`: what the
// email outbox owes, which messages are dead (given up after 5xx replies or ~24 h of failures), and putting
// them back once the cause is fixed. Exit codes: 0 done, 2 bad usage or not confirmed, 3 failure.
import type { Command } from "commander";
import { InputError } from "../../lib/errors.ts";
import { escapeControls } from "../../lib/terminal.ts";
import type { DeadPosition, OutboxMessageSummary } from "../../notify/index.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { action, cliActor, group, writeJSON, writeLine, writeNote } from "../run.ts";
import { confirmOrRefuse } from "../prompt.ts";

// Dead messages shown by `status` unless --limit says otherwise; the store allows at most 1000 per read.
const DEFAULT_LIST = 50;
const MAX_LIST = 1000;
// Ids per page read, per requeue call and per audit event (the store's bind-parameter bound is 1000).
const REQUEUE_CHUNK = 500;


function usage(message: string): InputError {
  return new InputError("BULWARK_ERR_USAGE", message);
}

function listLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LIST;
  if (!/^\d{1,4}$/.test(text.trim()) || Number(text) < 1 || Number(text) > MAX_LIST) throw usage(`--limit must be a whole number from 1 to ${MAX_LIST}; got "${text.slice(0, 20)}"`);
  return Number(text);
}

/** 7260 s → "2h 1m". */
function age(ms: number): string {
  const minutes = Math.max(0, Math.floor(ms / 60_000));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const parts = [days ? `${days}d` : "", hours ? `${hours}h` : "", `${minutes % 60}m`].filter(Boolean);
  return parts.join(" ");
}

/** "last delivery: 2026-12-06T03:00:00.000Z (5m ago)", or that none is on record. */
function lastDelivery(last: number | null, now: number): string {
  return last === null
    ? "no delivery on record (delivered mail is kept BULWARK_OUTBOX_RETENTION_DAYS days)"
    : `last delivery: ${new Date(last).toISOString()} (${age(now - last)} ago)`;
}

// What only the server's environment decides, said as such: this shell's settings are no evidence either way.
const SERVER_SMTP = "`bulwark serve` sends only with BULWARK_SMTP_URL and BULWARK_MAIL_FROM in its own environment";

function deadView(m: OutboxMessageSummary): Record<string, unknown> {
  return { id: m.id, kind: m.kind, to: m.to, campaignId: m.campaignId, attempts: m.attempts, createdAt: new Date(m.createdAt).toISOString(), lastError: m.lastError };
}

function printDead(ctx: CliContext, dead: OutboxMessageSummary[], total: number): void {
  for (const m of dead) {
    // Stored text (the relay's words, an address, a kind): shown, never sent to the terminal as controls. A row
    // altered in the database is exactly the kind the sender marks dead and this lists.
    writeLine(ctx, `  ${escapeControls(m.id)}  ${escapeControls(m.kind)}  to ${escapeControls(m.to)}  ${m.attempts} attempts  queued ${new Date(m.createdAt).toISOString()}`);
    writeLine(ctx, `    last error: ${escapeControls(m.lastError ?? "none recorded")}`);
  }
  if (total > dead.length) writeLine(ctx, `  … and ${total - dead.length} more (--limit, up to ${MAX_LIST}, or --json)`);
}

function register(program: Command, ctx: CliContext): void {
  const cmd = group(program, "outbox", "The email outbox: what is owed, what is dead, and sending dead mail again.");
  // commander hands --json written after a subcommand to the parent command, which declares it too.
  cmd.option("--json", "print as JSON");
  const json = (opts: { json?: boolean }): boolean => opts.json === true || cmd.opts<{ json?: boolean }>().json === true;

  cmd
    .command("status")
    .description("Count messages by status, show how old the oldest undelivered one is, and list dead messages.")
    .option("--limit <n>", `dead messages to list, 1 to ${MAX_LIST} (default ${DEFAULT_LIST})`)
    .option("--json", "print as JSON")
    .action(
      action(ctx, async (opts: { limit?: string; json?: boolean }) => {
        const limit = listLimit(opts.limit);
        const app = await ctx.app();
        const { outbox } = app.accounts;
        const now = app.clock.now();
        const [counts, oldest, dead, last] = await Promise.all([outbox.counts(), outbox.oldestPending(), outbox.listDead({ limit }), outbox.lastSentAt()]);
        if (json(opts)) {
          writeJSON(ctx, {
            counts,
            oldestPendingAt: oldest === null ? null : new Date(oldest).toISOString(),
            oldestPendingAgeSeconds: oldest === null ? null : Math.max(0, Math.round((now - oldest) / 1000)),
            lastSentAt: last === null ? null : new Date(last).toISOString(),
            // This shell's own environment, not the server's (kept for scripts that read it): lastSentAt says what the server did.
            mailConfigured: app.config.http.mail !== null,
            dead: dead.map(deadView),
          });
          return EXIT.ok;
        }
        writeLine(ctx, `outbox: ${counts.queued} queued, ${counts.failed} waiting for a retry, ${counts.sending} being sent, ${counts.sent} sent, ${counts.dead} dead`);
        writeLine(ctx, oldest === null ? "nothing is waiting to be sent" : `oldest message not yet sent: queued ${age(now - oldest)} ago (${new Date(oldest).toISOString()})`);
        writeLine(ctx, lastDelivery(last, now));
        // A fact of the store, not a guess: mail owed since before the last delivery (or with none on record).
        if (oldest !== null && (last === null || last < oldest)) writeLine(ctx, `note: nothing was delivered since the oldest message not yet sent was queued; ${SERVER_SMTP}`);
        if (counts.dead > 0) {
          writeLine(ctx, `dead messages (not retried; \`bulwark outbox requeue-dead\` sends them again once the cause is fixed):`);
          printDead(ctx, dead, counts.dead);
        }
        return EXIT.ok;
      }),
    );

  cmd
    .command("requeue-dead")
    .description("Put every dead message back in the queue with a fresh attempt budget (audited). Fix the cause first.")
    .option("--dry-run", "list what would be requeued; change nothing")
    .option("--yes", "do not ask for confirmation")
    .option("--limit <n>", `messages to list, 1 to ${MAX_LIST} (default ${DEFAULT_LIST})`)
    .option("--json", "print as JSON")
    .action(
      action(ctx, async (opts: { dryRun?: boolean; yes?: boolean; limit?: string; json?: boolean }) => {
        const limit = listLimit(opts.limit);
        const app = await ctx.app();
        const { outbox } = app.accounts;
        // The run covers the messages dead up to the last of them in (created_at, id) order when it starts, and reads
        // their ids a page at a time (a relay that refused a flood of sign-up links leaves 100,000 of them): never
        // the whole list in memory or in one query. The dry run counts the same range, so the two agree.
        const through = await outbox.lastDead();
        const total = through === null ? 0 : await outbox.countDead({ through });
        if (opts.dryRun) {
          const sample = await outbox.listDead({ limit });
          if (json(opts)) writeJSON(ctx, { dryRun: true, wouldRequeue: total, messages: sample.map(deadView) });
          else {
            writeLine(ctx, `dry run: ${total} dead message${total === 1 ? "" : "s"} would be requeued; nothing was changed`);
            printDead(ctx, sample, total);
          }
          return EXIT.ok;
        }
        if (total > 0) {
          // The range is positional (ADR 0004): mail queued before the newest dead message that dies while the question
          // waits or the run goes on is requeued too. Said in the question, and counted in the report: a "yes" to N
          // messages that requeued N + 1 unsaid told the operator something other than what was done.
          await confirmOrRefuse(ctx, {
            yes: opts.yes, question: `Requeue ${total} dead messages (and any mail queued before them that dies before the run reaches it)? Type "yes" to go on: `,
            noTerminal: () => usage(`requeue-dead would send ${total} dead message${total === 1 ? "" : "s"} again: add --yes (see them first with --dry-run)`),
            declined: () => usage("not confirmed: nothing was requeued"),
          });
        }
        const actor = cliActor();
        let requeued = 0;
        // The cursor only moves forward: a message this run requeued that dies again meanwhile (a sender is live) sits
        // behind it and is not requeued twice. After a crash, a new run finds only the messages still dead.
        let after: DeadPosition | undefined;
        try {
          while (through !== null) {
            const page = await outbox.deadIds({ after, through, limit: REQUEUE_CHUNK });
            if (page.last === null) break;
            const chunk = page.ids;
            // Which messages an operator chose to send again: ids only, never addresses or content. The audit event
            // commits with the requeue, so no message is sent again unrecorded.
            requeued += await app.db.transaction(async (trx) => {
              const n = await outbox.requeueDead(chunk, trx);
              await app.audit.appendIn(trx, { type: "outbox.dead-requeued", actor, data: { requested: chunk.length, requeued: n, ids: chunk } });
              return n;
            });
            after = page.last;
          }
        } catch (error) {
          // The pages before the failure committed (each with its audit event) and their mail is queued again: the operator
          // who reads only the error would not know it, and might decide not to send the dead mail after all.
          writeNote(ctx, requeued === 0
            ? "requeue-dead: nothing was requeued before the failure below"
            : `requeue-dead: requeued ${requeued} of ${total} dead messages before the failure below (audited, and back in the queue to be sent); run it again for the rest`);
          throw error;
        }
        // From the store, never this shell's environment: the server sends with SMTP settings of its own (lastSentAt).
        const last = await app.accounts.outbox.lastSentAt();
        if (json(opts)) writeJSON(ctx, { requeued, counted: total, lastSentAt: last === null ? null : new Date(last).toISOString(), mailConfigured: app.config.http.mail !== null });
        else {
          const differs = requeued < total ? ` (${total - requeued} had changed meanwhile and were left alone)`
            : requeued > total ? ` (${requeued - total} more than counted: mail queued before them that died while this ran)` : "";
          writeLine(ctx, `requeued ${requeued} dead message${requeued === 1 ? "" : "s"}${differs}`);
          if (requeued > 0) {
            writeLine(ctx, `note: the server's sender sends them as it reaches them; ${lastDelivery(last, app.clock.now())}; ${SERVER_SMTP}`);
            // Said, not counted here: whether a message is still good to send is the claim's to judge, when it is sent.
            writeLine(ctx, "note: mail no longer good to send (a link that stopped working, was used or withdrawn, or that a newer link mail of its account replaced, an address its account left) dies again when the sender reaches it, unsent, the reason in `bulwark outbox status`");
          }
        }
        return EXIT.ok;
      }),
    );
}

export default { register } satisfies CommandModule;
