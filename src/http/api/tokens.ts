// /api/v1/tokens: the caller's own API tokens. Any signed-in caller may manage their own tokens, but a new
// token's scopes can never exceed what the caller may do right now: their roles, and, when the caller is
// itself a token, that token's scopes (a narrow token cannot mint a wider one). Ids of other users' tokens
// answer 404 exactly like unknown ids (no IDOR, no probing). Minting with a browser session needs a fresh one
// (ASVS 7.5.3): a token outlives the session, so a stolen cookie must not turn itself into a lasting credential.
// A token may mint (narrower) tokens without it: it has no authentication to repeat and cannot widen itself,
// nor outlive itself: the new token expires no later than its parent (by default with it), and revoking the
// parent revokes it.
import type { FastifyInstance } from "fastify";
import { allows, isPermission } from "../../accounts/roles/index.ts";
import { holdSessionForNewCredential } from "../../accounts/sessions/index.ts";
import type { App } from "../../app/types.ts";
import { notifyOwner } from "../auth/helpers.ts";
import { auditAPI, ID, iso, nullable, PAGE_QUERY, parseTime, SMALL_BODY, text, TIME } from "./common.ts";
import { openPosition, sealPosition } from "./cursor.ts";
import { apiErrors } from "./errors.ts";
import { callerOf, can, type Caller } from "./guard.ts";
import { TOKEN_MINTS_PER_HOUR } from "../../app/accounts.ts";
import type { TokenInfo, TokenPosition } from "../../accounts/tokens/index.ts";

// A bound on live tokens per user: each one is a credential to track and revoke (DESIGN.md: every bound an
// attacker controls is bounded; a stolen token must not be able to mint thousands of siblings).
export const MAX_LIVE_TOKENS = 50;
/** Tokens read per query while filling a page of GET /tokens, and at most per request (then a cursor goes on). */
const TOKEN_SCAN_CHUNK = 200;
const MAX_TOKENS_SCANNED = 1000;

function tokenView(t: TokenInfo): Record<string, unknown> {
  return {
    id: t.id, name: t.name, scopes: t.scopes, createdAt: iso(t.createdAt), expiresAt: iso(t.expiresAt),
    lastUsedAt: iso(t.lastUsedAt), lastUsedIp: t.lastUsedIp, revokedAt: iso(t.revokedAt),
  };
}

/**
 * Whether the caller may see and revoke token `t` of its user. A browser session manages all of them. A token
 * manages itself and the tokens whose every scope its own scopes allow (what it minted is among them): a leaked
 * `audit.read` token for a log collector must not list the owner's other tokens with their last-use addresses,
 * nor revoke the `contain.run` token an incident tool depends on.
 */
function manages(caller: Caller, t: TokenInfo): boolean {
  const scopes = caller.scopes;
  if (scopes === null || t.id === caller.tokenId) return true;
  return t.scopes.every((s) => isPermission(s) && allows(scopes, s));
}

/** Registers the token routes on the API plugin. */
export function registerTokenRoutes(api: FastifyInstance, app: App): void {
  api.get("/tokens", {
    config: { access: "authenticated" },
    schema: { querystring: { type: "object", additionalProperties: false, properties: PAGE_QUERY } },
  }, async (request) => {
    const caller = callerOf(request);
    const query = request.query as { limit: number; cursor?: string };
    // Bound to the caller: a cursor names a place in one user's list, as one caller (a session, or one token) sees it.
    const filter = `user=${caller.userId};token=${caller.tokenId ?? "session"}`;
    const after = query.cursor === undefined ? null : await openPosition(app.keyring, "tokens", filter, query.cursor);
    // Revoked and expired tokens stay listed (their last use is evidence), so the list grows with every token made:
    // it pages. A token sees only the tokens it manages; the scan past those it does not is bounded too, and a page
    // may then hold fewer than `limit` with a cursor to go on.
    const shown: TokenInfo[] = [];
    let scanned = 0;
    let last: TokenPosition | null = null;
    let more = false;
    while (scanned < MAX_TOKENS_SCANNED) {
      const rows = await app.accounts.tokens.listPage(caller.userId, { after: last ?? after, limit: TOKEN_SCAN_CHUNK });
      for (const t of rows) {
        if (shown.length === query.limit) {
          more = true;
          break;
        }
        scanned++;
        last = { createdAt: t.createdAt, id: t.id };
        if (manages(caller, t)) shown.push(t);
      }
      if (more || rows.length < TOKEN_SCAN_CHUNK) break;
      if (scanned >= MAX_TOKENS_SCANNED) more = true;
    }
    const nextCursor = more && last !== null ? await sealPosition(app.keyring, "tokens", filter, last) : null;
    return { tokens: shown.map(tokenView), nextCursor };
  });

  api.post("/tokens", {
    config: { access: "authenticated", reauth: "required" },
    bodyLimit: SMALL_BODY,
    schema: {
      body: {
        type: "object", required: ["name", "scopes"], additionalProperties: false,
        properties: {
          name: text(1, 100),
          scopes: { type: "array", minItems: 1, maxItems: 16, uniqueItems: true, items: text(1, 40) },
          // Absent means "never", or "with the parent" for a token minted by an expiring token; null means "never",
          // which such a token may not ask for (403, it would outlive the parent); "" is refused, never null.
          expiresAt: nullable(TIME),
        },
      },
    },
  }, async (request, reply) => {
    const caller = callerOf(request);
    const body = request.body as { name: string; scopes: string[]; expiresAt?: string | number | null };
    for (const scope of body.scopes) {
      // Unknown scopes are an input error (400); known ones the caller lacks are a privilege error (403).
      if (isPermission(scope) && !can(caller, scope)) throw apiErrors.scopeTooWide(scope);
    }
    const expiresAt = body.expiresAt === undefined || body.expiresAt === null ? null : parseTime(body.expiresAt, "expiresAt");
    if (expiresAt !== null && expiresAt <= app.clock.now()) throw apiErrors.expiryInPast();
    const parent = caller.via === "token" && caller.tokenId !== null ? { id: caller.tokenId, expiresAt: caller.tokenExpiresAt } : undefined;
    // Mints an hour per account, whatever is revoked meanwhile: a leaked token minting and revoking in a loop stayed
    // under the live-token cap, each mint a row, an audit event and a notice to the owner (ASVS 2.4.1).
    // A mint that does not happen (the live cap, an error) gives its place back.
    const slot = await app.accounts.tokenMints.takeFor(caller.userId);
    if (slot === null) {
      return reply.status(429).header("retry-after", "3600")
        .send({ error: { code: "BULWARK_ERR_TOKEN_MINT_RATE", message: `too many API tokens minted for this account in the last hour (${TOKEN_MINTS_PER_HOUR}); try again later`, requestId: request.id } });
    }
    // The bound is counted and the token inserted in one transaction serialised per user: 100 concurrent mints
    // must not each see 49 live tokens and all insert.
    let created: { token: string; info: TokenInfo };
    try {
      created = await app.accounts.tokens.create(caller.userId, {
        name: body.name, scopes: body.scopes, ...(body.expiresAt === undefined ? {} : { expiresAt }), ...(parent ? { parent } : {}),
      }, {
        maxLive: MAX_LIVE_TOKENS,
        // The token, its audit event and the owner's notice commit together: a token is a credential that outlives a
        // password reset, so one must never exist that its owner was not told about (ASVS 6.3.7's spirit).
        within: async (trx, info) => {
          // A browser session mints: it is read again here, after the token's row is written and after waiting for a
          // containment holding the account (a batch of invalidate-passwords, the creation of a revoke-sessions job),
          // so a token never outlives the session a containment ended while it was minted (ASVS 7.4.1, 7.4.5; ADR 0018).
          // A token minting one needs nothing of the sort: a stamp that refuses the parent refuses its whole chain.
          if (caller.via === "session" && caller.sessionId !== null) await holdSessionForNewCredential(trx, caller.userId, caller.sessionId);
          const event = await auditAPI(app, request, caller, { type: "api.token.created", subject: info.id, data: { scopes: info.scopes, expiresAt: info.expiresAt, ...(parent ? { parent: parent.id } : {}) } }, trx);
          await notifyOwner(app, request, caller.userId, event.id, { type: "api-token-created", scopes: info.scopes, expiresAt: info.expiresAt }, trx);
        },
      });
    } catch (error) {
      await slot.refund();
      if ((error as { code?: unknown }).code === "BULWARK_ERR_TOKEN_LIMIT") throw Object.assign(apiErrors.tooManyTokens(MAX_LIVE_TOKENS), { cause: error });
      throw error;
    }
    const { token, info } = created;
    // The token text is shown this once; only its hash is stored.
    return reply.status(201).header("cache-control", "no-store").send({ token, info: tokenView(info) });
  });

  api.delete("/tokens/:id", {
    config: { access: "authenticated" },
    schema: { params: { type: "object", required: ["id"], additionalProperties: false, properties: { id: ID } } },
  }, async (request, reply) => {
    const caller = callerOf(request);
    const { id } = request.params as { id: string };
    // A token the caller does not manage gets the answer of an unknown id: its existence is not confirmed.
    if (caller.scopes !== null) {
      const target = await app.accounts.tokens.find(caller.userId, id);
      if (!target || !manages(caller, target)) throw apiErrors.tokenNotFound(id);
    }
    // revoke() is scoped by user: another user's token id is "not found", never revoked. The revocation and its event
    // commit together (ASVS 16.3.3), as a mint does: a token never stops working without a record of who stopped it.
    await app.db.transaction(async (trx) => {
      if (!(await app.accounts.tokens.revoke(caller.userId, id, { executor: trx }))) throw apiErrors.tokenNotFound(id);
      await auditAPI(app, request, caller, { type: "api.token.revoked", subject: id }, trx);
    });
    return reply.status(204).send();
  });

  api.delete("/tokens", { config: { access: "authenticated" } }, async (request) => {
    const caller = callerOf(request);
    // A token revokes the live tokens it manages (itself included); each revocation also ends what that token minted.
    // Read before the transaction, which may use only its own connection (SQLite has one).
    const live = caller.scopes === null ? null : (await app.accounts.tokens.listLive(caller.userId)).filter((t) => manages(caller, t));
    // Every revocation and the event commit together (ASVS 16.3.3): none stands unrecorded, nor half of them.
    const revoked = await app.db.transaction(async (trx) => {
      let count: number;
      if (live === null) count = await app.accounts.tokens.revokeAllForUser(caller.userId, { executor: trx });
      else {
        for (const t of live) await app.accounts.tokens.revoke(caller.userId, t.id, { executor: trx });
        count = live.length;
      }
      await auditAPI(app, request, caller, { type: "api.token.revoked-all", subject: caller.userId, data: { revoked: count } }, trx);
      return count;
    });
    return { revoked };
  });
}
