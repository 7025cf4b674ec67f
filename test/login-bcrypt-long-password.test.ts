// bcrypt reads only the first 72 UTF-8 bytes of a password, so a login against a bcrypt hash accepts any password
// sharing them (the legacy system's own rule, kept). The upgrade to argon2id must not then store the *typed*
// password: a stranger's password that differs only after byte 72 would replace the owner's. A password of 72
// bytes or more therefore signs in but leaves the bcrypt hash in place (at exactly 72 the cut drops the NUL bcrypt
// keys on, so it is keyed like every longer password sharing those bytes). On SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { it } from "node:test";
import { hash as bcryptHash } from "@node-rs/bcrypt";
import { forEachDialect } from "./helpers/dialects.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { FloodControl } from "../src/accounts/flood/index.ts";
import { login, type LoginDeps } from "../src/accounts/login/index.ts";
import { createPasswordContext } from "../src/accounts/passwords/index.ts";
import { createUserStore } from "../src/accounts/users/user-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { migrate } from "../src/store/migrator.ts";
import { keyedDigest, keyedFingerprint } from "../src/crypto/tokens.ts";

/** Flood-control rows' keys under a fixed test key (the app keys them with Keyring.floodKey). */
const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x5f), text);

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
// 80 bytes: past bcrypt's 72-byte cut.
const PREFIX = "correct horse battery staple, and then some more words to pass the 72-byte cut";

forEachDialect("bcrypt upgrade at login", (fx) => {
  async function setup() {
    const db = await fx.fresh();
    const clock = new ManualClock(Date.UTC(2026, 10, 1));
    await migrate(db, clock);
    const users = createUserStore({ database: db, clock, random: systemRandom });
    const deps: LoginDeps = { users, passwords, flood: new FloodControl({ database: db, clock, keyOf: floodKeyOf }), audit: new AuditLog({ database: db, clock, random: systemRandom }), logger: { warn() {}, error() {} }, tag: (text: string) => keyedFingerprint(new Uint8Array(32), text) };
    return { deps, users };
  }

  it("attack: a password sharing only the owner's first 72 bytes signs in (bcrypt's rule) but does not replace the owner's password (ASVS 6.2.8)", async () => {
    const { deps, users } = await setup();
    assert.ok(Buffer.byteLength(PREFIX) >= 72);
    const real = `${PREFIX} - the owner's ending`;
    const stored = await bcryptHash(real, { cost: 4 });
    const u = await users.create({ email: "long@example.org", passwordHash: stored, passwordScheme: "bcrypt" });
    const other = await login(deps, { identifier: "long@example.org", password: `${PREFIX} - someone else's ending`, ip: null });
    assert.equal(other.outcome, "success", "the legacy bcrypt rule still decides the login (documented)");
    assert.equal(other.outcome === "success" && other.rehashed, false, "no upgrade from a password bcrypt only partly read");
    assert.equal((await users.getById(u.id))?.passwordHash, stored, "the bcrypt hash stays");
    const owner = await login(deps, { identifier: "long@example.org", password: real, ip: null });
    assert.equal(owner.outcome, "success", "the owner's own password still signs in");
  });

  it("a bcrypt password of at most 71 bytes is upgraded as before (bcrypt read all of it and its closing NUL)", async () => {
    const { deps, users } = await setup();
    const exact = `${"x".repeat(69)}é`; // 71 UTF-8 bytes, the last character two of them
    assert.equal(Buffer.byteLength(exact), 71);
    const u = await users.create({ email: "short@example.org", passwordHash: await bcryptHash(exact, { cost: 4 }), passwordScheme: "bcrypt" });
    const ok = await login(deps, { identifier: "short@example.org", password: exact, ip: null });
    assert.equal(ok.outcome === "success" && ok.rehashed, true);
    assert.match((await users.getById(u.id))?.passwordHash ?? "", /^\$argon2id\$/);
    assert.equal((await login(deps, { identifier: "short@example.org", password: exact, ip: null })).outcome, "success");
  });
});
