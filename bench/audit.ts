// Audit benchmark: append rate (each event committed) against a raw INSERT loop into an equivalent table
// in the same run (aim ≥ 0.7), and verify rate (aim ≥ 200,000 events/s on SQLite).
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../src/audit/audit-log.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { systemClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { line, now, rate, seconds } from "./lib.ts";

const APPENDS = Number(process.env["BENCH_AUDIT_APPENDS"] ?? 20_000);
const VERIFY_EVENTS = Number(process.env["BENCH_AUDIT_VERIFY"] ?? 300_000);

export default async function bench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-bench-audit-"));
  try {
    const database = openSQLite(join(dir, "bench.db"), { create: true });
    await migrate(database, systemClock);
    const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(database), clock: systemClock, random: systemRandom });
    await keyring.ensureKeys();
    const audit = new AuditLog({ database, clock: systemClock, random: systemRandom, signer: () => keyring.signer() });
    const raw = database.sqlite!;
    raw.exec(`CREATE TABLE raw_events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT NOT NULL,
      data TEXT NOT NULL, at BIGINT NOT NULL, request_id TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`);
    raw.exec("CREATE INDEX raw_events_at ON raw_events(at)");
    raw.exec("CREATE INDEX raw_events_type ON raw_events(type, at)");
    const insert = raw.prepare("INSERT INTO raw_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)");
    const h = createHash("sha256").update("x").digest("hex");
    const data = JSON.stringify({ ip: "203.0.113.7", userAgent: "bench", outcome: "ok" });

    // Warm up both paths, then alternate rounds so machine noise hits both equally.
    let rawSeq = 0;
    const rawRound = (n: number): number => {
      const t = now();
      for (let i = 0; i < n; i++) {
        rawSeq++;
        insert.run(rawSeq, `evt_${rawSeq}`, "auth.login.succeeded", "usr_x", "usr_x", data, Date.now(), "req_1", h, h);
      }
      return seconds(t);
    };
    const auditRound = async (n: number): Promise<number> => {
      const t = now();
      for (let i = 0; i < n; i++) await audit.append({ type: "auth.login.succeeded", actor: "usr_x", subject: "usr_x", requestId: "req_1", data: { ip: "203.0.113.7", userAgent: "bench", outcome: "ok" } });
      return seconds(t);
    };
    rawRound(500);
    await auditRound(500);
    let rawTime = 0;
    let auditTime = 0;
    const rounds = 5;
    for (let r = 0; r < rounds; r++) {
      rawTime += rawRound(APPENDS / rounds);
      auditTime += await auditRound(APPENDS / rounds);
    }
    const rawRate = APPENDS / rawTime;
    const auditRate = APPENDS / auditTime;
    line("raw INSERT, each committed (reference)", rate(APPENDS, rawTime));
    line("audit append, each committed", rate(APPENDS, auditTime));
    line("append ratio (audit / raw)", (auditRate / rawRate).toFixed(2), "aim >= 0.7");

    // Verify: fill the log to VERIFY_EVENTS in one transaction per 10k (fast), then time a full verify.
    const have = (await audit.tail(1))[0]?.seq ?? 0;
    for (let done = have; done < VERIFY_EVENTS; ) {
      const n = Math.min(10_000, VERIFY_EVENTS - done);
      await database.transaction(async (trx) => {
        for (let i = 0; i < n; i++) await audit.appendIn(trx, { type: "bench.fill", actor: "bench", data: { i } });
      });
      done += n;
    }
    const t = now();
    const report = await audit.verify();
    const secs = seconds(t);
    if (!report.ok) throw new Error(`verify failed: ${report.problem?.problem}`);
    line("audit verify (SQLite)", rate(report.events, secs), `${report.events} events; aim >= 200,000/s`);
    await database.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
