// `bulwark check logins [--since 24h]`: failed-login waves and the sign-ins that got through, from the audit log.
import type { Command } from "commander";
import { InputError } from "../../lib/errors.ts";
import { addCheckOptions, finishCheck, type CheckOptions } from "../check-common.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { action, group } from "../run.ts";
import { parseTime } from "../time.ts";

interface LoginsOptions extends CheckOptions {
  since: string;
  until?: string;
  waveMin?: string;
  waveFactor?: string;
  streak?: string;
}

/** A whole number from `min` to 1,000,000,000 typed for `option`, or the default. */
function whole(text: string | undefined, option: string, min: number, fallback: number): number {
  if (text === undefined) return fallback;
  const t = text.trim();
  if (!/^\d{1,10}$/.test(t) || Number(t) < min || Number(t) > 1e9) throw new InputError("BULWARK_ERR_USAGE", `${option} must be a whole number from ${min} to 1000000000; got "${t.slice(0, 20)}"`);
  return Number(t);
}

export default {
  register(program: Command, ctx: CliContext): void {
    const check = group(program, "check", "run a security check and print findings");
    addCheckOptions(
      check
        .command("logins")
        .description(
          "read this Bulwark's own sign-ins from its audit log: hours of failed logins far above the usual (a credential-stuffing wave), " +
            "the sign-ins from browsers new to their account during one, and sign-ins after a run of failures; each with the session to end",
        )
        .option("--since <time>", "the window's start: an age such as 24h, 7d, or an ISO 8601 time (UTC unless it carries an offset)", "24h")
        .option("--until <time>", "the window's end (default: now)")
        .option("--wave-min <n>", "an hour is part of a wave with at least this many failed logins (default 100)...")
        .option("--wave-factor <n>", "...and at least this many times the window's median hour (default 5)")
        .option("--streak <n>", "report a sign-in after at least this many failed attempts in a row on its account (default 5, as the owner's notice)"),
    ).action(
      action(ctx, async (opts: LoginsOptions) => {
        const { checkLogins, DEFAULT_LOGINS_OPTIONS } = await import("../../checks/logins/index.ts");
        // Checked before the store is opened: a typo costs nothing.
        const waveMin = whole(opts.waveMin, "--wave-min", 1, DEFAULT_LOGINS_OPTIONS.waveMin);
        const waveFactor = whole(opts.waveFactor, "--wave-factor", 1, DEFAULT_LOGINS_OPTIONS.waveFactor);
        const streak = whole(opts.streak, "--streak", 1, DEFAULT_LOGINS_OPTIONS.streak);
        const app = await ctx.app();
        const now = app.clock.now();
        const since = parseTime(opts.since, "--since", now);
        const until = opts.until === undefined ? now : parseTime(opts.until, "--until", now);
        if (since >= until) throw new InputError("BULWARK_ERR_USAGE", `--since (${new Date(since).toISOString()}) must be before --until (${new Date(until).toISOString()})`);
        const r = await checkLogins(app.db, { since, until, waveMin, waveFactor, streak });
        const summary = [
          `${r.window.since} to ${r.window.until}: ${r.failed} failed login(s) (usually ${r.medianFailedPerHour} an hour), ${r.throttled} throttled event(s), ${r.succeeded} sign-in(s); ${r.waves.length} wave(s)`,
          ...(r.succeededWithoutDetail > 0 ? [`${r.succeededWithoutDetail} sign-in(s) were recorded before sign-in events named their session and browser: not judged on them`] : []),
        ];
        return finishCheck(ctx, opts, {
          check: "logins",
          findings: r.findings,
          extra: { window: r.window, failed: r.failed, throttled: r.throttled, succeeded: r.succeeded, medianFailedPerHour: r.medianFailedPerHour, waves: r.waves, succeededWithoutDetail: r.succeededWithoutDetail },
          summary,
        });
      }),
    );
  },
} satisfies CommandModule;
