// Red team, a second look at three of today's fixes, to find what they missed: the operator CLI (c24379a: escaped
// output, hidden password prompt, `users import` reading one private snapshot of its file), the stolen-session round
// (c4b3005: the caller's session replaced in the commit of a password change or "sign out everywhere else") and the
// dialect-parity round (bc6a65c: NUL and length bounds that differ between SQLite and PostgreSQL, WebAuthn ids).
// Attackers: another local account that can write where the operator works (a shared export directory, a directory
// the operator runs `bulwark` from, a group-writable volume) and that hands the operator the file to import; whoever
// holds an account's password at the second-factor gate and posts a hand-made WebAuthn assertion; and the operator's
// own terminal (a paste, a character split across reads).
// Found this round and fixed the same day ("attack: … (was: …)"): the import snapshot went into the data dir even
// where Bulwark documents that none is used or checked (PostgreSQL with BULWARK_MASTER_KEY: decision 0008) — there a
// missing dir broke every import, and a dir another account could write gave back the validate-then-swap the snapshot
// was meant to close; the snapshot copied a sparse file whole before reading a line; Ctrl-C during an import left the
// copy of the legacy hashes in the data dir for good. The copy is now nameless, in TMPDIR (src/cli/snapshot.ts), and
// stops at a stretch without a line break longer than any record. Pinned because they hold and are not obvious: a NUL
// in a WebAuthn assertion's id (the one body field no NO_CONTROL pattern covers) is a refused factor on both
// dialects, not a PostgreSQL 500; the hidden prompt reads a bracketed paste and a character split across reads as
// the password typed.
// Not repeated: what operator-cli-red-team, stolen-session-red-team and dialect-parity-red-team already pin.
// Temp dirs, a private PostgreSQL cluster (skipped loudly without one) and loopback only.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs, { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import type { CliContext } from "../src/cli/context.ts";
import { canPromptHidden, readHiddenLine } from "../src/cli/prompt.ts";
import { ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { bulwark, bulwarkHere, bulwarkInProcess, initSite, MAIN, type CLISite } from "./helpers/cli.ts";
import { forEachDialect, sharedCluster } from "./helpers/dialects.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { postgresUnavailable, type PgCluster } from "./helpers/postgres.ts";
import { CHEAP_ARGON2, scratchRoot } from "./helpers/scratch.ts";
import { authFixtureOn } from "./helpers/auth-flows.ts";

const { root, fresh } = scratchRoot("bulwark-third-look-redteam-");
const QUIET = { BULWARK_LOG_LEVEL: "silent" };
const MiB = 1024 * 1024;
const md5 = (text: string): string => createHash("md5").update(text).digest("hex");

let sites = 0;
function site(): Promise<CLISite> {
  return initSite(join(root, `site-${++sites}`), { here: true });
}

const pgMissing = postgresUnavailable();

describe("users import on a PostgreSQL deployment, which uses no data dir (BULWARK_DATABASE_URL and BULWARK_MASTER_KEY)", pgMissing ? { skip: `PostgreSQL unavailable: ${pgMissing}` } : {}, () => {
  let cluster: PgCluster | null = null;
  let schemas = 0;
  before(async () => {
    cluster = await sharedCluster();
  });

  /** The environment of a stateless node: database and master key from the environment; BULWARK_DATA_DIR as given. */
  async function node(dataDir: string): Promise<NodeJS.ProcessEnv> {
    const url = await cluster!.createSchema(`third_look_${process.pid}_${++schemas}`);
    const env = { ...QUIET, ...CHEAP_ARGON2, BULWARK_DATA_DIR: dataDir, BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: testMasterKey("third-look") };
    const init = await bulwarkHere(["init"], { env });
    assert.equal(init.code, 0, init.stderr);
    return env;
  }

  it("attack: `users import` works on a node that uses no data dir (docs/decisions/0008: \"when both BULWARK_DATABASE_URL and BULWARK_MASTER_KEY are set the data dir is not used\"; ASVS 16.5.2) (was: every file refused, blamed on the file — \"cannot read users.csv: ENOENT\", exit 2 — because the snapshot went into a data dir that does not exist)", async () => {
    const dir = fresh("stateless");
    // BULWARK_DATA_DIR unset means ./bulwark-data in whatever directory the operator is in: on a node that keeps its
    // database and key elsewhere, nothing ever creates it. (A named path that does not exist stands for it here.)
    const env = await node(join(dir, "bulwark-data"));
    const file = join(dir, "users.csv");
    writeFileSync(file, "email,external_id\nana@example.org,7\n");
    const r = await bulwark(["users", "import", file, "--json"], { env });
    assert.equal(r.code, 0, `an import of a readable file on a stateless node answered exit ${r.code}: ${r.stderr.trim()}`);
    assert.equal(JSON.parse(r.stdout).created, 1);
  });

  it("attack: another account that can write the temporary directory (a shared, world-writable TMPDIR) cannot swap the copy an import validated: the copy has no name by the time a byte is copied, so whatever it plants is never read — the import is refused or writes the reviewed rows only (CWE-367, CWE-379; ASVS 16.5.3; the round found this through a data dir nobody checked, where the copy used to go)", async () => {
    const dir = fresh("shared");
    const env = await node(join(dir, "bulwark-data"));
    // The shared directory the copy is made in, as a careless TMPDIR: writable by every account, no sticky bit.
    const shared = join(dir, "tmp");
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const reviewed = `email,password_hash\nana@example.org,${md5("ana's old one")}\n`;
    const file = join(dir, "handover.csv");
    writeFileSync(file, reviewed);
    // The other account watches the directory and, for every entry that appears, moves it away and plants its own
    // directory of that name holding a file of every name the copy might have, with its extra row.
    const planted = `${reviewed}mallory@example.net,${md5("letmein-mallory")}\n`;
    const swaps: string[] = [];
    const watcher = fs.watch(shared, (_event, entry) => {
      if (entry === null || entry.endsWith(".moved") || swaps.includes(entry)) return;
      try {
        renameSync(join(shared, entry), join(shared, `${entry}.moved`));
        mkdirSync(join(shared, entry));
        for (const name of ["copy", "input", "snapshot"]) writeFileSync(join(shared, entry, name), planted);
        swaps.push(entry);
      } catch {
        // Gone already: nothing to swap.
      }
    });
    let r: Awaited<ReturnType<typeof bulwarkInProcess>>;
    try {
      r = await bulwarkInProcess(["users", "import", file, "--json"], { ...env, TMPDIR: shared });
    } finally {
      watcher.close();
    }
    if (r.code !== 0) {
      // Refused (the planted directory made the copy fail): safe, and nothing was written.
      assert.equal(r.code === 2 || r.code === 3, true, r.stderr);
      return;
    }
    assert.equal((JSON.parse(r.stdout) as { created: number }).created, 1, `a row nobody validated was imported (swaps tried: ${swaps.length})`);
  });
});

describe("users import: the snapshot's cost and leftovers", () => {
  it("attack: a sparse file handed over for import (no blocks on its author's disk, no line break) is refused after a few MiB, not copied whole before its first line is read, and no copy is left (DESIGN \"every bound an attacker controls is bounded\"; ASVS 2.4.1, 16.5.3) (was: copied whole into the data dir, beside the database, then refused at line 1: a terabyte filled the disk)", async () => {
    const s = await site();
    const tmp = fresh("tmp");
    // 256 MiB of holes: nothing on disk, no newline. The same file at 1 TiB costs its author nothing either.
    const file = join(s.dir, "export.csv");
    writeFileSync(file, "");
    truncateSync(file, 256 * MiB);
    assert.ok(statSync(file).blocks * 512 < MiB, "the premise: the file takes (almost) no space on disk");
    const r = await bulwarkInProcess(["users", "import", file, "--dry-run"], { ...s.env, ...QUIET, TMPDIR: tmp });
    assert.equal(r.code, 2, r.stderr);
    // Stopped where the copy met the first stretch longer than any record the parsers accept (4 MiB), before parsing.
    assert.match(r.stderr, /line 1 runs past 4194304 bytes without a line break/);
    assert.deepEqual(readdirSync(tmp), [], "the copy left something behind");
    assert.deepEqual(readdirSync(s.env["BULWARK_DATA_DIR"] as string).filter((name) => /snapshot|input/.test(name)), []);
  });

  it("attack: Ctrl-C during an import (the importer is built to be interrupted and resumed) leaves no copy of the legacy file — its unsalted MD5s — anywhere: the copy has no name, and goes with the process (ASVS 14.2.2: sensitive data purged after use; CWE-459) (was: the copy stayed in the data dir for good, after the resumed import too)", { timeout: 120_000 }, async () => {
    const s = await site();
    const dataDir = s.env["BULWARK_DATA_DIR"] as string;
    const tmp = fresh("tmp");
    let csv = "email,password_hash\n";
    for (let i = 0; i < 30_000; i += 1) csv += `u${i}@example.org,${md5(`password ${i}`)}\n`;
    const file = s.file("legacy.csv", csv);
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, "users", "import", file], { env: { ...process.env, ...s.env, ...QUIET, TMPDIR: tmp }, stdio: ["pipe", "pipe", "pipe"] });
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
    // The operator presses Ctrl-C once the first batch is in (the terminal sends SIGINT to the command).
    const deadline = Date.now() + 60_000;
    const count = (): number => {
      try {
        return Number(s.rows("SELECT count(*) AS n FROM users")[0]!["n"]);
      } catch {
        return 0; // busy: the import holds the write lock a moment
      }
    };
    while (count() === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill("SIGINT");
    const stopped = await closed;
    assert.ok(stopped.signal === "SIGINT" || stopped.code !== 0, "the import was interrupted");
    const imported = Number(s.rows("SELECT count(*) AS n FROM users")[0]!["n"]);
    assert.ok(imported > 0 && imported < 30_000, `interrupted half-way (${imported} rows in)`);
    // The operator runs the same import again: it resumes and completes.
    assert.deepEqual(readdirSync(tmp), [], "the interrupted import left its copy behind");
    const resumed = await s.run(["users", "import", file]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /resumed the interrupted import/);
    assert.deepEqual(readdirSync(dataDir).filter((name) => /snapshot|input/.test(name)), [], "a copy of the legacy file is in the data dir");
  });
});

forEachDialect("a hand-made WebAuthn assertion at the second-factor gate", (fx) => {
  let auth: AuthFixture;
  before(async () => {
    auth = await authFixtureOn(fx, "third-look");
  });
  after(async () => {
    await auth?.close();
  });

  it("attack: a NUL in a WebAuthn assertion's credential id (the `webauthn` body field is a bare object: no NO_CONTROL pattern reaches it, and PostgreSQL text refuses a NUL) is a refused factor on both dialects — 401, audited, no 500 that skips the failure record (ASVS 16.5.3, 6.3.5)", async () => {
    const user = await auth.user("nul-assertion@example.org");
    const owner = auth.browser();
    assert.equal((await owner.login(user.email, user.password)).statusCode, 200);
    const key = new SoftAuthenticator();
    const options = await owner.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    const registered = await owner.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: "key" } });
    assert.equal(registered.statusCode, 200, registered.body);
    // The attacker has the password, not the key; it answers a real challenge of its own session with a forged id.
    const attacker = auth.browser({ newDevice: true });
    assert.equal((await attacker.login(user.email, user.password)).statusCode, 200);
    const challenge = await attacker.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal(challenge.statusCode, 200, challenge.body);
    const before = Number((await auth.app.db.db.selectFrom("audit_events").select((eb) => eb.fn.countAll<number>().as("n")).where("type", "=", "auth.mfa.failed").executeTakeFirstOrThrow()).n);
    const res = await attacker.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: key.authenticate(challenge.json(), ORIGIN, { credentialId: `${key.id}\u0000` }) } });
    assert.equal(res.statusCode, 401, res.body);
    assert.equal(res.json().error.code, "BULWARK_ERR_MFA_INVALID");
    const afterCount = Number((await auth.app.db.db.selectFrom("audit_events").select((eb) => eb.fn.countAll<number>().as("n")).where("type", "=", "auth.mfa.failed").executeTakeFirstOrThrow()).n);
    assert.equal(afterCount, before + 1, "the refused factor is audited");
    assert.equal((await attacker.request("GET", "/auth/session")).json().aal, 1, "no step-up");
  });
});

describe("the hidden password prompt (readHiddenLine) under odd terminal input", () => {
  /** A terminal whose keys arrive as the given byte chunks; everything written to it is kept. */
  function terminal(chunks: Buffer[]): { ctx: CliContext; written: () => string; modes: boolean[] } {
    const modes: boolean[] = [];
    const stdin = Object.assign(new PassThrough(), { isTTY: true, isRaw: false, setRawMode: (m: boolean) => void modes.push(m) });
    let out = "";
    const stderr = new PassThrough();
    stderr.on("data", (d: Buffer) => (out += d.toString()));
    chunks.forEach((c, i) => setTimeout(() => stdin.write(c), i * 2));
    return { ctx: { stdin, stdout: new PassThrough(), stderr, stderrIsTTY: true } as unknown as CliContext, written: () => out, modes };
  }

  it("attack: a password pasted with bracketed-paste markers, with a multibyte character split between two reads, is read as exactly the characters pasted (no marker bytes, no U+FFFD), and nothing of it is written back (CWE-549; ASVS 6.2.8: the password as given)", async () => {
    const password = "Ünïcødé-\u{1F511}-pässwörd";
    const bytes = Buffer.from(`\u001b[200~${password}\u001b[201~\r`);
    // Split inside the key emoji's four bytes, and inside "Ü".
    const cut1 = bytes.indexOf(Buffer.from("\u{1F511}")) + 2;
    const t = terminal([bytes.subarray(0, 7), bytes.subarray(7, cut1), bytes.subarray(cut1)]);
    assert.equal(canPromptHidden(t.ctx), true);
    const read = await readHiddenLine(t.ctx, "Password: ", { maxBytes: 4096, tooLong: () => new RangeError("too long") });
    assert.equal(read, password);
    assert.equal(t.written(), "Password: \n");
    assert.deepEqual(t.modes, [true, false]);
  });
});
