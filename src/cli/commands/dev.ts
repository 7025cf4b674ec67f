// `bulwark dev seed`: synthetic accounts for benchmarks, drills and demos (refuses a database with real users).
import type { Command } from "commander";
import type { CliContext, CommandModule } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { action, cliActor, group, progress, writeJSON, writeLine } from "../run.ts";
import { InputError } from "../../lib/errors.ts";
import { escapeControls } from "../../lib/terminal.ts";

/** Parses an option's number; `rule` says what the option takes, so a refusal tells the operator what to type. */
function num(text: string | undefined, option: string, pattern: RegExp, rule: string): number | undefined {
  if (text === undefined) return undefined;
  if (!pattern.test(text.trim())) throw new InputError("BULWARK_ERR_USAGE", `${option} must be ${rule}; got "${text.slice(0, 20)}"`);
  return Number(text);
}

function register(program: Command, ctx: CliContext): void {
  const dev = group(program, "dev", "Developer tools: synthetic data.");
  dev
    .command("seed")
    .description("Fill the database with realistic synthetic users (legacy hashes, admins, spread of logins); rows are marked seeded.")
    .requiredOption("--users <n>", "how many users (1 to 20000000)")
    .option("--sessions-per-user <k>", "live sessions per user (default 0)")
    .option("--tokens-per-user <t>", "API tokens per user (default 0)")
    .option("--legacy-share <f>", "share of legacy hashes, between 0 and 1 (default 0.3)")
    .option("--force", "seed even though the database holds real users")
    .option("--json", "print the report as JSON")
    .action(
      action(ctx, async (opts: { users: string; sessionsPerUser?: string; tokensPerUser?: string; legacyShare?: string; force?: boolean; json?: boolean }) => {
        // The ranges are the seeder's own (src/dev/seed.ts), which checks them again.
        const users = num(opts.users, "--users", /^0*[1-9]\d{0,7}$/, "a whole number from 1 to 20000000") as number;
        const sessionsPerUser = num(opts.sessionsPerUser, "--sessions-per-user", /^\d{1,3}$/, "a whole number from 0 to 100");
        const tokensPerUser = num(opts.tokensPerUser, "--tokens-per-user", /^\d{1,3}$/, "a whole number from 0 to 100");
        const legacyShare = num(opts.legacyShare, "--legacy-share", /^(0|1|0?\.\d{1,6}|1\.0*)$/, "a share between 0 and 1, such as 0.3");
        const [app, { seedUsers }] = await Promise.all([ctx.app(), import("../../dev/seed.ts")]);
        const bar = progress(ctx, "seed", users);
        const report = await seedUsers(
          { database: app.db, clock: app.clock, random: app.random, passwords: app.accounts.passwords },
          { users, ...(sessionsPerUser !== undefined ? { sessionsPerUser } : {}), ...(tokensPerUser !== undefined ? { tokensPerUser } : {}), ...(legacyShare !== undefined ? { legacyShare } : {}), force: opts.force === true, onProgress: (d, t) => bar.update(d, t) },
        );
        bar.done();
        await app.audit.append({ type: "dev.seeded", actor: cliActor(), data: { users: report.users, admins: report.admins, sessions: report.sessions, tokens: report.tokens } });
        // Which database was written, always: --data-dir picks the key file, but BULWARK_DATABASE_URL may send the rows
        // to a PostgreSQL server named elsewhere in the environment.
        if (opts.json) writeJSON(ctx, { ...report, database: app.db.where, dialect: app.db.dialect });
        else {
          writeLine(ctx, `database: ${escapeControls(app.db.where)} [${app.db.dialect}]`);
          writeLine(ctx, `seeded ${report.users} users (${report.admins} with an administrative or responder role), ${report.sessions} sessions, ${report.tokens} API tokens and ${report.mfa} users with a passkey in ${report.seconds.toFixed(1)} s`);
          writeLine(ctx, `  hash schemes: ${Object.entries(report.byScheme).map(([k, v]) => `${k} ${v}`).join(", ")}`);
        }
        return EXIT.ok;
      }),
    );
}

export default { register } satisfies CommandModule;
