// Red team on look-alike identifiers (confusable skeletons: confusables.ts, normalise.ts, the user store's check and
// migration 23's unique indexes, the importer, email change, POST /api/v1/users and sign-up). ADR 0013, ASVS 1.1.1.
// The attacker: an impostor, a help-desk administrator with accounts.write, or the author of an import file, who
// wants a second account that a person cannot tell from an existing one ("tim", "admin", "bill", "google",
// pay@example.org), or who wants to learn of or block an account. ADR 0013's stated limit (ASCII is never folded into
// ASCII: "ian"/"lan", "bob1"/"bobl") is respected here: every look-alike below holds at least one character beyond
// ASCII, and is compared with the ASCII name it reads as, not with another ASCII name.
// Each test is an attack that must fail on correct code. "attack: … (was: …)" failed before its fix (the round's eight
// findings, fixed the same day); the others pin a defence that held.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forEachDialect } from "./helpers/dialects.ts";
import { RESET_ACCEPTED } from "../src/http/auth/index.ts";
import { systemRandom } from "../src/lib/random.ts";
import { Outbox } from "../src/notify/outbox.ts";
import { identifierKey } from "../src/accounts/users/normalise.ts";
import { createEmailChangeService } from "../src/accounts/email-change/email-change-service.ts";
import { helpDeskSite, importCSV, storedBeforeLookalikeRule } from "./helpers/lookalike-pairs.ts";

/** Code points beyond ASCII shown as U+XXXX, so a failure message says which characters went through. */
const hex = (s: string): string => [...s].map((c) => (c.charCodeAt(0) < 128 ? c : `U+${c.codePointAt(0)!.toString(16).toUpperCase()}`)).join("");

const { site, createUser, spare } = helpDeskSite("spare");

/**
 * Creates each victim (a plain ASCII account), then each impostor, through POST /api/v1/users; returns the impostors
 * that were stored (201) beside the victim they read like. Every other answer must be the look-alike refusal.
 */
async function impostorsStored(pairs: Array<{ victim: { email: string; username?: string }; impostor: { email: string; username?: string } }>): Promise<string[]> {
  const stored: string[] = [];
  for (const { victim, impostor } of pairs) {
    const made = await createUser(victim);
    assert.equal(made.statusCode, 201, `victim ${JSON.stringify(victim)}: ${made.body}`);
    const res = await createUser(impostor);
    if (res.statusCode === 201) stored.push(`${hex(impostor.username ?? impostor.email)} beside ${victim.username ?? victim.email}`);
    else {
      assert.equal(res.statusCode, 409, res.body);
      assert.match((res.json() as { error: { code: string } }).error.code, /^BULWARK_ERR_(EMAIL|USERNAME)_CONFUSABLE$/, res.body);
    }
  }
  return stored;
}

/** A fresh address for an account whose address does not matter to the test. */

describe("red team: look-alike identifiers through POST /api/v1/users (a help-desk impostor)", () => {
  it("attack: a name written with a non-Latin capital I (Cyrillic І, Greek Ι, Lisu ꓲ) beside the Latin name it reads as — ТІМ beside tim, ꓮꓓꓟꓲꓠ beside admin — is refused (ASVS 1.1.1) (was: stored; the table read those capitals as l)", async () => {
    // UTS #39 gives every I-shaped character the prototype "l" only because the standard folds ASCII I (and 1) into
    // l too: confusables.txt says "0406 → l", "A4F2 → l  # →I→". Bulwark's skeleton keeps ASCII I apart from l (ADR
    // 0013), yet copied those entries as they are, so Cyrillic І, Greek Ι, palochka Ӏ, Coptic Ⲓ, Lisu ꓲ, Runic ᛁ …
    // land on "l" while the I they are drawn as lower-cases to "i". The skeleton of ТІМ is "tlm", of tim "tim": no
    // collision. The ADR's own rule ("computed from the identifier as shown, so a Cyrillic capital В reads as B";
    // "Ѕcope … the same account as scope to anyone reading a list") says ТІМ reads as TIM, which is tim's account.
    const stored = await impostorsStored([
      { victim: { email: spare(), username: "tim" }, impostor: { email: spare(), username: "\u0422\u0406\u041C" } }, // ТІМ, all Cyrillic
      { victim: { email: spare(), username: "admin" }, impostor: { email: spare(), username: "\uA4EE\uA4D3\uA4DF\uA4F2\uA4E0" } }, // ꓮꓓꓟꓲꓠ, all Lisu
      { victim: { email: "kim@example.org" }, impostor: { email: "\u039A\u0399\u039C@example.org" } }, // ΚΙΜ@, a Greek local part
      { victim: { email: spare(), username: "Ivan" }, impostor: { email: spare(), username: "\u0406\u0475\u0430\u0578" } }, // Іѵаո: Cyrillic І ѵ а, Armenian ո
    ]);
    assert.deepEqual(stored, [], "stored beside the account it reads as");
  });

  it("attack: capitalising a look-alike letter whose capital the table lacks — Һоре beside hope, where һоре is refused — is refused too (ASVS 1.1.1) (was: stored)", async () => {
    // confusableSkeleton maps first and lower-cases after. A capital that is not in the table (Cyrillic Һ U+04BA, Ԛ
    // U+051A, Latin Ɪ U+A7AE, Ɡ U+A7AC, Armenian Հ, Georgian Ყ …) survives the mapping, and lower-casing then turns it
    // into its small letter — һ, ԛ, ɪ, ɡ, which the table does map (to h, q, i, g) — but too late. So "һоре" (all small
    // Cyrillic) is refused beside "hope", while "Һоре", which has the same lookup key (it IS the same account name, in
    // other case) and whose capital Һ is drawn as a tall h, is stored. Secure: one answer for one key — the capital
    // refused as the small letter is.
    const stored: string[] = [];
    for (const [victim, small, capital] of [
      ["hope", "\u04BB\u043E\u0440\u0435", "\u04BA\u043E\u0440\u0435"], // һоре / Һоре
      ["qa", "\u051B\u0430", "\u051A\u0430"], // ԛа / Ԛа
    ] as const) {
      assert.equal(identifierKey(small), identifierKey(capital), "one account name in two cases");
      assert.equal((await createUser({ email: spare(), username: victim })).statusCode, 201);
      const refused = await createUser({ email: spare(), username: small });
      assert.equal(refused.statusCode, 409, `the small-letter form is refused today: ${refused.body}`);
      const res = await createUser({ email: spare(), username: capital });
      if (res.statusCode === 201) stored.push(`${hex(capital)} beside ${victim}`);
      else assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_USERNAME_CONFUSABLE", res.body);
    }
    assert.deepEqual(stored, [], "stored beside the account it reads as, though the same key in small letters is refused");
  });

  it("attack: a name whose digit 1 or 0 is written with another script's digit — bob١ beside bob1, agent০০7 beside agent007 — is refused (ASVS 1.1.1) (was: stored; the table read them as l and O)", async () => {
    // The same root cause for digits: UTS #39 folds "1" into "l" and "0" into "O", so ١ (U+0661, "→1→"), ۱, ߀, ০ (U+09E6,
    // "→0→"), ୦ … carry the prototypes l and O. Bulwark never folds 1 or 0, so bob١ gets the skeleton "bobl" and never
    // meets bob1; the Arabic and Bengali digits also pass the one-script rule (it judges only Latin, Cyrillic, Greek).
    const stored = await impostorsStored([
      { victim: { email: spare(), username: "bob1" }, impostor: { email: spare(), username: "bob\u0661" } }, // bob١
      { victim: { email: spare(), username: "agent007" }, impostor: { email: spare(), username: "agent\u09E6\u09E67" } }, // agent০০7
    ]);
    assert.deepEqual(stored, [], "stored beside the account it reads as");
  });

  it("attack: a dotless ı (or ȷ) with a combining dot above, which reads as i (j) — admı̇n beside admin — is refused (ASVS 1.1.1, UTS #39 §5.4) (was: stored)", async () => {
    // ı + U+0307 is drawn as i: the skeleton maps ı to i but keeps the mark (NFD, map, lower, NFC: "admi\u0307n"), which
    // no plain name has, and ȷ (U+0237) is not in the table at all. Both letters are Latin, so the one-script rule and the
    // compatibility rule pass them; U+0307 is neither invisible nor default-ignorable. Browsers refuse this sequence in
    // domain names (Chromium's IDN spoof checker: a dot above after i, j, l or dotless i). Secure: refused as a look-alike
    // (or the mark refused on a letter whose dot it only redraws).
    const stored = await impostorsStored([
      { victim: { email: spare(), username: "admin2" }, impostor: { email: spare(), username: "adm\u0131\u0307n2" } }, // admı̇n2
      { victim: { email: "john@example.org" }, impostor: { email: "\u0237\u0307ohn@example.org" } }, // ȷ̇ohn@
    ]);
    assert.deepEqual(stored, [], "stored beside the account it reads as");
  });

  it("attack: a single character that reads as two Latin letters — biǁ beside bill, gꝏgle beside google — is refused (ASVS 1.1.1) (was: stored; the table held one-letter readings only)", async () => {
    // confusables.txt maps U+01C1 LATIN LETTER LATERAL CLICK to "ll" and U+A74F LATIN SMALL LETTER OO to "oo"; the table
    // keeps only entries whose prototype is ONE ASCII character, so these (and æ→ae, œ→oe, ʣ→dz, ꜳ→aa, Cyrillic Ы→bl …:
    // 45 letters and symbols that pass validateUsername) stay themselves in the skeleton. Both are Latin-script letters:
    // nothing else refuses them.
    const stored = await impostorsStored([
      { victim: { email: spare(), username: "bill" }, impostor: { email: spare(), username: "bi\u01C1" } }, // biǁ
      { victim: { email: "google@example.org" }, impostor: { email: "g\uA74Fgle@example.org" } }, // gꝏgle@
    ]);
    assert.deepEqual(stored, [], "stored beside the account it reads as");
  });

  it("attack: sign-up with an address an account reads like answers 202 like a free or taken one and creates nothing (ASVS 6.3.8) (was: 409 BULWARK_ERR_EMAIL_CONFUSABLE told an anonymous caller the look-alike existed)", async () => {
    // An account with a non-ASCII address (рау@example.org) is created by an administrator or an import (both accept
    // it). Sign-up looks the typed address up by its key, finds nothing, and lets the store's create throw
    // BULWARK_ERR_EMAIL_CONFUSABLE, which register-routes.ts does not catch (only BULWARK_ERR_EMAIL_TAKEN becomes the 202).
    // ADR 0013: "the sign-up answer for a look-alike address must stay the same 202".
    const made = await createUser({ email: "\u0440\u0430\u0443@example.org" }); // рау@, all Cyrillic local part
    assert.equal(made.statusCode, 201, made.body);
    site().app.config.http.registrationOpen = true;
    try {
      const free = await site().browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: "free-for-signup@example.org" } });
      const lookalike = await site().browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: "pay@example.org" } });
      assert.equal(free.statusCode, 202, free.body);
      assert.equal(lookalike.statusCode, 202, `a look-alike of a stored account answered ${lookalike.statusCode}: ${lookalike.body}`);
      assert.deepEqual(lookalike.json(), RESET_ACCEPTED);
      assert.equal(lookalike.body, free.body);
    } finally {
      site().app.config.http.registrationOpen = false;
    }
  });

  it("attack: a whole-script look-alike written in capitals, with a precomposed accent, or in a script the one-script rule does not judge (Armenian, Cherokee) is refused", async () => {
    // Non-obvious parts of the defence: the skeleton maps before it lower-cases (a Cyrillic capital В is B, then b), it
    // decomposes before it maps (Cyrillic ӧ = о + ̈ meets Latin ö), and it does not depend on the mixed-script rule
    // (Latin-Armenian or Cherokee names pass that rule and are caught here).
    const stored = await impostorsStored([
      { victim: { email: spare(), username: "bob" }, impostor: { email: spare(), username: "\u0412\u041E\u0412" } }, // ВОВ
      { victim: { email: spare(), username: "co\u00F6p" }, impostor: { email: spare(), username: "\u0441\u043E\u04E7\u0440" } }, // соӧр: Cyrillic ӧ is о + ̈
      { victim: { email: spare(), username: "google" }, impostor: { email: spare(), username: "g\u0585\u0585gle" } }, // gօօgle, Armenian օ
      { victim: { email: spare(), username: "dave" }, impostor: { email: spare(), username: "\u13A0\u13AA\u13D9\u13AC" } }, // ᎠᎪᏙᎬ, Cherokee
    ]);
    assert.deepEqual(stored, [], "stored beside the account it reads as");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Stored data: a look-alike pair kept by migration 23 (one holds the skeleton, the other none), and the importer.



const PAY_CYRILLIC = "\u0440\u0430\u0443@example.org"; // рау@example.org
const SCOPE_CYRILLIC = "\u0455\u0441\u043E\u0440\u0435"; // ѕсоре

forEachDialect("red team: a stored look-alike pair and the importer", (dfx) => {
  it("attack: once the plain account of a stored look-alike pair changes its address or username, a new account reading like the other one is still refused (ASVS 1.1.1) (was: accepted — pay@example.org and scope again beside рау@example.org and ѕсоре)", async () => {
    // Migration 23 puts the plain account of a stored pair under the unique index and marks the other (never merged).
    // In its first version the other got no skeleton at all, so the plain account was the only thing between it and any
    // new look-alike: an email change or an import rename freed the skeleton, and an impostor then created the plain
    // name, which reads exactly as the stored Cyrillic account. Now the marked account keeps its skeleton (only the
    // unique index leaves it out), and the writers' look refuses a new look-alike of it.
    const { database, clock, users, deps } = await storedBeforeLookalikeRule(await dfx.empty(), [
      { id: "usr_a_holder", email: "pay@example.org", username: "scope" },
      { id: "usr_b_legacy", email: PAY_CYRILLIC, username: SCOPE_CYRILLIC },
    ]);
    const holders = await database.db.selectFrom("users").select(["id", "email_skeleton", "username_skeleton", "email_lookalike", "username_lookalike"]).orderBy("id").execute();
    assert.deepEqual(holders.map((h) => [h.id, h.email_skeleton, h.username_skeleton, Number(h.email_lookalike), Number(h.username_lookalike)]),
      [["usr_a_holder", "pay@example.org", "scope", 0, 0], ["usr_b_legacy", "pay@example.org", "scope", 1, 1]], "migration 23 as documented");

    // The holder moves: its address through the email-change service, its username through an import update.
    const outbox = new Outbox({ database, clock, random: systemRandom });
    const changes = createEmailChangeService({ database, clock, random: systemRandom, outbox });
    const holder = await users.getById("usr_a_holder");
    assert.ok(holder);
    assert.equal(await changes.request(holder, "pay.moved@example.org", { publicURL: "https://bulwark.test", serviceName: "Bulwark" }), "queued");
    const mails = await database.db.selectFrom("outbox_messages").selectAll().where("to_address", "=", "pay.moved@example.org").execute();
    const token = /ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}/.exec(JSON.stringify(mails))?.[0];
    assert.ok(token, "no confirmation link mailed");
    await changes.confirm(token);
    const renamed = await importCSV(deps, "email,username\npay.moved@example.org,scope-old\n", { onConflict: "update" });
    assert.equal(renamed.updated, 1, JSON.stringify(renamed.bad));

    const accepted: string[] = [];
    for (const [what, input] of [["email pay@example.org", { email: "pay@example.org" }], ["username scope", { email: spare(), username: "scope" }]] as const) {
      try {
        await users.create(input);
        accepted.push(what);
      } catch (error) {
        assert.match((error as { code?: string }).code ?? String(error), /^BULWARK_ERR_(EMAIL|USERNAME)_CONFUSABLE$/);
      }
    }
    assert.deepEqual(accepted, [], "stored beside the legacy account рау@example.org / ѕсоре, which reads the same");
  });

  it("attack: a stored look-alike's own import row (skip, or an update that disables it) is not refused as reading like another account, so an incident import can disable it (was: the whole file was refused)", async () => {
    // clash() compared the row's skeleton with the skeleton's holder before it asked whether the row only meets its own
    // account: for the pair's marked account the holder is the OTHER account, so the row was "bad" though it writes no
    // identifier (skip writes nothing; this update writes only the status), and a real run refused the whole file
    // ("N bad row(s), nothing imported"). Secure: an existing account's own row is judged on what it writes — skipped, or
    // updated (a username it keeps, a status) — and a new look-alike is still refused.
    const { database, deps } = await storedBeforeLookalikeRule(await dfx.empty(), [
      { id: "usr_a_holder", email: "pay@example.org", username: "scope" },
      { id: "usr_b_legacy", email: PAY_CYRILLIC, username: SCOPE_CYRILLIC },
    ]);
    const file = `email,status\nnew-hire@example.org,\n${PAY_CYRILLIC},disabled\n`;
    const skip = await importCSV(deps, file, { onConflict: "skip", dryRun: true });
    const update = await importCSV(deps, file, { onConflict: "update" }).catch((error: unknown) => error as Error);
    const b = await database.db.selectFrom("users").select(["status"]).where("id", "=", "usr_b_legacy").executeTakeFirstOrThrow();
    assert.deepEqual(
      { skipBad: skip.bad, update: update instanceof Error ? update.message.slice(0, 160) : { created: update.created, updated: update.updated }, legacyStatus: b.status },
      { skipBad: [], update: { created: 1, updated: 1 }, legacyStatus: "disabled" },
      "the stored account's own row is refused as a look-alike of the other account of its pair",
    );
  });

  it("attack: an import file that renames an account's username to a look-alike of another's, or holds two rows that read alike, is refused by the dry run and the real run alike, and writes nothing", async () => {
    // The importer's own look (clash, and the within-file skeleton maps) and then the unique index: an import author
    // cannot use --on-conflict update to give an existing account the look of another, nor bring both in one file.
    const { database, users, deps } = await storedBeforeLookalikeRule(await dfx.empty(), []);
    await users.create({ email: "real-scope@example.org", username: "scope" });
    await users.create({ email: "accomplice@example.org", username: "accomplice" });
    const rename = `email,username\naccomplice@example.org,${SCOPE_CYRILLIC}\n`;
    const dry = await importCSV(deps, rename, { onConflict: "update", dryRun: true });
    assert.equal(dry.bad.length, 1, JSON.stringify(dry));
    assert.match(dry.bad[0]!.reason, /reads like/);
    await assert.rejects(importCSV(deps, rename, { onConflict: "update" }), /reads like/);
    const within = `email,username\nfresh-1@example.org,\u0440\u0430\u0443\nfresh-2@example.org,pay\n`; // рау then pay
    const dryWithin = await importCSV(deps, within, { dryRun: true });
    assert.deepEqual(dryWithin.bad.map((b) => b.line), [3]);
    await assert.rejects(importCSV(deps, within), /reads like line 2/);
    const names = (await database.db.selectFrom("users").select("username").execute()).map((r) => r.username).sort();
    assert.deepEqual(names, ["accomplice", "scope"], "nothing written");
  });
});
