// `bulwark check logins`: Bulwark's own sign-ins read back from its audit log, as `check authlog` reads sshd's. A
// credential-stuffing wave (a botnet trying a leaked list, seed 001's five hours over SSH, here over HTTP) shows as
// hours of failed logins far above the usual; what matters is what got through: sign-ins from browsers new to their
// account during the wave, and sign-ins that came after a run of failures (a guess that worked, ASVS 6.3.5). Each is
// listed with the session it made (auth.login.succeeded names it), so the responder ends exactly those.
import { sql } from "kysely";
import { parseStoredData } from "../../audit/read-events.ts";
import type { Database } from "../../store/database.ts";
import type { Finding } from "../finding.ts";

const HOUR = 3_600_000;
/** Sign-ins listed per finding; the rest are counted. Enough to act on, bounded for a wave of a million. */
export const LISTED = 100;
/** auth.login.succeeded events read per query while scanning the window. */
const PAGE = 5000;
/** Waves reported one by one; later ones are counted in the last. */
const MAX_WAVES = 20;

export interface LoginsCheckOptions {
  /** The window: events at or after `since`, before `until` (epoch ms). */
  since: number;
  until: number;
  /** An hour is part of a wave with at least this many failed logins... */
  waveMin: number;
  /** ...and at least this many times the window's median hour (the usual rate; at least 1). */
  waveFactor: number;
  /** A sign-in after this many failed attempts in a row is reported (the notice to the owner uses the same 5). */
  streak: number;
  /** Sign-in events read per query (default 5000); tests page with fewer. */
  pageSize?: number;
}

export const DEFAULT_LOGINS_OPTIONS = { waveMin: 100, waveFactor: 5, streak: 5 } as const;

/** One sign-in as a responder acts on it. */
export interface SignIn {
  userId: string;
  email: string | null;
  at: string;
  ip: string | null;
  sessionId: string | null;
  newDevice: boolean | null;
  failuresBefore: number | null;
}

export interface Wave {
  from: string;
  to: string;
  failed: number;
  /** Distinct accounts (or, for unknown identifiers, keyed tags) the failures named, summed over its hours (an upper bound). */
  accountsTried: number;
  succeeded: number;
  newDeviceSignIns: number;
}

export interface LoginsReport {
  findings: Finding[];
  window: { since: string; until: string; hours: number };
  failed: number;
  throttled: number;
  succeeded: number;
  /** The usual failed logins per hour: the median hour of the window. */
  medianFailedPerHour: number;
  waves: Wave[];
  /** Sign-ins whose event predates the session and failure fields (written before 2026-12-05), not judged on them. */
  succeededWithoutDetail: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Checks the options: each bound is a number the operator typed. */
function checkOptions(o: LoginsCheckOptions): void {
  if (!(Number.isFinite(o.since) && Number.isFinite(o.until) && o.since < o.until)) throw new RangeError("the window must start before it ends");
  if (!(Number.isInteger(o.waveMin) && o.waveMin >= 1)) throw new RangeError("waveMin must be a whole number of at least 1");
  if (!(Number.isFinite(o.waveFactor) && o.waveFactor >= 1)) throw new RangeError("waveFactor must be at least 1");
  if (!(Number.isInteger(o.streak) && o.streak >= 1)) throw new RangeError("streak must be a whole number of at least 1");
  if (o.pageSize !== undefined && !(Number.isInteger(o.pageSize) && o.pageSize >= 1)) throw new RangeError("pageSize must be a whole number of at least 1");
}

/**
 * Reads the window's login events and returns the findings: `logins.failure-wave` per wave (high when a browser new
 * to its account signed in during it), `logins.after-failures` for sign-ins after a run of failures.
 *
 * @example
 * const report = await checkLogins(app.db, { since: now - 24 * HOUR, until: now, ...DEFAULT_LOGINS_OPTIONS });
 */
export async function checkLogins(database: Database, options: LoginsCheckOptions): Promise<LoginsReport> {
  checkOptions(options);
  const { since, until } = options;
  const pageSize = options.pageSize ?? PAGE;
  const firstHour = Math.floor(since / HOUR);
  const hours = Math.max(1, Math.ceil(until / HOUR) - firstHour);

  // Per hour and type, in the database: a wave of a million failures is a million rows, never read one by one.
  const { rows } = await sql<{ hour: number | string; type: string; n: number | string; accounts: number | string }>`
    SELECT at / ${sql.lit(HOUR)} AS hour, type, count(*) AS n, count(DISTINCT subject) AS accounts FROM audit_events
    WHERE type IN ('auth.login.failed', 'auth.login.throttled', 'auth.login.succeeded') AND at >= ${since} AND at < ${until}
    GROUP BY at / ${sql.lit(HOUR)}, type`.execute(database.db);
  const failedByHour = new Map<number, { n: number; accounts: number }>();
  let failed = 0;
  let throttled = 0;
  let succeeded = 0;
  for (const r of rows) {
    const n = Number(r.n);
    if (r.type === "auth.login.failed") {
      failedByHour.set(Number(r.hour), { n, accounts: Number(r.accounts) });
      failed += n;
    } else if (r.type === "auth.login.throttled") throttled += n;
    else succeeded += n;
  }
  const counts = Array.from({ length: hours }, (_, i) => failedByHour.get(firstHour + i)?.n ?? 0).sort((a, b) => a - b);
  const median = counts[Math.floor((counts.length - 1) / 2)] as number;
  const threshold = Math.max(options.waveMin, options.waveFactor * Math.max(median, 1));

  // Consecutive wave hours make one wave.
  const waveHours: Array<{ first: number; last: number }> = [];
  for (let h = firstHour; h < firstHour + hours; h++) {
    if ((failedByHour.get(h)?.n ?? 0) < threshold) continue;
    const open = waveHours.at(-1);
    if (open && open.last === h - 1) open.last = h;
    else waveHours.push({ first: h, last: h });
  }
  const waveOf = (at: number): number => {
    const h = Math.floor(at / HOUR);
    return waveHours.findIndex((w) => h >= w.first && h <= w.last);
  };

  // The sign-ins, read in pages by position (the index on type and seq), judged one by one, kept only when listed.
  const afterFailures: SignIn[] = [];
  let afterFailuresCount = 0;
  const newDuringWave: SignIn[][] = waveHours.map(() => []);
  const newDuringWaveCount = waveHours.map(() => 0);
  const succeededDuringWave = waveHours.map(() => 0);
  let withoutDetail = 0;
  let after = 0;
  for (;;) {
    const page = await database.db.selectFrom("audit_events").select(["seq", "subject", "at", "data"])
      .where("type", "=", "auth.login.succeeded").where("seq", ">", after).where("at", ">=", since).where("at", "<", until)
      .orderBy("seq").limit(pageSize).execute();
    for (const row of page) {
      const at = Number(row.at);
      const data = parseStoredData(row.data).data ?? {};
      const failuresBefore = typeof data["failuresBefore"] === "number" ? data["failuresBefore"] : null;
      const newDevice = typeof data["newDevice"] === "boolean" ? data["newDevice"] : null;
      if (failuresBefore === null && newDevice === null) withoutDetail++;
      const signIn = (): SignIn => ({
        userId: row.subject, email: null, at: iso(at), ip: typeof data["ip"] === "string" ? data["ip"] : null,
        sessionId: typeof data["sessionId"] === "string" ? data["sessionId"] : null, newDevice, failuresBefore,
      });
      if (failuresBefore !== null && failuresBefore >= options.streak) {
        afterFailuresCount++;
        if (afterFailures.length < LISTED) afterFailures.push(signIn());
      }
      const w = waveOf(at);
      if (w >= 0) {
        succeededDuringWave[w]!++;
        if (newDevice === true) {
          newDuringWaveCount[w]!++;
          if (newDuringWave[w]!.length < LISTED) newDuringWave[w]!.push(signIn());
        }
      }
    }
    if (page.length < pageSize) break;
    after = Number(page.at(-1)!.seq);
  }
  await withEmails(database, [afterFailures, ...newDuringWave].flat());

  const waves: Wave[] = waveHours.map((w, i) => {
    let n = 0;
    let accounts = 0;
    for (let h = w.first; h <= w.last; h++) {
      n += failedByHour.get(h)?.n ?? 0;
      accounts += failedByHour.get(h)?.accounts ?? 0;
    }
    return { from: iso(w.first * HOUR), to: iso((w.last + 1) * HOUR), failed: n, accountsTried: accounts, succeeded: succeededDuringWave[i]!, newDeviceSignIns: newDuringWaveCount[i]! };
  });

  const findings: Finding[] = [];
  waves.slice(0, MAX_WAVES).forEach((wave, i) => {
    const listed = newDuringWave[i]!;
    const laterWaves = i === MAX_WAVES - 1 && waves.length > MAX_WAVES ? ` (and ${waves.length - MAX_WAVES} later wave(s) not reported one by one)` : "";
    findings.push({
      id: "logins.failure-wave",
      severity: wave.newDeviceSignIns > 0 ? "high" : "medium",
      title: `${wave.failed} failed logins from ${wave.from} to ${wave.to}, against a usual ${median} an hour${laterWaves}`,
      detail:
        `Failed logins reached at least ${threshold} an hour (${options.waveFactor}× the window's median hour, and at least ${options.waveMin}), ` +
        `over up to ${wave.accountsTried} account(s) or unknown identifiers. ${wave.succeeded} sign-in(s) succeeded meanwhile, ` +
        `${wave.newDeviceSignIns} from a browser new to its account${listed.length > 0 ? `: ${describe(listed.slice(0, 10))}${wave.newDeviceSignIns > 10 ? ", …" : ""}` : ""}.`,
      evidence: { ...wave, threshold, medianFailedPerHour: median, newDeviceSignInsListed: listed },
      remediation: wave.newDeviceSignIns > 0
        ? "Ask the owners of the accounts listed whether the sign-in was theirs; end the sessions that were not and make those passwords unusable: " +
          "list the account ids in a file and run `bulwark contain revoke-sessions invalidate-passwords --ids FILE --dry-run`, then without --dry-run. " +
          "The addresses the failures came from are in the auth.login.failed events of those hours (`bulwark audit export --since`)."
        : "Nothing got through from a new browser. Watch whether the wave goes on; flood control already refuses each address past its hourly failures, " +
          "so a wave this size comes from many addresses: block them upstream if it persists (they are in the auth.login.failed events of those hours).",
    });
  });
  if (afterFailuresCount > 0) {
    findings.push({
      id: "logins.after-failures",
      severity: "high",
      title: `${afterFailuresCount} sign-in(s) after ${options.streak} or more failed attempts in a row`,
      detail: `The right password after a run of wrong ones may be a guess that worked (the owner was mailed each time): ${describe(afterFailures.slice(0, 10))}${afterFailuresCount > 10 ? ", …" : ""}.`,
      evidence: { count: afterFailuresCount, signIns: afterFailures },
      remediation:
        "Ask each owner whether the sign-in was theirs; for those that were not, end the session named and make the password unusable " +
        "(`bulwark contain revoke-sessions invalidate-passwords --ids FILE`), then look at what the session did (`bulwark audit export`, its sessionId).",
    });
  }
  return {
    findings, window: { since: iso(since), until: iso(until), hours }, failed, throttled, succeeded,
    medianFailedPerHour: median, waves, succeededWithoutDetail: withoutDetail,
  };
}

/** "ana@example.org (usr_…) at … from …, session ses_…" for each sign-in listed. */
function describe(signIns: readonly SignIn[]): string {
  return signIns.map((s) => `${s.email ?? "?"} (${s.userId}) at ${s.at} from ${s.ip ?? "?"}${s.sessionId ? `, session ${s.sessionId}` : ""}`).join("; ");
}

/** Fills in the email of each listed sign-in's account (one query; at most a few hundred ids). */
async function withEmails(database: Database, signIns: SignIn[]): Promise<void> {
  const ids = [...new Set(signIns.map((s) => s.userId))];
  if (ids.length === 0) return;
  const rows = await database.db.selectFrom("users").select(["id", "email"]).where("id", "in", ids).execute();
  const byId = new Map(rows.map((r) => [r.id, r.email]));
  for (const s of signIns) s.email = byId.get(s.userId) ?? null;
}
