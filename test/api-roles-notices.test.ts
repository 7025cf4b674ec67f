// POST /api/v1/users/:id/roles/:role tells both accounts of an administrative grant (ASVS 8.2.2, 6.3.7's spirit): an
// intruder at an administrator's unlocked computer (or holding its token) makes a confederate an administrator in one
// request, and nothing of the owner's own cleanup takes that role away, so the owner must hear of it. The notices
// commit with the grant and its api.role.granted event, whose id they quote. SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { containDeps, createContainJob, createUndoJob, runJob } from "../src/contain/index.ts";
import { resetNotifierFor } from "../src/contain/service.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { whileAuditRefuses } from "./helpers/audit-tamper.ts";
import { sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";

type Mail = { to: string; kind: string; subject: string; text: string };

/** The security notices about roles queued so far, oldest first (of one grant: the acting account's first). */
async function roleNotices(fx: APIFixture): Promise<Mail[]> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address", "kind", "subject", "body_text"])
    .where("kind", "in", ["security.admin-role-given", "security.admin-role-received"]).orderBy("created_at").orderBy("kind").execute();
  return rows.map((r) => ({ to: r.to_address, kind: r.kind, subject: r.subject, text: r.body_text }));
}

/** The id of the last api.role.granted event whose subject is `userId`. */
async function grantEvent(fx: APIFixture, userId: string): Promise<string | undefined> {
  const rows = await fx.app.db.db.selectFrom("audit_events").select(["id"]).where("type", "=", "api.role.granted").where("subject", "=", userId).orderBy("seq", "desc").execute();
  return rows[0]?.id;
}

function suite(name: string, open: () => Promise<APIFixture>): void {
  describe(name, () => {
    let fx: APIFixture;
    let admin: { id: string; email: string };
    before(async () => {
      fx = await open();
      admin = await fx.user(["admin"]);
    });
    after(async () => {
      await fx?.close();
    });

    // ASVS 8.2.2, 6.3.7
    it("an administrative role granted from an administrator's session mails the administrator (the role, the other account by id, how to take it back, the event's reference) and the account given it", async () => {
      const session = await fx.session(admin.id);
      const mate = await fx.user([], { email: `mate-${Date.now()}@attacker.example` });
      const before = (await roleNotices(fx)).length;
      const res = await fx.call("POST", `/api/v1/users/${mate.id}/roles/admin`, { session });
      assert.equal(res.statusCode, 200, res.body);
      const reference = await grantEvent(fx, mate.id);
      assert.ok(reference, "the grant is audited");
      const mails = (await roleNotices(fx)).slice(before);
      assert.deepEqual(mails.map((m) => [m.to, m.kind]), [[admin.email, "security.admin-role-given"], [mate.email, "security.admin-role-received"]]);
      const [given, received] = mails as [Mail, Mail];
      assert.match(given.subject, /your account gave another account an administrator's role/);
      assert.match(given.text, new RegExp(`granted the role admin to another account, the one with the id ${mate.id}\\b`));
      assert.match(given.text, new RegExp(`DELETE /api/v1/users/${mate.id}/roles/admin`));
      assert.match(given.text, new RegExp(`quoting the reference ${reference}`));
      assert.match(given.text, /from the IP address 127\.0\.0\.1/, "the acting request's address: the owner's own account acted");
      assert.doesNotMatch(given.text, /attacker\.example/, "the other account by its id, never its address (free text a creator chose)");
      assert.match(received.subject, /your account was given an administrator's role/);
      assert.match(received.text, new RegExp(`quote the reference ${reference}`));
      assert.doesNotMatch(received.text, /IP address/, "the administrator's network is none of the grantee's business");
    });

    it("a grant made with an administrator's API token tells the token's owner too", async () => {
      const token = await fx.token(admin.id, ["admin"]);
      const other = await fx.user([]);
      const before = (await roleNotices(fx)).length;
      const res = await fx.call("POST", `/api/v1/users/${other.id}/roles/admin`, { token });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual((await roleNotices(fx)).slice(before).map((m) => [m.to, m.kind]), [[admin.email, "security.admin-role-given"], [other.email, "security.admin-role-received"]]);
    });

    it("a role without an administrative permission, and a role held already, mail nobody (the grant is still audited once)", async () => {
      const session = await fx.session(admin.id);
      const reader = await fx.user([]);
      const before = (await roleNotices(fx)).length;
      const read = await fx.call("POST", `/api/v1/users/${reader.id}/roles/auditor`, { session });
      assert.equal(read.statusCode, 200, read.body);
      assert.ok(await grantEvent(fx, reader.id), "audited");
      assert.equal((await fx.call("POST", `/api/v1/users/${reader.id}/roles/admin`, { session })).statusCode, 200);
      const again = await fx.call("POST", `/api/v1/users/${reader.id}/roles/admin`, { session });
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(again.json().changed, false);
      const events = await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", "api.role.granted").where("subject", "=", reader.id).execute();
      assert.equal(events.length, 2, "one event per grant that changed something");
      assert.deepEqual((await roleNotices(fx)).slice(before).map((m) => [m.to, m.kind]), [[admin.email, "security.admin-role-given"], [reader.email, "security.admin-role-received"]], "the admin grant only, once");
    });

    it("an administrator granting their own account another administrative role gets one notice, not two", async () => {
      const session = await fx.session(admin.id);
      const role = (await fx.app.accounts.roles.create({ name: "responders", permissions: ["contain.run", "audit.read"] }, "test")).name;
      const before = (await roleNotices(fx)).length;
      assert.equal((await fx.call("POST", `/api/v1/users/${admin.id}/roles/${role}`, { session })).statusCode, 200);
      const mails = (await roleNotices(fx)).slice(before);
      assert.deepEqual(mails.map((m) => [m.to, m.kind]), [[admin.email, "security.admin-role-received"]]);
      assert.match(mails[0]!.text, /the role responders, which carries administrative permissions \(contain\.run\)/, "the administrative ones only");
    });

    it("attack: a grantee whose address the outbox cannot mail is still granted (200, not 500); the missed notice is audited", async () => {
      const session = await fx.session(admin.id);
      const lan = await fx.user([], { email: `ops${Date.now()}@lan` });
      const res = await fx.call("POST", `/api/v1/users/${lan.id}/roles/admin`, { session });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(await fx.app.accounts.roles.rolesOf(lan.id), ["admin"]);
      const refused = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.notice.refused").where("subject", "=", lan.id).execute();
      assert.equal(refused.length, 1);
      assert.match(String(refused[0]!.data), /administrative-role-received/);
    });

    // ASVS 8.2.2, 6.3.7: an undo of demote-inactive-admins hands administrative roles back; it is told as a grant is.
    it("an undo made from the shell that hands an administrative role back records the grant (role.granted, actor: the job's) and tells the account that holds it again; no account asked for it, so no \"given\" notice; queued again, nothing is queued twice", async () => {
      const deps = containDeps(fx.app);
      const dormant = await fx.user(["admin"]);
      const [role] = await fx.app.accounts.roles.rolesOf(dormant.id) as [string];
      const old = fx.app.clock.now() - 200 * 86_400_000;
      await fx.app.db.db.updateTable("users").set({ created_at: old, last_login_at: old }).where("id", "=", dormant.id).execute();
      const hygiene = await createContainJob(deps, { levers: ["demote-inactive-admins"], scope: { ids: [dormant.id] }, actor: "cli:ops", options: { inactiveDays: 90 } });
      assert.equal((await runJob(deps, hygiene.id)).status, "done");
      assert.deepEqual(await fx.app.accounts.roles.rolesOf(dormant.id), [], "control: demoted");
      const before = (await roleNotices(fx)).length;
      const undo = await createUndoJob(deps, hygiene.id, "cli:ops");
      const ran = await runJob(deps, undo.id);
      assert.equal(ran.status, "done");
      assert.deepEqual(await fx.app.accounts.roles.rolesOf(dormant.id), [role]);
      assert.equal(ran.counts["demote-inactive-admins.noticesQueued"], 1);
      const mails = (await roleNotices(fx)).slice(before);
      assert.deepEqual(mails.map((m) => [m.to, m.kind]), [[dormant.email, "security.admin-role-received"]]);
      assert.match(mails[0]!.text, new RegExp(`quote the reference ${undo.id}\\.${dormant.id}\\.${role}\\b`), "the reference names the undo job");
      const granted = await fx.app.db.db.selectFrom("audit_events").select(["actor", "data"]).where("type", "=", "role.granted").where("subject", "=", dormant.id).orderBy("seq", "desc").execute();
      assert.equal(granted[0]?.actor, "cli:ops");
      assert.deepEqual(JSON.parse(granted[0]!.data) as unknown, { role, undoOf: hygiene.id, jobId: undo.id, lever: "demote-inactive-admins" });
      // A batch resumed after a crash queues its notice again: keyed by job, user and role, it is queued once.
      const notifier = resetNotifierFor(fx.app);
      await fx.app.db.transaction((trx) => notifier.enqueueNotice!(trx, dormant, undo.id, { type: "administrative-role-received", role, permissions: ["admin"] }));
      assert.equal((await roleNotices(fx)).length, before + 1);
    });

    if (name.includes("sqlite")) {
      it("attack: an administrative grant whose event cannot be written does not stand, and nobody is mailed about a grant that did not happen", async () => {
        const session = await fx.session(admin.id);
        const victim = await fx.user([]);
        const before = (await roleNotices(fx)).length;
        const res = await whileAuditRefuses(fx.app.db, "api.role.granted", () => fx.call("POST", `/api/v1/users/${victim.id}/roles/admin`, { session }));
        assert.equal(res.statusCode, 500, res.body);
        assert.deepEqual(await fx.app.accounts.roles.rolesOf(victim.id), [], "no unrecorded, untold grant");
        assert.equal((await roleNotices(fx)).length, before);
      });
    }
  });
}

suite("/api/v1 administrative role grants are told [sqlite]", () => openAPIFixture());

const unavailable = postgresUnavailable();
describe("/api/v1 administrative role grants on PostgreSQL", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  suite("/api/v1 administrative role grants are told [postgres]", async () => {
    const cluster = await sharedCluster();
    if (!cluster) throw new Error("PostgreSQL cluster did not start");
    return openAPIFixture({ databaseURL: await cluster.createDatabase(`roles_notices_${process.pid}`) });
  });
  after(async () => {
    await (await sharedCluster())?.stop();
  });
});
