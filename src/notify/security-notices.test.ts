// ASVS 6.3.7: users are told when their password, email address, MFA factors or recovery codes change.
// Delivered through the outbox to a real SMTP server; DKIM signing when configured.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { it } from "node:test";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { systemRandom } from "../lib/random.ts";
import { OutboxSender } from "./sender.ts";
import { notifySecurityEvent, securityMessages, type SecurityEvent } from "./security-notices.ts";
import { decodeQuotedPrintable, type ReceivedMail } from "./smtp-test-server.ts";
import { notifyFixture, type NotifyFixture } from "./test-setup.ts";
import type { MailTransport } from "./transport.ts";

const AT = Date.UTC(2026, 10, 1, 9, 30);
const options = { appName: "Example Cloud", supportContact: "security@example.org" };

async function deliver(f: NotifyFixture, transport?: MailTransport): Promise<ReceivedMail[]> {
  await new OutboxSender({ outbox: f.outbox, transport: transport ?? (await f.transport()), clock: f.clock, random: systemRandom }, { name: "t" }).drain();
  return f.server.accepted;
}

const text = (m: ReceivedMail): string => decodeQuotedPrintable(m.body);

forEachDialect("security notices", (fx) => {
  // ASVS 6.3.7
  it("tells both the old and the new address when the email address changes", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const results = await notifySecurityEvent(f.outbox, {
      eventId: "evt_42", to: "new@example.org", at: AT, ip: "203.0.113.7",
      event: { type: "email-changed", oldEmail: "old@example.org", newEmail: "new@example.org" },
    }, options);
    assert.equal(results.length, 2);
    const mails = await deliver(f);
    assert.deepEqual(mails.map((m) => m.envelopeTo[0]).sort(), ["new@example.org", "old@example.org"]);
    const old = mails.find((m) => m.envelopeTo[0] === "old@example.org")!;
    assert.equal(old.headers.get("subject"), "Example Cloud: your email address was changed");
    assert.match(text(old), /changed from old@example\.org to new@example\.org/);
    assert.match(text(old), /2026-11-01 09:30:00 UTC from the IP address 203\.0\.113\.7/);
    // The old address can no longer get a reset link: it is sent to a person, with the event's reference, not to a reset.
    assert.match(text(old), /Contact security@example\.org at once and quote the reference evt_42/);
    assert.doesNotMatch(text(old), /reset your password now/);
    const current = mails.find((m) => m.envelopeTo[0] === "new@example.org")!;
    assert.match(text(current), /reset your password now and contact security@example\.org/);
    assert.match(old.headers.get("content-type") ?? "", /^text\/plain/, "plain text only, no HTML part");
  });

  it("attack: an IPv6 zone id (free text, from X-Forwarded-For behind a proxy) never reaches a security notice", async () => {
    const [message] = securityMessages({ eventId: "evt_z", to: "ana@example.org", at: AT, ip: "fe80::1%Call-0800-555-0100-or-visit-secure-evil.example-now", event: { type: "password-changed" } }, options);
    assert.doesNotMatch(message!.text, /evil|0800|fe80/);
    const [plain] = securityMessages({ eventId: "evt_p", to: "ana@example.org", at: AT, ip: "2001:db8::7", event: { type: "password-changed" } }, options);
    assert.match(plain!.text, /from the IP address 2001:db8::7/);
  });

  it("attack: a new-device follow-up names each gathered sign-in by time, plain address and a fixed browser label — never a User-Agent's text or a zone id — counts the rest, and refuses a list past its bound (ASVS 6.3.5)", () => {
    const hour = Date.UTC(2026, 11, 5, 16);
    const lure = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 CALL 0800-555-0100 secure-evil.example";
    const signIns = [
      { at: hour + 60_000, ip: "203.0.113.7", userAgent: lure },
      { at: hour + 120_000, ip: "fe80::1%visit-evil.example", userAgent: null },
    ];
    const [message] = securityMessages({ eventId: "evt_f", to: "ana@example.org", at: hour + 120_000, event: { type: "new-device-follow-up", hour, signIns, more: 3 } }, options);
    assert.match(message!.text, /2026-12-05 16:01:00 UTC from the IP address 203\.0\.113\.7, a browser calling itself Chrome on Linux/);
    assert.match(message!.text, /2026-12-05 16:02:00 UTC from an address not shown, a browser or program that did not say which/);
    assert.match(message!.text, /and 3 more such sign-ins in that hour/);
    assert.match(message!.text, /When: 2026-12-05 16:00 to 17:00 UTC\./);
    assert.doesNotMatch(message!.text, /evil|0800|fe80/);
    assert.equal(message!.kind, "security.new-device-follow-up");
    const eleven = Array.from({ length: 11 }, (_, i) => ({ at: hour + i, ip: null, userAgent: null }));
    assert.throws(() => securityMessages({ eventId: "evt_g", to: "ana@example.org", at: hour, event: { type: "new-device-follow-up", hour, signIns: eleven, more: 0 } }, options), { code: "BULWARK_ERR_MAIL_MESSAGE" });
    assert.throws(() => securityMessages({ eventId: "evt_h", to: "ana@example.org", at: hour, event: { type: "new-device-follow-up", hour: hour + 1, signIns: eleven.slice(0, 1), more: 0 } }, options), { code: "BULWARK_ERR_MAIL_MESSAGE" });
  });

  // ASVS 6.3.7
  it("sends one notice per event and recipient even when the event is reported twice", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const notice = { eventId: "evt_7", to: "ana@example.org", at: AT, event: { type: "password-changed" } as SecurityEvent };
    const first = await notifySecurityEvent(f.outbox, notice, options);
    const second = await notifySecurityEvent(f.outbox, notice, options);
    assert.equal(second[0]?.id, first[0]?.id);
    assert.equal(second[0]?.created, false);
    const mails = await deliver(f);
    assert.equal(mails.length, 1);
    assert.match(text(mails[0]!), /The password of your account was changed/);
    assert.equal(mails[0]!.headers.get("x-bulwark-kind"), "security.password-changed");
  });

  // ASVS 6.3.7
  it("describes MFA factor changes and recovery code regeneration with fixed wording", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const events: SecurityEvent[] = [
      { type: "mfa-factor-added", factor: "webauthn" },
      { type: "mfa-factor-removed", factor: "totp" },
      { type: "recovery-codes-regenerated" },
      { type: "password-reset" },
    ];
    for (const [i, event] of events.entries()) await notifySecurityEvent(f.outbox, { eventId: `evt_${i}`, to: "ana@example.org", at: AT, ip: "not an ip\r\nBcc: x@y.z", event }, options);
    const bodies = (await deliver(f)).map(text).join("\n---\n");
    assert.match(bodies, /a passkey or security key was added/);
    assert.match(bodies, /an authenticator app \(TOTP\) was removed/);
    assert.match(bodies, /New recovery codes were generated/);
    assert.match(bodies, /reset using a password reset link/);
    assert.doesNotMatch(bodies, /not an ip|Bcc/, "a malformed IP is left out, not echoed");
  });

  it("describes a new API token by its permissions and expiry, and refuses scopes that are not permission names", () => {
    const [until] = securityMessages({ eventId: "e", to: "ana@example.org", at: AT, event: { type: "api-token-created", scopes: ["audit.read", "accounts.read"], expiresAt: Date.UTC(2027, 0, 1) } }, options);
    assert.match(until?.text ?? "", /with these permissions: audit\.read, accounts\.read\. It acts as you until 2027-01-01 00:00:00 UTC or until it is revoked/);
    for (const scopes of [[], ["audit.read\r\nBcc: x@y.z"], ["<b>admin</b>"], Array.from({ length: 17 }, () => "admin")]) {
      assert.throws(() => securityMessages({ eventId: "e", to: "ana@example.org", at: AT, event: { type: "api-token-created", scopes, expiresAt: null } }, options), { code: "BULWARK_ERR_MAIL_MESSAGE" }, JSON.stringify(scopes));
    }
  });

  it("refuses an unknown MFA factor instead of printing it", () => {
    assert.throws(() => securityMessages({ eventId: "e", to: "ana@example.org", at: AT, event: { type: "mfa-factor-added", factor: "<b>sms</b>" as never } }, options), { code: "BULWARK_ERR_MAIL_MESSAGE" });
  });

  it("refuses an unknown event type, including names every object inherits", () => {
    for (const type of ["bogus", "constructor", "toString", "__proto__", "hasOwnProperty"]) {
      assert.throws(() => securityMessages({ eventId: "e", to: "ana@example.org", at: AT, event: { type } as never }, options), { code: "BULWARK_ERR_MAIL_MESSAGE", message: /unknown security event type/ }, type);
    }
  });

  it("signs messages with DKIM when a key is configured", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const transport = await f.transport({ dkim: { domainName: "bulwark.test", keySelector: "mail2026", privateKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString() } });
    await notifySecurityEvent(f.outbox, { eventId: "evt_1", to: "ana@example.org", at: AT, event: { type: "password-changed" } }, options);
    const [mail] = await deliver(f, transport);
    const signature = mail?.headers.get("dkim-signature") ?? "";
    assert.match(signature, /\bd=bulwark\.test;/);
    assert.match(signature, /\bs=mail2026;/);
    assert.match(signature, /\bb=[A-Za-z0-9+/= ]{100,}/);
  });
});

// ASVS 6.3.7: containment's expire-passwords tells each owner at once. The old password works once more, so whoever
// holds a cracked copy may sign in first and choose the next one: the notice says what to do when that happened.
it("the password-expired notice says the next sign-in asks for a new password, holds no link, and says what to do if the password is refused", () => {
  const [message, ...more] = securityMessages({ eventId: "job_1.usr_1", to: "ana@example.org", at: AT, event: { type: "password-expired" } }, options);
  assert.equal(more.length, 0, "one recipient: the account's address");
  assert.equal(message!.subject, "Example Cloud: choose a new password at your next sign-in");
  assert.equal(message!.kind, "security.password-expired");
  assert.match(message!.text, /the next sign-in with it asks for a new password before anything else/);
  assert.match(message!.text, /If you did not expect it, ask security@example\.org, quoting the reference job_1\.usr_1/);
  assert.match(message!.text, /If your password is refused when you sign in, someone else may have signed in first.*"forgot password"/);
  assert.match(message!.text, /not asked for a new password, the precaution was withdrawn/);
  assert.doesNotMatch(message!.text, /https?:|If this was you/, "no link to follow, and no \"if this was you\": the administrators did it");
  const [bare] = securityMessages({ eventId: "job_1.usr_1", to: "ana@example.org", at: AT, event: { type: "password-expired" } }, { appName: "Example Cloud" });
  assert.match(bare!.text, /ask the administrators of Example Cloud, quoting the reference/, "without a support contact, the administrators");
});

// ASVS 8.2.2, 6.3.7's spirit: an administrative role granted from the account (perhaps by whoever sat at its unlocked
// computer) is told with what to do, since no change to the account itself takes the role back.
it("the administrative-role notices name the role and the other account by id only, say how to take the role back, and quote the reference", () => {
  const [given, ...more] = securityMessages({ eventId: "evt_g", to: "ana@example.org", at: AT, ip: "203.0.113.7", event: { type: "administrative-role-given", role: "admin", permissions: ["admin"], grantee: "usr_mate1" } }, options);
  assert.equal(more.length, 0, "one recipient: the acting account's address");
  assert.equal(given!.subject, "Example Cloud: your account gave another account an administrator's role");
  assert.equal(given!.kind, "security.admin-role-given");
  assert.match(given!.text, /granted the role admin to another account, the one with the id usr_mate1\. The role carries administrative permissions \(admin\)/);
  assert.match(given!.text, /does not take it away/);
  assert.match(given!.text, /take the role back at once \(DELETE \/api\/v1\/users\/usr_mate1\/roles\/admin\), change your password, sign out your other sessions and revoke your API tokens/);
  assert.match(given!.text, /tell security@example\.org, quoting the reference evt_g/);
  assert.match(given!.text, /If this was you, there is nothing to do\./);
  assert.doesNotMatch(given!.text, /reset your password now/, "not the generic advice: a reset leaves the role in place");
  const [received] = securityMessages({ eventId: "evt_g", to: "mate@example.org", at: AT, event: { type: "administrative-role-received", role: "admin", permissions: ["admin"] } }, options);
  assert.equal(received!.subject, "Example Cloud: your account was given an administrator's role");
  assert.match(received!.text, /An administrator gave your account the role admin, which carries administrative permissions \(admin\)/);
  assert.match(received!.text, /contact security@example\.org and quote the reference evt_g/);
});

it("attack: a role name, a permission or an account id that is not an identifier never reaches an administrative-role notice", () => {
  const base = { role: "admin", permissions: ["admin"], grantee: "usr_1" };
  for (const bad of [
    { role: "Call 0800 555 0100" }, { role: "admin\r\nBcc: x@y.z" }, { role: "" }, { role: "a".repeat(41) },
    { permissions: [] }, { permissions: ["visit evil.example"] }, { grantee: "see https://evil.example" }, { grantee: "usr@evil.example" }, { grantee: "" },
  ]) {
    assert.throws(() => securityMessages({ eventId: "e", to: "ana@example.org", at: AT, event: { type: "administrative-role-given", ...base, ...bad } as SecurityEvent }, options), { code: "BULWARK_ERR_MAIL_MESSAGE" }, JSON.stringify(bad));
  }
  assert.throws(() => securityMessages({ eventId: "e", to: "ana@example.org", at: AT, event: { type: "administrative-role-received", role: "our support line 0800", permissions: ["admin"] } }, options), { code: "BULWARK_ERR_MAIL_MESSAGE" });
});
