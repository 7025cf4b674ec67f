// /api/v1/audit/events (audit.read): the hash-chained audit log, a page at a time in chain order, optionally
// from a time on. Reading the log is itself not audited (it would grow the log on every poll).
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import type { App } from "../../app/types.ts";
import { firstSeqSince, parseStoredData } from "../../audit/index.ts";
import { isoOrNull } from "../../lib/calendar.ts";
import { PAGE_QUERY, parseTime, text, TIME } from "./common.ts";
import { openCursor, sealCursor } from "./cursor.ts";
import { apiErrors } from "./errors.ts";

/** Registers the audit route on the API plugin. */
export function registerAuditRoutes(api: FastifyInstance, app: App): void {
  api.get("/audit/events", {
    config: { access: "audit.read" },
    schema: {
      querystring: { type: "object", additionalProperties: false, properties: { ...PAGE_QUERY, since: TIME, type: text(1, 100) } },
    },
  }, async (request) => {
    const query = request.query as { limit: number; cursor?: string; since?: string | number; type?: string };
    const since = query.since === undefined ? null : parseTime(query.since, "since");
    // The cursor is sealed to the filter it was made under: it cannot carry a position into another window.
    const filter = `since=${since ?? ""}&type=${query.type ?? ""}`;
    let after = 0;
    if (query.cursor !== undefined) {
      const seq = (await openCursor(app.keyring, "audit.events", filter, query.cursor))["afterSeq"];
      if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) throw apiErrors.badCursor();
      after = seq;
    } else if (since !== null) {
      // As `audit export --since`: the time only finds where the window starts (once, on the first page); from
      // there every event follows by position, whatever its time. Writers' clocks can step back (a node behind
      // another, an NTP step), so filtering every page by time silently skipped intact events. Later pages go on
      // from the cursor, which only ever points at or past the start.
      const first = await firstSeqSince(app.db.db, since);
      if (first === null) return { events: [], nextCursor: null };
      after = first - 1;
    }
    // The time as text: a stored time a JavaScript number cannot hold exactly (only an altered row has one) would
    // otherwise fail the read, and the page with it.
    let q = app.db.db.selectFrom("audit_events")
      .select(["seq", "id", "type", "actor", "subject", "data", "request_id", "hash", sql<string>`CAST(at AS TEXT)`.as("at")])
      .where("seq", ">", after).orderBy("seq").limit(query.limit + 1);
    if (query.type !== undefined) q = q.where("type", "=", query.type);
    const rows = await q.execute();
    const page = rows.slice(0, query.limit);
    const last = page[page.length - 1];
    return {
      events: page.map((r) => {
        // Stored data that is not a JSON object means an altered row: it is shown verbatim as rawData (data
        // null), so one tampered event neither hides the page nor fails the request. A time no Date can hold
        // (altered too) likewise: `at` null and the stored value as rawAt.
        const stored = parseStoredData(r.data);
        const at = isoOrNull(Number(r.at));
        return {
          seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at, ...(at === null ? { rawAt: r.at } : {}),
          requestId: r.request_id, data: stored.data, ...(stored.rawData === undefined ? {} : { rawData: stored.rawData }), hash: r.hash,
        };
      }),
      nextCursor: rows.length > query.limit && last ? await sealCursor(app.keyring, "audit.events", filter, { afterSeq: Number(last.seq) }) : null,
    };
  });
}
