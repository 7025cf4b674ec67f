// revoke-tokens: every API token in scope stops working at once, then each row is marked revoked in batches
// (SourceLair revoked its GitHub tokens, seed 001). The token stamp ("tokens:global" for --all, else
// "tokens:user:<id>") is raised before the job is recorded; the token library refuses any token created before
// it, so revocation does not wait for the batches. Rows keep their history (revoked_at), they are not deleted.
// Not reversible: a token that may have leaked is never trusted again; owners issue new ones.
import type { UserLever } from "../lever.ts";
import { countOwnedRows, inIds } from "./common.ts";
import { issuedBefore, revokedBefore } from "../../accounts/sessions/revocation.ts";
import { raiseScopeStamps, stampsToWrite } from "./stamps.ts";

export const revokeTokens = {
  kind: "user",
  name: "revoke-tokens",
  description: "Revoke every API token in scope at once (revocation stamp), then mark the token rows revoked",
  async dryRun(db, scope, ctx) {
    const { users, rows, sample } = await countOwnedRows(db, "api_tokens", scope, { unrevoked: true, before: revokedBefore(ctx.at), epoch: ctx.epoch });
    return { counts: { users, tokens: rows, stamps: await stampsToWrite(db, scope, ctx) }, sample };
  },
  async begin(trx, scope, ctx) {
    return { stamps: await raiseScopeStamps(trx, scope, ctx, "tokens") };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0, tokens: 0 }, changes: [] };
    // Only tokens the stamp refuses and not yet revoked: a re-run changes nothing twice, and a token issued
    // after the job started keeps working.
    const rows = await trx.updateTable("api_tokens").set({ revoked_at: ctx.at })
      .where(inIds(ctx.dialect, "user_id", userIds)).where("revoked_at", "is", null).where(issuedBefore(revokedBefore(ctx.at), ctx.epoch))
      .returning("user_id").execute();
    return { counts: { users: new Set(rows.map((r) => r.user_id)).size, tokens: rows.length }, changes: [] };
  },
} satisfies UserLever;
