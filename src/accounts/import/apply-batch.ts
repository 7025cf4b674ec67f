// One batch of a real import, in its transaction: each row inserted or updated as validated (re-checked against the
// accounts as they are now), an update's sessions, links and notice handled with it, an unfinished sign-up holding a
// new row's address removed for it (sign-up-shell.ts), and the batch's audit event.
import type { Kysely, RawBuilder } from "kysely";
import { sql } from "kysely";
import type { Schema } from "../../store/schema.ts";
import { addressProblem, notifySecurityEvent } from "../../notify/index.ts";
import { spendEmailChangeLinks } from "../email-change/email-change-service.ts";
import { removeUnfinishedSignUp } from "../email-change/sign-up-shell.ts";
import { lockAccountLinks, lockManyAccountsLinks } from "../password-reset/link-lock.ts";
import { spendResetLinks } from "../password-reset/reset-service.ts";
import { endUserSessions, raiseStamp, revokedBefore } from "../sessions/revocation.ts";
import { tokenUserScope } from "../tokens/token-service.ts";
import { collidedKey, passwordChangedAtAfterChange } from "../users/user-store.ts";
import { ImportRefusedError, isUniqueViolation } from "./errors.ts";
import { clash, EXISTS, holderNow, lookup, renamesUsername } from "./existing.ts";
import type { ImportRow } from "./mapping.ts";
import { planPassword, type PasswordNote } from "./password-update.ts";
import { IMPORT_NOTICE_REFUSED, type ImportDeps, type ImportOptions, type RowNote, type SignUpRemoved } from "./types.ts";

export interface BatchResult {
  created: number;
  updated: number;
  skipped: number;
  skippedRows: RowNote[];
  passwordsReplaced: PasswordNote[];
  passwordsKept: number;
  passwordsNotSet: number;
  signUpsRemoved: SignUpRemoved[];
}

/**
 * The last login an update keeps: the later of the stored one and the file's. The export's is the old site's, and a
 * sign-in to Bulwark since is newer: rewinding it (2013 over yesterday's) had demote-inactive-admins demote an active
 * administrator and dropped them from --last-login-after scopes (ASVS 2.2.3). Compared in the statement, not against
 * the batch's lookup, so a login committed meanwhile is kept too; CASE instead of max()/GREATEST(): the same SQL on
 * SQLite and PostgreSQL (as laterStampValue in sessions/revocation.ts). A stored NULL (never signed in) takes the file's.
 */
function laterLogin(offered: number): RawBuilder<number> {
  return sql<number>`CASE WHEN last_login_at IS NULL OR last_login_at < ${offered} THEN ${offered} ELSE last_login_at END`;
}

export async function applyBatch(deps: ImportDeps, trx: Kysely<Schema>, rows: ImportRow[], options: ImportOptions, batch: { index: number; jobId: string }): Promise<BatchResult> {
  const { index } = batch;
  const found = await lookup(trx, rows);
  // The accounts this batch may update write their links last (a replaced password spends them): their link locks
  // come first, so a reset or email confirmation of one of them (link lock → token → account) cannot deadlock it. So
  // do the unfinished sign-ups it may remove (their links go with them), whatever --on-conflict says.
  const updates = options.onConflict === "update" ? [...found.byEmail.values()].map((e) => e.id) : [];
  await lockManyAccountsLinks(deps.database.dialect, trx, [...updates, ...[...found.signUps.values()].map((e) => e.id)]);
  let created = 0;
  let updated = 0;
  const skippedRows: RowNote[] = [];
  const passwordsReplaced: PasswordNote[] = [];
  let passwordsKept = 0;
  let passwordsNotSet = 0;
  const signUpsRemoved: SignUpRemoved[] = [];
  const refuse = (line: number, why: string, cause?: unknown): never => {
    throw new ImportRefusedError(`line ${line}: ${why}; batch ${index} was rolled back, earlier batches stay imported`, cause === undefined ? {} : { cause });
  };
  /** Runs one row's write; the store's unique index refusing it is the row's refusal, not an internal error. */
  const write = async <T>(line: number, statement: () => Promise<T>): Promise<T> => {
    try {
      return await statement();
    } catch (error) {
      // Validation and clash() found no account holding the row's keys, yet the database's unique index does: it
      // compares differently than the importer (as SQLite did lone surrogates, stored as U+FFFD) or another writer
      // committed after this batch's lookup. Either way the row cannot be written as validated.
      if (isUniqueViolation(error)) {
        const collided = collidedKey(error);
        if (collided === "email-skeleton" || collided === "username-skeleton") refuse(line, `its ${collided === "email-skeleton" ? "email" : "username"} reads like that of a stored account (the same letters in another script)`, error);
        refuse(line, `the database refused it as a duplicate of a stored account (${(error as Error).message.slice(0, 120)})`, error);
      }
      throw error;
    }
  };
  let accountsSignedOut = 0;
  let noticesQueued = 0;
  let noticesRefused = 0;
  const now = deps.clock.now();
  for (const row of rows) {
    // Accounts may have changed since validation (another import, a sign-up): re-check inside the transaction.
    const why = clash(row, found, options.onConflict);
    if (why) refuse(row.line, why);
    let existing = found.byEmail.get(row.emailKey);
    const squat = existing ? undefined : found.signUps.get(row.emailKey);
    if (!existing) {
      const values = deps.users.prepare(row.user);
      // The address is held only by an unfinished sign-up of it: deleted here (its link with it), checked again under
      // its link lock, and recorded for the account that takes the address, as `users create` does (createOverSignUps).
      // In this batch's transaction, with the cursor: a resumed import never meets it twice.
      const removed = squat !== undefined && (await removeUnfinishedSignUp(deps.database, trx, deps.audit, squat.id, {
        actor: options.actor, for: values.id, via: "import", detail: { line: row.line, job: batch.jobId, source: options.rules.source },
      }));
      if (removed) signUpsRemoved.push({ line: row.line, id: squat.id });
      if (squat === undefined || removed) {
        await write(row.line, () => trx.insertInto("users").values(values).execute());
        created++;
        continue;
      }
      // Finished through its link meanwhile (or gone): the row meets the address's holder as it is now, as any stored
      // account (its link lock is this batch's already, unless another account took the address meanwhile).
      existing = await holderNow(trx, found, row);
      if (existing) await lockAccountLinks(deps.database, trx, existing.id);
      const again = clash(row, found, options.onConflict);
      if (again) refuse(row.line, again);
      if (!existing) {
        await write(row.line, () => trx.insertInto("users").values(values).execute());
        created++;
        continue;
      }
    }
    if (options.onConflict === "skip") {
      skippedRows.push({ line: row.line, reason: `${EXISTS} (--on-conflict skip)` });
      continue;
    }
    // An update touches only what the file supplied and is not empty. It never touches containment
    // state (password_invalidated_at, locked_at, password_must_change: a re-import must not undo an
    // incident response), replaces a password only as planned (password-update.ts), and never moves
    // the last login backwards (laterLogin).
    const plan = planPassword(row, existing.passwordHash, { replacePasswords: options.replacePasswords === true }, deps.passwords);
    // The stored hash changed since validation (migrate-hashes wrapped it, a login rehashed it).
    if (plan.kind === "refuse") refuse(row.line, plan.reason);
    const u = row.user;
    const has = (f: Parameters<typeof row.supplied.has>[0]): boolean => row.supplied.has(f);
    let q = trx
      .updateTable("users")
      .set({
        updated_at: now,
        ...(has("username") && u.username ? { username: u.username, username_key: row.usernameKey } : {}),
        // Under a new skeleton only (checked by clash): an account marked as a look-alike keeps its mark while its
        // username reads the same, and the unique index judges a rename like any new username.
        ...(has("username") && u.username && renamesUsername(row, existing, options.onConflict) ? { username_skeleton: row.usernameSkeleton, username_lookalike: 0 } : {}),
        ...(has("display_name") && u.displayName ? { display_name: u.displayName } : {}),
        ...(has("status") && u.status ? { status: u.status } : {}),
        // The replaced password is no longer an administrator's initial one: its expiry goes with it (ASVS 6.4.1).
        ...(plan.kind === "replace" ? { password_hash: u.passwordHash, password_scheme: u.passwordScheme, password_changed_at: passwordChangedAtAfterChange(now), password_initial_expires_at: null, password_unproven: 0 } : {}),
        ...(u.lastLoginAt ? { last_login_at: laterLogin(u.lastLoginAt) } : {}),
        ...(u.externalId ? { external_source: u.externalSource ?? null, external_id: u.externalId } : {}),
      })
      .where("id", "=", existing.id);
    // Compare-and-set: the replacement was judged against this stored hash (PostgreSQL reads take no row lock).
    if (plan.kind === "replace") {
      const was = existing.passwordHash;
      q = was === null ? q.where("password_hash", "is", null) : q.where("password_hash", "=", was);
    }
    const result = await write(row.line, () => q.executeTakeFirst());
    if (Number(result.numUpdatedRows) !== 1) refuse(row.line, "the stored password hash changed while the batch was written");
    // Disabling an account ends its sessions (ASVS 7.4.2), and so does replacing its password (ASVS 7.4.3): a session
    // stolen before either must neither outlive the password nor come back when a later import enables the account.
    // Also when the account was disabled already: one an import disabled before this rule still has its sessions.
    if ((has("status") && u.status === "disabled") || plan.kind === "replace") {
      await endUserSessions(trx, existing.id, deps.clock.now());
      accountsSignedOut++;
    }
    // Disabling ends its API tokens too, for good (a stamp): refused while disabled, a token of someone who left
    // answered 200 again the day a later import enabled the account (a re-hire, an old export imported again), where
    // its sessions stayed dead (ASVS 7.4.2). A lock keeps them, on purpose: an unlock gives the owner back their automation.
    if (has("status") && u.status === "disabled") await raiseStamp(trx, tokenUserScope(existing.id), revokedBefore(deps.clock.now()), deps.clock.now());
    // A new password spends the pending reset and email-change links, as a change through the service does: a link
    // asked for before it (perhaps by whoever held the old password) must not undo it or move the account away.
    if (plan.kind === "replace") {
      await spendResetLinks(trx, existing.id, deps.clock.now());
      await spendEmailChangeLinks(trx, existing.id, deps.clock.now());
    }
    // The owner is told, as a change through the password route tells them (ASVS 6.3.7): an import that sets a
    // password someone else knows must not go unnoticed. Queued in the batch's transaction, so the notice exists if
    // and only if the password was replaced; keyed by the job, the line and the account, so a resumed import that
    // meets this row again (it cannot: the batch committed with its notice) would still queue it only once.
    if (plan.kind === "replace" && deps.notices) {
      const owner = await trx.selectFrom("users").select("email").where("id", "=", existing.id).executeTakeFirstOrThrow();
      // The outbox's own rule, checked first: its refusal thrown here would roll the batch back at every resume.
      const problem = addressProblem(owner.email);
      if (problem !== null) {
        noticesRefused++;
        await deps.audit.appendIn(trx, { type: IMPORT_NOTICE_REFUSED, actor: options.actor, subject: existing.id, data: { notice: "password-changed", line: row.line, job: batch.jobId, reason: problem } });
      } else {
        const notice = { eventId: `${batch.jobId}.${row.line}.${existing.id}`, to: owner.email, accountId: existing.id, at: now, event: { type: "password-changed" as const } };
        await notifySecurityEvent(deps.notices.outbox, notice, { appName: deps.notices.appName, executor: trx });
        noticesQueued++;
      }
    }
    if (plan.kind === "replace") passwordsReplaced.push(plan.note);
    if (plan.kind === "keep") passwordsKept++;
    if (plan.kind === "not-set") passwordsNotSet++;
    updated++;
  }
  const first = rows[0]?.line ?? 0;
  const last = rows[rows.length - 1]?.line ?? 0;
  await deps.audit.appendIn(trx, {
    type: "users.import.batch", actor: options.actor,
    data: { source: options.rules.source, file: options.file, batch: index, lines: `${first}-${last}`, created, updated, skipped: skippedRows.length, passwordsReplaced: passwordsReplaced.length, accountsSignedOut,
      signUpsRemoved: signUpsRemoved.length,
      ...(deps.notices ? { noticesQueued, noticesRefused } : {}) },
  });
  return { created, updated, skipped: skippedRows.length, skippedRows, passwordsReplaced, passwordsKept, passwordsNotSet, signUpsRemoved };
}
