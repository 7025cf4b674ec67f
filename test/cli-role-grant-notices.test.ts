// A role with an administrative permission granted from the command line (`bulwark roles grant`, `users create
// --role`) is told to the account given it, as the API's grant and the CLI-made undo of demote-inactive-admins are
// (src/accounts/roles/grant-notice.ts). Whoever holds a shell on a server could otherwise make a dormant account whose
// password they hold an administrator with nobody told (ASVS 8.2.2, 6.3.7's spirit). Real CLI, real outbox rows.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GRANT_NOTICE_REFUSED } from "../src/accounts/roles/grant-notice.ts";
import { initSite, type CLISite } from "./helpers/cli.ts";

const PASSWORD = "a long harbour of quiet kites\n";

describe("administrative roles granted from the command line are told to the grantee", () => {
  let root: string;
  let site: CLISite;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "bulwark-cli-grant-"));
    site = await initSite(root, { here: true });
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  async function create(email: string, ...extra: string[]): Promise<string> {
    const r = await site.runHere(["users", "create", "--email", email, ...extra], PASSWORD);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  }
  const notices = (email: string): Array<Record<string, unknown>> =>
    site.rows(`SELECT kind, to_address, subject FROM outbox_messages WHERE kind LIKE '%admin-role-received' AND to_address = '${email}'`);
  const refusals = (): Array<Record<string, unknown>> => site.rows(`SELECT actor, subject, data FROM audit_events WHERE type = '${GRANT_NOTICE_REFUSED}'`);

  it("attack: a dormant account an intruder with a shell makes an administrator (`roles grant … admin`) is mailed, once, citing the grant's event, and the command says so (was: nobody was told)", async () => {
    await create("dormant@example.org");
    // As an operator would: the grant from the CLI as a process of its own (the other calls run in this process).
    const grant = await site.run(["roles", "grant", "dormant@example.org", "admin"]);
    assert.equal(grant.code, 0, grant.stderr);
    assert.match(grant.stdout, /granted admin to dormant@example\.org/);
    assert.match(grant.stdout, /admin is administrative: the account's owner is told by mail/);
    assert.equal(notices("dormant@example.org").length, 1, "one notice to the account given the role");
    // Granted again: nothing inserted, nothing told twice.
    const again = await site.runHere(["roles", "grant", "dormant@example.org", "admin"]);
    assert.match(again.stdout, /nothing to do/);
    assert.doesNotMatch(again.stdout, /told/);
    assert.equal(notices("dormant@example.org").length, 1);
    // The notice is keyed by the role.granted event the grant wrote (an idempotency key per event and recipient).
    const [event] = site.rows(`SELECT id FROM audit_events WHERE type = 'role.granted' AND data LIKE '%"admin"%' ORDER BY seq DESC LIMIT 1`);
    assert.ok(event);
    const keyed = site.rows(`SELECT idempotency_key FROM outbox_messages WHERE kind LIKE '%admin-role-received' AND to_address = 'dormant@example.org'`);
    assert.match(String(keyed[0]?.idempotency_key), new RegExp(String(event.id)));
  });

  it("a role without an administrative permission is not mailed (auditor: audit.read only), so the notices that matter stand out", async () => {
    await create("reader@example.org");
    const grant = await site.runHere(["roles", "grant", "reader@example.org", "auditor"]);
    assert.equal(grant.code, 0, grant.stderr);
    assert.doesNotMatch(grant.stdout, /told|mailed/);
    assert.equal(site.rows(`SELECT 1 FROM outbox_messages WHERE to_address = 'reader@example.org' AND kind LIKE '%role%'`).length, 0);
  });

  it("`users create --role admin` tells the new account of its role in the same run", async () => {
    const out = await create("new-admin@example.org", "--role", "admin");
    assert.match(out, /with role\(s\) admin/);
    assert.match(out, /told by mail/);
    assert.equal(notices("new-admin@example.org").length, 1);
  });

  it("attack: a grant to an account whose address the outbox refuses still stands, is audited as untold with the operator as actor, and the command says to tell the owner another way (ASVS 16.3.1)", async () => {
    // Accepted by the account store, refused by the outbox (a non-ASCII local part: validate.ts addressProblem).
    await create("jörg@example.org");
    const grant = await site.runHere(["roles", "grant", "jörg@example.org", "admin"]);
    assert.equal(grant.code, 0, grant.stderr);
    assert.match(grant.stdout, /cannot be mailed .*tell its owner another way/);
    const held = site.rows(`SELECT 1 FROM user_roles JOIN users ON users.id = user_roles.user_id WHERE users.email = 'jörg@example.org' AND role = 'admin'`);
    assert.equal(held.length, 1, "the grant stands");
    const refused = refusals();
    assert.equal(refused.length, 1);
    assert.match(String(refused[0]?.actor), /^cli:/);
    assert.match(String(refused[0]?.data), /"role":"admin"/);
  });
});
