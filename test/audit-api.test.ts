// GET /api/v1/audit/events over the real server when a stored row was altered: the page is still served, with
// the altered event's data shown verbatim and flagged, never a bare 500. ASVS 16.4.2.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";

describe("/api/v1/audit/events on an altered row", () => {
  let fx: APIFixture;
  before(async () => {
    fx = await openAPIFixture();
  });
  after(async () => {
    await fx?.close();
  });

  it("attack: data that is not a JSON object comes back as rawData with data null, beside the intact events", async () => {
    const auditor = await fx.user(["audit.read"]);
    const token = await fx.token(auditor.id, ["audit.read"]);
    await fx.app.db.db.updateTable("audit_events").set({ data: "{not json" }).where("seq", "=", 2).execute();
    const res = await fx.call("GET", "/api/v1/audit/events?limit=3", { token });
    assert.equal(res.statusCode, 200, res.body);
    const events = (res.json() as { events: Array<{ seq: number; data: unknown; rawData?: string }> }).events;
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual([events[1]?.data, events[1]?.rawData], [null, "{not json"]);
    assert.ok(events[0]?.data !== null && events[0]?.rawData === undefined, "intact events are unchanged");
  });
});
