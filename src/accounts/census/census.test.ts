// The password-hash census on SQLite and PostgreSQL: groups by scheme and parameters, counts users
// without a password, weak and unsalted schemes, and reads across page boundaries.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { migrate } from "../../store/migrator.ts";
import { createPasswordContext } from "../passwords/index.ts";
import { createUserStore } from "../users/user-store.ts";
import { passwordCensus } from "./census.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });

forEachDialect("password census", (fx) => {
  it("counts users per scheme and parameters, without a password, and the share on weak schemes", async () => {
    const database = await fx.fresh();
    const clock = new ManualClock();
    await migrate(database, clock);
    const users = createUserStore({ database, clock, random: systemRandom });
    const add = (email: string, hash: string | null): Promise<unknown> => users.create({ email, passwordHash: hash, passwordScheme: null });
    for (let i = 0; i < 5; i++) await add(`md5-${i}@example.org`, createHash("md5").update(`p${i}`).digest("hex"));
    await add("phpass@example.org", "$P$6npetjI95qN1kIVZ9V0Ce6NS5dN6cT0");
    await add("argon@example.org", await passwords.hash("a fine passphrase"));
    await add("wrapped@example.org", await passwords.wrapLegacyHash("$P$6npetjI95qN1kIVZ9V0Ce6NS5dN6cT0"));
    await add("nopass@example.org", null);
    await add("hostile@example.org", "$2b$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy");
    const census = await passwordCensus({ database, passwords }, { pageSize: 3 });
    assert.deepEqual([census.users, census.withoutPassword, census.weak, census.unsalted, census.unsupported], [10, 1, 6, 5, 1]);
    assert.equal(census.weakShare, 6 / 9);
    assert.deepEqual(census.schemes, [
      { scheme: "md5", params: "", users: 5, weak: true },
      { scheme: "argon2id", params: "m=1024,t=1,p=1", argon2Version: 19, users: 1, weak: false },
      { scheme: "bulwark-wrapped", params: "inner=phpass(log2=8),m=1024,t=1,p=1", argon2Version: 19, users: 1, weak: false },
      { scheme: "phpass", params: "log2=8", users: 1, weak: true },
      { scheme: "unsupported", params: "", users: 1, weak: false },
    ]);
  });

  it("counts crypt(3) hashes written with an empty salt as unsalted, as glibc writes them ($1$$…, $6$$…, $5$rounds=N$$…)", async () => {
    const database = await fx.fresh();
    const clock = new ManualClock();
    await migrate(database, clock);
    const users = createUserStore({ database, clock, random: systemRandom });
    for (const [email, hash] of [
      ["empty-md5@example.org", `$1$$${"x".repeat(22)}`],
      ["empty-sha512@example.org", `$6$$${"x".repeat(86)}`],
      ["empty-sha256@example.org", `$5$rounds=5000$$${"x".repeat(43)}`],
      ["salted-md5@example.org", "$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/"],
    ] as const) await users.create({ email, passwordHash: hash });
    const census = await passwordCensus({ database, passwords });
    assert.deepEqual([census.users, census.weak, census.unsalted], [4, 4, 3]);
  });

  it("counts argon2 below the policy's minimum cost (plain, or a wrap's outer layer) as weak, apart from the fast schemes (ASVS 11.4.2)", async () => {
    const database = await fx.fresh();
    const clock = new ManualClock();
    await migrate(database, clock);
    const users = createUserStore({ database, clock, random: systemRandom });
    const cheap = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
    await users.create({ email: "cheap-argon@example.org", passwordHash: await cheap.hash("a fine passphrase") });
    await users.create({ email: "cheap-wrap@example.org", passwordHash: await cheap.wrapLegacyHash("$P$6npetjI95qN1kIVZ9V0Ce6NS5dN6cT0") });
    await users.create({ email: "policy@example.org", passwordHash: await passwords.hash("a fine passphrase") });
    const census = await passwordCensus({ database, passwords });
    assert.deepEqual([census.weak, census.belowMinimum, census.unsalted], [2, 2, 0]);
    assert.deepEqual(census.schemes.map((r) => [r.scheme, r.params, r.weak]), [
      ["argon2id", "m=1024,t=1,p=1", false],
      ["argon2id", "m=64,t=1,p=1", true],
      ["bulwark-wrapped", "inner=phpass(log2=8),m=64,t=1,p=1", true],
    ]);
  });

  it("counts argon2 1.0 (or an omitted version) and argon2i at the policy's m and t as weak, in groups apart from argon2id 1.3 with the same parameters (ASVS 11.4.2)", async () => {
    const database = await fx.fresh();
    const clock = new ManualClock();
    await migrate(database, clock);
    const users = createUserStore({ database, clock, random: systemRandom });
    const phc = (head: string): string => `${head}m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY`;
    // The 1.0 rows are read first: the group's flag once came from the first row of a scheme and m,t,p.
    for (const [email, head] of [["v16@example.org", "$argon2id$v=16$"], ["omitted@example.org", "$argon2id$"], ["v19@example.org", "$argon2id$v=19$"], ["argon2i@example.org", "$argon2i$v=19$"]] as const) {
      await users.create({ email, passwordHash: phc(head) });
    }
    const census = await passwordCensus({ database, passwords });
    assert.deepEqual([census.weak, census.belowMinimum], [3, 3]);
    assert.deepEqual(census.schemes, [
      { scheme: "argon2id", params: "m=1024,t=1,p=1", argon2Version: 16, users: 2, weak: true },
      { scheme: "argon2i", params: "m=1024,t=1,p=1", argon2Version: 19, users: 1, weak: true },
      { scheme: "argon2id", params: "m=1024,t=1,p=1", argon2Version: 19, users: 1, weak: false },
    ]);
  });
  it("reports an empty account base without dividing by zero", async () => {
    const database = await fx.fresh();
    await migrate(database, new ManualClock());
    const census = await passwordCensus({ database, passwords });
    assert.deepEqual([census.users, census.weakShare, census.schemes.length], [0, 0, 0]);
  });
});
