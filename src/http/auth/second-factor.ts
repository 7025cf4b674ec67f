// Checks a second factor presented in a request body — a TOTP code, a recovery code or a WebAuthn assertion —
// for MFA step-up after login and for password reset (a reset link must not bypass MFA, ASVS 6.4.3).
import type { AuthenticationResponseJSON } from "@simplewebauthn/server";
import type { FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { releaseQuietly } from "../../accounts/login/index.ts";
import { factorRef, type FactorCounter, type FactorProof } from "../../accounts/mfa/index.ts";
import type { App } from "../../app/types.ts";
import type { Schema } from "../../store/schema.ts";
import { auditAndNotify, str } from "./helpers.ts";

export interface FactorBody {
  totp?: string;
  recoveryCode?: string;
  webauthn?: AuthenticationResponseJSON;
}

/** JSON-schema properties of the factor fields. */
export const FACTOR_PROPERTIES = {
  totp: str(16),
  recoveryCode: str(128),
  webauthn: { type: "object" },
} as const;

export type FactorName = "totp" | "recovery-code" | "webauthn";
/**
 * Why a factor was refused. "counter-regressed": a genuine signature by one of the user's passkeys whose counter did not
 * grow, the sign of a cloned authenticator (WebAuthn L3 §6.1.1), which suspends it; "credential-suspended": a genuine
 * signature by a passkey suspended so. The outcome then names the passkey (`credentialId`) for the audit record. The
 * client's answer is the same as for any refused factor: the clone learns nothing.
 */
export type FactorRefusal = "none-given" | "invalid" | "replayed" | "throttled" | "not-enrolled" | "counter-regressed" | "credential-suspended";
export type FactorOutcome = { ok: true; factor: FactorName; proof: FactorProof } | { ok: false; reason: FactorRefusal; credentialId?: string };

/**
 * Checks the one factor given, without using it up. Exactly one must be present. The outcome's proof is spent
 * (`proof.spend(trx)`) in the transaction of what the factor is for — the step-up's rotation, the reset's redeemed
 * link — so a request that loses that race leaves the code usable; call `proof.settle()` after the commit. A TOTP
 * time step is accepted once, a recovery code is used up, a WebAuthn challenge is single-use and must have been
 * asked for in the same flow (`webauthnContext`: the session's or the reset link's, see webauthn.ts) — all
 * enforced by the MFA service. A TOTP or recovery-code guess counts on `counter`: "sign-in" (the default: step-up,
 * re-authentication) or "reset" (a reset link's, whose holder may have only the mailbox: its guesses must not bring
 * the owner's sign-in factors to their 100-failure stop). A passkey has no such counter: an assertion is not guessed.
 */
export async function proveFactor(app: App, request: FastifyRequest, userId: string, body: FactorBody, options: { webauthnContext: string; counter?: FactorCounter }): Promise<FactorOutcome> {
  const mfa = app.accounts.mfa;
  const given = [body.totp, body.recoveryCode, body.webauthn].filter((v) => v !== undefined).length;
  if (given !== 1) return { ok: false, reason: "none-given" };
  if (body.totp !== undefined) {
    const r = await mfa.totp.prove(userId, body.totp, { counter: options.counter ?? "sign-in" });
    return r.ok ? { ok: true, factor: "totp", proof: r.proof } : { ok: false, reason: r.refusal };
  }
  if (body.recoveryCode !== undefined) {
    const r = await mfa.recovery.prove(userId, body.recoveryCode, { counter: options.counter ?? "sign-in" });
    return r.ok ? { ok: true, factor: "recovery-code", proof: r.proof } : { ok: false, reason: r.refusal };
  }
  // The passkey a refusal named as cloned or suspended, if any (told through the callback; a plain one is "invalid").
  const refused: { named?: { reason: "counter-regressed" | "credential-suspended"; credentialId: string } } = {};
  try {
    const proof = await mfa.webauthn.proveAuthentication(userId, body.webauthn as AuthenticationResponseJSON, {
      context: options.webauthnContext,
      onRefusal: (refusal) => {
        if (refusal.reason !== "invalid") refused.named = { reason: refusal.reason, credentialId: refusal.credentialId };
      },
    });
    if (proof) return { ok: true, factor: "webauthn", proof };
  } catch {
    // A malformed assertion is a failed one: the caller answers the same either way.
    return { ok: false, reason: "invalid" };
  }
  if (refused.named === undefined) return { ok: false, reason: "invalid" };
  // Just caught as cloned, and so suspended: the sessions it stepped up lose their aal 2 now, as if it were removed.
  // Whichever of the two keys came first may be the clone (one that jumped its counter ahead steps up, and the owner's
  // genuine key is the one then refused), so no session its proofs raised is vouched for any more.
  // In a transaction of its own, in the user's session turn (lowerAssurance with an executor takes it), as a removal
  // lowers: a rotation in flight that read the passkey as held commits first and is lowered here; one after it finds
  // the passkey no longer holding (mfa.holds) and keeps aal 1.
  if (refused.named.reason === "counter-regressed") await suspended(app, request, userId, refused.named.credentialId, "counter-regressed");
  return { ok: false, ...refused.named };
}

/**
 * What follows a passkey's suspension (see proveFactor and lostSpend): the sessions it stepped up are lowered, and the
 * suspension is recorded (`auth.mfa.suspended`, naming the passkey and how the copy was caught) and told to the owner
 * (ASVS 6.3.7: a factor of theirs changed; the "second factor refused" notice, when it comes, says only that the
 * password is known, not that a key was copied or what to do about it). One transaction, in the user's session turn:
 * the notice commits with the record it cites.
 */
async function suspended(app: App, request: FastifyRequest, userId: string, credentialId: string, caught: "counter-regressed" | "outrun"): Promise<void> {
  const factor = factorRef.passkey(credentialId);
  await app.db.transaction(async (trx) => {
    await app.accounts.sessions.lowerAssurance(userId, { executor: trx, factor });
    await auditAndNotify(app, request, { type: "auth.mfa.suspended", userId, data: { factor: "webauthn", credentialId, caught }, notice: { type: "passkey-suspended" } }, trx);
  });
}

/**
 * Gives back the attempt a right factor's check counted (FactorProof.release) when what it was for failed after the
 * check — a store past its wait bound (503 BULWARK_ERR_DB_BUSY), a link refused in the transaction, a new password
 * refused — so an owner retrying through a long lock does not reach the factor's limit by it (ASVS 6.3.1), as a login
 * gives back a right password's (abandonLogin). Not for a spend lost to another request (FactorSpentElsewhere): that
 * is a replay. A wrong code has no proof and always counts, whatever fails after it. Best effort: logged, never thrown,
 * since the failure that stopped the request is its answer. `what` names the request in the log ("a step-up").
 */
export async function giveBackAttempt(request: FastifyRequest, userId: string, proof: FactorProof | null, what: string): Promise<void> {
  if (proof) await releaseQuietly({ logger: request.log }, () => proof.release(), userId, `the second factor's attempt of ${what} that failed after its check`);
}

/**
 * Why a proof's spend was lost (FactorSpentElsewhere), for the record: a replay, or — a passkey whose winner had a
 * counter as high or higher, a copy racing the genuine key on another node — a clone caught, which suspends the passkey
 * and lowers the sessions it raised, as a regressed counter does (otherwise the clone, ahead, kept its step-up and the
 * passkey stayed usable until the key was used again).
 */
export async function lostSpend(app: App, request: FastifyRequest, userId: string, proof: FactorProof | null): Promise<{ reason: "replayed" | "counter-regressed"; credentialId?: string }> {
  if (proof?.outrun === undefined || !(await proof.outrun())) return { reason: "replayed" };
  const credentialId = proof.factor.slice(factorRef.passkey("").length);
  await suspended(app, request, userId, credentialId, "outrun");
  return { reason: "counter-regressed", credentialId };
}

/**
 * Whether the audit record of a refused factor is sampled (src/accounts/login/refusal-sampler.ts: a few per window, the
 * rest counted on the next one kept) rather than always written: a throttled attempt, and the refusals no throttle
 * bounds — a passkey assertion that proves nothing, a request with no factor, a suspended passkey's assertion — which
 * the holder of a half-signed-in session, of a reset link or of a cloned key can repeat as fast as they are answered
 * (60 junk assertions were 60 rows of the chained log, which nothing prunes). A wrong TOTP or recovery code is throttled
 * after a few and then sampled as throttled; a cloned passkey's signal ("counter-regressed") is always written: it is
 * the row responders need, and it comes once per passkey (it suspends it).
 */
export function refusalSampled(reason: FactorRefusal, body: FactorBody): boolean {
  return reason === "throttled" || reason === "none-given" || reason === "credential-suspended" || (reason === "invalid" && body.webauthn !== undefined);
}

/**
 * Thrown inside a transaction when the factor's proof lost its compare-and-set (a concurrent request with the same
 * code, step or assertion spent it first): the transaction rolls back and the route answers as for a replayed code.
 */
export class FactorSpentElsewhere extends Error {
  constructor() {
    super("the second factor was used by a concurrent request");
  }
}

/** Spends `proof` in `executor`'s transaction; throws FactorSpentElsewhere (rolling it back) when another request won it. */
export async function spendIn(executor: Kysely<Schema>, proof: FactorProof): Promise<void> {
  if (!(await proof.spend(executor))) throw new FactorSpentElsewhere();
}

/**
 * The `within` and `factor` options of a session rotation that spends `proof` with it and records its factor on the
 * new session (nothing without a proof).
 *
 * @example
 * await app.accounts.sessions.rotate(cs.token, { aal: 2, keepLifetime: true, ...spentWithRotation(outcome.proof) });
 */
export function spentWithRotation(proof: FactorProof | null | undefined): { within?: (executor: Kysely<Schema>) => Promise<void>; factor?: string } {
  return proof ? { within: (executor) => spendIn(executor, proof), factor: proof.factor } : {};
}

/**
 * The `multiFactorHeld` option of a session rotation to aal 2 (RotateOptions): whether the user holds the new
 * session's factor as its transaction sees it, in the user's turn. The factor may have been removed since it was
 * checked or since the old session was read (in another tab): the new session is then aal 1.
 *
 * @example
 * await app.accounts.sessions.rotate(cs.token, { aal: "kept", ...multiFactorHeld(app, user.id) });
 */
export function multiFactorHeld(app: App, userId: string): { multiFactorHeld: (executor: Kysely<Schema>, factor: string | null) => Promise<boolean> } {
  return { multiFactorHeld: (executor, factor) => app.accounts.mfa.holds(userId, factor, executor) };
}
