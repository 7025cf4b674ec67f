// `bulwark users create` (bootstraps the first administrator), `bulwark users unlock` (break-glass), `bulwark users
// set-email` (the way back from a hijack) and `bulwark roles …`.
import type { User } from "../../accounts/users/user-store.ts";
import type { Kysely } from "kysely";
import { storeBusyError } from "../../store/errors.ts";
import type { Schema } from "../../store/schema.ts";
import type { App } from "../../app/types.ts";
import type { AccountFootholds } from "../../accounts/email-change/index.ts";
import { InputError, isBulwarkError, RuntimeFailure } from "../../lib/errors.ts";
import { escapeControls } from "../../lib/terminal.ts";
import { publicURLRefusal, realRunRefused } from "../public-url.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { EXIT, type ExitCode } from "../exit-codes.ts";
import { confirmOrRefuse } from "../prompt.ts";
import { inertJSON } from "../../lib/terminal.ts";
import { action as runAction, cliActor, collect, escapedLines, group, readPassword, writeFlushed, writeJSON, writeLine } from "../run.ts";

/** The accounts code the commands run (src/cli/users-admin-deps.ts), loaded by the first of them that runs. */
let deps: typeof import("../users-admin-deps.ts");

/** run.ts's action, with this module's accounts code loaded first (as part of the command, so a failure is reported). */
function action<A extends unknown[]>(ctx: CliContext, body: (...args: A) => Promise<ExitCode | void> | ExitCode | void): (...args: A) => Promise<void> {
  return runAction(ctx, async (...args: A) => {
    deps ??= await import("../users-admin-deps.ts");
    return body(...args);
  });
}

/**
 * The user an operator named: an id (`usr_…`), else an email or username. An address or username that happens to
 * begin with `usr_` is still found (it was taken for an id, and break-glass unlock answered "no user"). Text that is
 * one account's id and another's username is refused, naming both: a requester whose username spells an
 * administrator's id would otherwise have the administrator's account changed on their word.
 */
async function findUser(app: App, identifier: string): Promise<User> {
  const byId = identifier.startsWith("usr_") ? await app.accounts.users.getById(identifier) : null;
  const byName = await app.accounts.users.findByIdentifier(identifier);
  if (byId && byName && byId.id !== byName.id) {
    throw new InputError("BULWARK_ERR_USAGE", `"${escapeControls(identifier)}" is the id of ${byId.id} <${escapeControls(byId.email)}> and the username of ${byName.id} <${escapeControls(byName.email)}>: name the account by its email address`);
  }
  const user = byId ?? byName;
  if (!user) throw new InputError("BULWARK_ERR_USAGE", `no user "${identifier}"`);
  return user;
}

/** What a grant's notice came to (tellGrantee), per role granted with an administrative permission. */
interface GrantTold {
  role: string;
  outcome: "queued" | "refused";
}

/**
 * The `granted` hook of a CLI grant: tells the account given an administrative role, in the grant's transaction
 * (src/accounts/roles/grant-notice.ts; the API tells the acting account too, the CLI has none), and notes the outcome.
 */
function tellingGrantee(app: App, told: GrantTold[], grant: { userId: string; role: string; actor: string }): (trx: Kysely<Schema>, event: { id: string }) => Promise<void> {
  return async (trx, event) => {
    const outcome = await deps.tellGrantee(trx, { audit: app.audit, outbox: app.accounts.outbox, clock: app.clock, appName: app.config.serviceName }, { ...grant, eventId: event.id });
    if (outcome !== "not administrative") told.push({ role: grant.role, outcome });
  };
}

/** The lines that say who was told of the grants in `told`. */
function grantNoticeLines(told: GrantTold[]): string[] {
  return told.map(({ role, outcome }) => outcome === "queued"
    ? `${role} is administrative: the account's owner is told by mail (sent once mail is configured)`
    : `${role} is administrative, but the account's address cannot be mailed (${deps.GRANT_NOTICE_REFUSED} records why): tell its owner another way`);
}

export default {
  register(program, ctx) {
    const users = group(program, "users", "user accounts: create, unlock, set an email address, import, migrate hashes, census");
    users
      .command("create")
      .description("create an account; the password is read from stdin, or generated and printed once with --generate-password (then it must be changed at first sign-in)")
      .requiredOption("--email <email>", "the account's email address")
      .option("--username <name>", "an optional login name")
      .option("--role <role>", "grant a role (repeatable), e.g. --role admin", collect, [])
      .option("--generate-password", "generate a strong password, print it once, and require a new one at first sign-in; it expires after BULWARK_INITIAL_PASSWORD_HOURS (default 72)")
      .option("--json", "print the account as JSON")
      .action(
        action(ctx, async (opts: { email: string; username?: string; role: string[]; generatePassword?: boolean; json?: boolean }) => {
          const app = await ctx.app();
          const { users: store, passwords, policy, roles } = app.accounts;
          const generated = opts.generatePassword || (ctx.stdin as { isTTY?: boolean }).isTTY ? deps.base32(app.random.bytes(20)) : null;
          const password = generated ?? (await readPassword(ctx, { maxBytes: passwords.limits.maxPasswordBytes, ifEmpty: "pipe one in, or use --generate-password" }));
          // --json: one document; with a generated password its head (the account and the password) is written before
          // the commit and its last member, the roles granted after it, once they are (jsonTail).
          const accountJSON = (user: User, signUpRemoved: string | null): Record<string, unknown> => {
            const expires = user.passwordInitialExpiresAt === null ? null : new Date(user.passwordInitialExpiresAt).toISOString();
            return { id: user.id, email: user.email, username: user.username, mustChangePassword: generated !== null, signUpRemoved, ...(generated !== null ? { password: generated, passwordExpiresAt: expires } : {}) };
          };
          const jsonHead = (user: User, signUpRemoved: string | null): string => `${inertJSON(accountJSON(user, signUpRemoved), 2).slice(0, -2)},\n`;
          const jsonTail = (roles: string[]): string => `${inertJSON({ roles }, 2).slice(2)}\n`;
          const passwordLines = (user: User): string => [
            `password (shown once; it must be changed at first sign-in): ${generated ?? ""}`,
            ...(user.passwordInitialExpiresAt !== null ? [`the password stops working at ${new Date(user.passwordInitialExpiresAt).toISOString()} unless changed before (BULWARK_INITIAL_PASSWORD_HOURS)`] : []),
          ].map((line) => `${escapedLines(line)}\n`).join("");
          // A lookup's outage refuses every password alike: the server's failure (exit 3), not bad input (exit 2).
          deps.throwIfRefused(await policy.check(password, deps.accountPasswordContext(opts, app.config.serviceName)));
          for (const role of opts.role) await roles.get(role); // unknown role: fail before creating anything
          const hash = await passwords.hash(password);
          const actor = cliActor();
          // ASVS 6.4.1: a generated password has been seen by whoever ran this (terminal, scrollback, a ticket), so
          // it only gets the owner in once; the first login is held until they choose their own. A password typed
          // on stdin is the operator's own choice (the bootstrap administrator setting theirs) and stays.
          // It also expires (BULWARK_INITIAL_PASSWORD_HOURS): left unused in a ticket, it does not stay a way in.
          const mustChange = generated !== null;
          // The account and its event commit together, as POST /api/v1/users does: an append that failed after the
          // account was written left an account no event recorded, and its generated password shown nowhere.
          // An address held only by an unfinished sign-up (an outsider's squat: anyone may start one) is the operator's to
          // give: the sign-up is deleted in the same transaction and recorded (sign-up-shell.ts), as set-email does.
          const { created: user, signUpRemoved } = await app.db.transaction(async (trx) => {
            const made = await deps.createOverSignUps(app.db, trx, app.audit, opts.email, { actor, via: "cli" }, async (signUpRemoved) => {
              const created = await store.create({
                email: opts.email, username: opts.username ?? null, passwordHash: hash, passwordScheme: passwords.defaultScheme, passwordMustChange: mustChange,
                passwordInitialExpiresAt: mustChange ? app.clock.now() + app.config.initialPasswordMs : null,
              }, trx);
              await app.audit.appendIn(trx, { type: "user.created", actor, subject: created.id, data: { via: "cli", rolesRequested: opts.role, mustChangePassword: mustChange, ...(signUpRemoved !== null ? { signUpRemoved } : {}) } });
              return created;
            });
            // A generated password is shown once and kept nowhere: it is handed to stdout before the COMMIT, which waits
            // until stdout has taken it (ADR 0017 does so with a printed master key). Printed after the commit, a reader
            // that had gone away or a full disk under `> admin.txt` left an administrator whose password nobody had, and
            // the retry was refused (the email taken). Now the account rolls back with it, exit 3, and the retry works.
            if (generated !== null) {
              try {
                await writeFlushed(ctx.stdout, opts.json ? jsonHead(made.created, made.signUpRemoved) : passwordLines(made.created));
              } catch (cause) {
                throw new RuntimeFailure("BULWARK_ERR_OUTPUT_WRITE", `cannot write to standard output (${(cause as Error).message}): the account was not created, its generated password shown nowhere; run the command again`, { cause });
              }
            }
            return made;
          });
          // The account exists from here on, its generated password handed over: a grant that fails (the role deleted
          // meanwhile) leaves it; the account is printed with the roles it got, and the error follows.
          const granted: string[] = [];
          const told: GrantTold[] = [];
          let failure: unknown = null;
          for (const role of opts.role) {
            try {
              await roles.grant(user.id, role, actor, { granted: tellingGrantee(app, told, { userId: user.id, role, actor }) });
              granted.push(role);
            } catch (error) {
              // A grant that waited past the store's bound is the named busy failure (BULWARK_ERR_DB_BUSY, "try again"),
              // in the event and the message alike, as reportError names every other: not an internal error quoting the driver.
              failure = storeBusyError(error) ?? error;
              break;
            }
          }
          // The rest of the output: the roles granted are known only now, after their own commits.
          if (opts.json) {
            if (generated !== null) ctx.stdout.write(jsonTail(granted));
            else writeJSON(ctx, { ...accountJSON(user, signUpRemoved), roles: granted });
          } else {
            writeLine(ctx, `created ${user.id} <${user.email}>${granted.length ? ` with role(s) ${granted.join(", ")}` : ""}`);
            if (signUpRemoved !== null) writeLine(ctx, `the unfinished sign-up ${signUpRemoved} holding the address was deleted`);
            for (const line of grantNoticeLines(told)) writeLine(ctx, line);
          }
          if (failure !== null) {
            const missing = opts.role.filter((r) => !granted.includes(r));
            const why = failure instanceof Error ? failure.message : String(failure);
            // The log says what the account got: user.created names the roles asked for, each grant its role.granted,
            // and this what was not granted and why (a creation that failed half-way is not read as a success).
            let unrecorded = "";
            try {
              await app.audit.append({
                type: "user.roles-incomplete", actor, subject: user.id,
                data: { via: "cli", granted, missing, code: isBulwarkError(failure) ? failure.code : "BULWARK_ERR_INTERNAL" },
              });
            } catch (error) {
              const auditFailure = storeBusyError(error) ?? error;
              unrecorded = ` (the audit event saying so could not be written either: ${auditFailure instanceof Error ? auditFailure.message : String(auditFailure)})`;
            }
            const message = `account ${user.id} was created, but role(s) ${missing.join(", ")} could not be granted (${why}); grant them with \`bulwark roles grant ${user.email} ROLE\`${unrecorded}`;
            // A grant the rules refused (the account disabled meanwhile, a role deleted) is no failure of the store: exit 2
            // as `roles grant` gives for it, not 3, which tells a script to try again later.
            const refused = isBulwarkError(failure) && (failure.kind === "input" || failure.kind === "conflict" || failure.kind === "not-found");
            throw refused ? new InputError("BULWARK_ERR_USER_ROLES_INCOMPLETE", message, { cause: failure }) : new RuntimeFailure("BULWARK_ERR_USER_ROLES_INCOMPLETE", message, { cause: failure });
          }
        }),
      );

    // Break-glass: the API refuses to lock the last usable administrator, but a containment job does not (in a breach
    // the administrators are suspects too), and with every administrator locked no API call can lift it.
    users
      .command("unlock <identifier>")
      .description("unlock an account (email, username or id), whatever locked it; every session from before stays dead")
      .option("--json", "print the outcome as JSON")
      .action(
        action(ctx, async (identifier: string, opts: { json?: boolean }) => {
          const app = await ctx.app();
          const user = await findUser(app, identifier);
          const now = app.clock.now();
          // The lock named (event and screen) is the one the unlock lifted, read with it: the account read above may have
          // been locked again since (an administrator's "keep locked" over a containment lock).
          const lifted = await app.db.transaction(async (trx) => {
            const unlocked = await deps.unlockUser(trx, user.id, now);
            if (unlocked) await app.audit.appendIn(trx, { type: "user.unlocked", actor: cliActor(), subject: user.id, data: { via: "cli", reason: unlocked.reason } });
            return unlocked;
          });
          const changed = lifted !== null;
          if (opts.json) return void writeJSON(ctx, { id: user.id, email: user.email, changed });
          // Stored text (a lock reason an API caller or a containment job chose, an address) reaches the terminal inert.
          const email = escapeControls(user.email);
          writeLine(ctx, changed ? `unlocked ${user.id} <${email}> (was: ${escapeControls(lifted.reason ?? "locked")}); sessions from before the unlock stay ended` : `nothing to do: ${email} is not locked`);
        }),
      );

    // The way back from a hijack, after checking out of band who is asking (set-by-administrator.ts).
    users
      .command("set-email <identifier> <email>")
      .description("set an account's email address (email, username or id), ending its sessions, its password and the links mailed to the old address; a reset link goes to the new address, and both addresses are told")
      .option("--dry-run", "say what would change; change nothing")
      .option("--json", "print the outcome as JSON")
      .action(
        action(ctx, async (identifier: string, email: string, opts: { dryRun?: boolean; json?: boolean }) => {
          const app = await ctx.app();
          const user = await findUser(app, identifier);
          const left = (r: AccountFootholds): string[] => [
            ...(r.apiTokens > 0 ? [`${r.apiTokens} live API token(s) remain: revoke them with a containment job (revoke-tokens, --ids) if the hijacker may have made them`] : []),
            ...(r.secondFactors > 0 ? [`${r.secondFactors} second factor(s) remain: if one may be the hijacker's, run a containment job (require-mfa-reenrolment, --ids)`] : []),
          ];
          // Who is told: both addresses, or the new one only when the outbox cannot mail the old (an imported address):
          // the operator must then reach the owner another way, and is told so rather than "both are told".
          const told = (oldToo: boolean, refused: string | null, verb: "are" | "would be"): string => oldToo
            ? `both addresses ${verb} told`
            : `only the new address ${verb === "are" ? "is" : "would be"} told: the old one cannot be mailed (${escapeControls(refused ?? "refused by the outbox")}), so reach the owner another way`;
          // The real run's refusal from a shell without BULWARK_PUBLIC_URL (whatever the address): thrown by the run,
          // reported by the dry run, which forecast a reset link the run then refused to mail.
          const refusal = publicURLRefusal(app, "set-email mails the account a reset link at its new address");
          if (opts.dryRun) {
            const forecast = await deps.forecastSetEmail(app, user.id, email);
            if (opts.json) return void writeJSON(ctx, { dryRun: true, ...forecast, ...realRunRefused(refusal) });
            if (!forecast.changed && forecast.liftsResetHold) writeLine(ctx, `dry run: ${escapeControls(forecast.oldEmail)} is already the address of ${user.id}; confirming it would lift the containment hold on its reset links, so the public reset form would mail it again; nothing was changed`);
            else if (!forecast.changed) writeLine(ctx, `dry run: nothing to do: ${escapeControls(forecast.oldEmail)} is already the address of ${user.id}`);
            else {
              writeLine(ctx, `dry run: ${user.id} would move from <${escapeControls(forecast.oldEmail)}> to <${escapeControls(forecast.newEmail)}>, ending ${forecast.sessions} session(s) and ${forecast.openLinks} open link(s)${forecast.invalidatesPassword ? " and its password" : ""}; a reset link would go to the new address and ${told(forecast.notifiesOldAddress, forecast.oldAddressRefused, "would be")}${forecast.liftsResetHold ? "; the containment hold on its reset links would be lifted" : ""}${forecast.removesSignUp !== null ? `; the unfinished sign-up ${forecast.removesSignUp} holding the address would be deleted` : ""}; nothing was changed`);
              for (const line of left(forecast.remaining)) writeLine(ctx, line);
            }
            if (refusal !== null) writeLine(ctx, `note: BULWARK_PUBLIC_URL is not set here; the real run will refuse until it is (a reset link it mails would point at ${app.config.http.publicURL})`);
            return;
          }
          if (refusal !== null) throw refusal;
          const outcome = await deps.setEmailByAdministrator(app, { userId: user.id, email, actor: cliActor(), via: "cli" });
          if (opts.json) return void writeJSON(ctx, outcome);
          if (!outcome.changed && outcome.resetHoldLifted) return void writeLine(ctx, `${escapeControls(outcome.oldEmail)} is already the address of ${user.id}; the containment hold on its reset links is lifted: the public reset form mails it again`);
          if (!outcome.changed) return void writeLine(ctx, `nothing to do: ${escapeControls(outcome.oldEmail)} is already the address of ${user.id}`);
          writeLine(ctx, `${user.id} now has the address <${escapeControls(outcome.newEmail)}> (was <${escapeControls(outcome.oldEmail)}>): ${outcome.sessionsEnded} session(s) and ${outcome.linksSpent} open link(s) ended${outcome.passwordInvalidated ? ", the password no longer works" : ""}; a reset link goes to the new address and ${told(outcome.oldAddressNotified, outcome.oldAddressRefused, "are")}${outcome.resetHoldLifted ? "; the containment hold on its reset links is lifted" : ""}${outcome.signUpRemoved !== null ? `; the unfinished sign-up ${outcome.signUpRemoved} holding the address was deleted` : ""}, quoting reference ${outcome.eventId}`);
          for (const line of left(outcome.remaining)) writeLine(ctx, line);
        }),
      );

    const roles = group(program, "roles", "roles and their permissions (deny by default; admin implies all)");
    roles
      .command("list")
      .description("list roles and their permissions")
      .option("--json", "print as JSON")
      .action(
        action(ctx, async (opts: { json?: boolean }) => {
          const list = await (await ctx.app()).accounts.roles.list();
          if (opts.json) return void writeJSON(ctx, list);
          for (const r of list) writeLine(ctx, `${r.name.padEnd(16)} ${r.permissions.join(", ")}${r.builtin ? "  (built in)" : ""}`);
        }),
      );
    roles
      .command("create <name>")
      .description("create a role")
      .requiredOption("--permission <permission>", "a permission (repeatable): accounts.read, accounts.write, contain.run, incidents.manage, checks.run, inventory.manage, audit.read, admin", collect, [])
      .option("--description <text>", "what the role is for")
      .option("--json", "print the role as JSON")
      .action(
        action(ctx, async (name: string, opts: { permission: string[]; description?: string; json?: boolean }) => {
          const role = await (await ctx.app()).accounts.roles.create({ name, permissions: opts.permission, ...(opts.description !== undefined ? { description: opts.description } : {}) }, cliActor());
          if (opts.json) return void writeJSON(ctx, role);
          writeLine(ctx, `created role ${role.name}: ${role.permissions.join(", ")}`);
        }),
      );
    roles
      .command("delete <name>")
      .description("delete a role, taking it from every user who holds it (built-in roles cannot be deleted)")
      .option("--dry-run", "say how many users hold the role; change nothing")
      .option("--yes", "do not ask before taking the role from the users who hold it")
      .option("--json", "print the outcome as JSON: role, holders, dryRun, deleted")
      .action(
        action(ctx, async (name: string, opts: { dryRun?: boolean; yes?: boolean; json?: boolean }) => {
          const store = (await ctx.app()).accounts.roles;
          const role = await store.get(name);
          // Refused before the dry run as RoleStore.delete refuses it (same error, exit 2): a dry run that told how many
          // holders a built-in role "would" lose vouched for a deletion the real run never makes.
          if (role.builtin) throw deps.roleErrors.builtin(role.name);
          const holders = await store.holders(role.name);
          const who = `${holders} user${holders === 1 ? "" : "s"}`;
          if (opts.dryRun) {
            if (opts.json) writeJSON(ctx, { role: role.name, holders, dryRun: true, deleted: false });
            else writeLine(ctx, `dry run: deleting role ${role.name} would take it from ${who}; nothing was changed`);
            return EXIT.ok;
          }
          if (holders > 0) {
            await confirmOrRefuse(ctx, {
              yes: opts.yes, question: `Delete role ${role.name} and take it from ${who}? Type "yes" to go on: `,
              noTerminal: () => new InputError("BULWARK_ERR_USAGE", `deleting role ${role.name} takes it from ${who}: add --yes (see with --dry-run)`),
              declined: () => new InputError("BULWARK_ERR_USAGE", "not confirmed: the role was not deleted"),
            });
          }
          // The deletion takes the role from exactly the holders counted and confirmed above, or from nobody: a grant
          // committed in between (the server's, another operator's) is not taken away unasked (ROLE_HOLDERS_CHANGED).
          await store.delete(role.name, cliActor(), { holdersCounted: holders });
          if (opts.json) writeJSON(ctx, { role: role.name, holders, dryRun: false, deleted: true });
          else writeLine(ctx, `deleted role ${role.name}${holders > 0 ? ` (taken from ${who})` : ""}`);
          return EXIT.ok;
        }),
      );
    for (const verb of ["grant", "revoke"] as const) {
      roles
        .command(`${verb} <identifier> <role>`)
        .description(`${verb} a role ${verb === "grant" ? "to" : "from"} a user (email, username or id)`)
        .option("--json", "print the outcome as JSON: userId, role, changed, and the owner's notice of an administrative grant")
        .action(
          action(ctx, async (identifier: string, role: string, opts: { json?: boolean }) => {
            const app = await ctx.app();
            const user = await findUser(app, identifier);
            const told: GrantTold[] = [];
            const changed = verb === "grant"
              ? await app.accounts.roles.grant(user.id, role, cliActor(), { granted: tellingGrantee(app, told, { userId: user.id, role, actor: cliActor() }) })
              : await app.accounts.roles.revoke(user.id, role, cliActor());
            if (opts.json) {
              writeJSON(ctx, { userId: user.id, role, changed, ...(verb === "grant" ? { ownerNotice: told[0]?.outcome ?? null } : {}) });
              return EXIT.ok;
            }
            const email = escapeControls(user.email);
            writeLine(ctx, changed ? `${verb === "grant" ? "granted" : "revoked"} ${role} ${verb === "grant" ? "to" : "from"} ${email}` : `nothing to do: ${email} ${verb === "grant" ? "already holds" : "does not hold"} ${role}`);
            for (const line of grantNoticeLines(told)) writeLine(ctx, line);
            return EXIT.ok;
          }),
        );
    }
  },
} satisfies CommandModule;
