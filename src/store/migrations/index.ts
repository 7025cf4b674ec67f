// Every migration, in order. Append new ones at the end; never edit a released one.
import { core } from "./0001-core.ts";
import { accounts } from "./0002-accounts.ts";
import { notify } from "./0003-notify.ts";
import { sessions } from "./0004-sessions.ts";
import { mfa } from "./0005-mfa.ts";
import { roles } from "./0006-roles.ts";
import { contain } from "./0007-contain.ts";
import { passwordReset } from "./0008-password-reset.ts";
import { emailChange } from "./0009-email-change.ts";
import { containChangesBySeq } from "./0010-contain-changes-by-seq.ts";
import { sessionsByUserAndTime } from "./0011-sessions-by-user-and-time.ts";
import { apiTokenParent } from "./0012-api-token-parent.ts";
import { oneCurrentKey } from "./0013-one-current-key.ts";
import { webauthnChallengeContext } from "./0014-webauthn-challenge-context.ts";
import { redactDeliveredLinks } from "./0015-redact-delivered-links.ts";
import { revocationEpochs } from "./0016-revocation-epochs.ts";
import { replacedSessions } from "./0017-replaced-sessions.ts";
import { floodSpellings } from "./0018-flood-spellings.ts";
import { initialPasswordExpiry } from "./0019-initial-password-expiry.ts";
import { jobEpochs } from "./0020-job-epochs.ts";
import { identifierKeysFolded } from "./0021-identifier-keys-folded.ts";
import { jobRequestKeys } from "./0022-job-request-keys.ts";
import { identifierSkeletons } from "./0023-identifier-skeletons.ts";
import { passwordUnproven } from "./0024-password-unproven.ts";
import type { Migration } from "./types.ts";

export const MIGRATIONS: readonly Migration[] = [core, accounts, notify, sessions, mfa, roles, contain, passwordReset, emailChange, containChangesBySeq, sessionsByUserAndTime, apiTokenParent, oneCurrentKey, webauthnChallengeContext, redactDeliveredLinks, revocationEpochs, replacedSessions, floodSpellings, initialPasswordExpiry, jobEpochs, identifierKeysFolded, jobRequestKeys, identifierSkeletons, passwordUnproven];
export type { Migration } from "./types.ts";
