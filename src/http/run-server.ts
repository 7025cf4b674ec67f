// Starts the HTTP server, records start and stop in the audit log, and shuts down gracefully on
// SIGTERM/SIGINT: stop accepting, finish requests in flight, checkpoint the audit chain, close the database.
import { isIP, isIPv4, isIPv6 } from "node:net";
import type { FastifyInstance } from "fastify";
import { webAuthnLibrary } from "../accounts/mfa/webauthn.ts";
import type { App } from "../app/types.ts";
import { weakArgon2Warning } from "../app/config.ts";
import { containDeps, resumableJobs } from "../contain/index.ts";
import { InputError, RuntimeFailure, isBulwarkError } from "../lib/errors.ts";
import { ipv6Groups } from "../lib/ipv6.ts";
import { startCheckpointer, type Checkpointer } from "../store/checkpointer.ts";
import { jobRunnerOf } from "./api/index.ts";
import { startMailRunner, type MailRunner } from "./mail-runner.ts";
import { startMaintenance, type Maintenance } from "./maintenance.ts";
import { recordUnrecordedRefusals, recordUnrecordedTokenUses } from "../accounts/login/refusal-sampler.ts";
import { reportPasswordWorkRefusals } from "./auth/password-work.ts";
import { buildServer, type ServerOptions } from "./server.ts";
import { checkClockSkew, clockSkewError, skewBeyond } from "../store/clock-skew.ts";

/** How long a stopping server waits for its open connections before cutting them (ms). */
export const SHUTDOWN_GRACE_MS = 5_000;

export interface RunningServer {
  url: string;
  server: FastifyInstance;
  /** Stops the server and closes the app; safe to call twice. */
  close(reason?: string): Promise<void>;
}

/** How the operator set the listen address, for error messages: "--host"/"--port" or "HOST"/"PORT" (the default). */
export interface ListenNames {
  host: string;
  port: string;
}

/**
 * A listen failure the operator can fix by choosing another host or port, as an input error (the CLI exits 2) naming
 * the setting and the reason: a host that does not resolve or is not an address of this machine, a port in use or
 * one that needs privileges. A DNS server that does not answer is a runtime failure (exit 3), still named. Any
 * other error is returned as it is.
 */
export function listenError(error: unknown, host: string, port: number, names: ListenNames = { host: "HOST", port: "PORT" }): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const cause = { cause: error };
  switch (code) {
    case "ENOTFOUND":
    case "EAI_NONAME":
    case "EAI_NODATA":
      return new InputError("BULWARK_ERR_LISTEN_HOST", `${names.host} "${host}" does not resolve to an address (${code}): give an IP address of this machine (127.0.0.1, ::1, 0.0.0.0 for all) or a host name that resolves to one`, cause);
    case "EAI_AGAIN":
      return new RuntimeFailure("BULWARK_ERR_LISTEN_HOST_LOOKUP", `${names.host} "${host}" cannot be resolved now (EAI_AGAIN: the DNS server did not answer); try again, or give an IP address`, cause);
    case "EADDRNOTAVAIL":
      return new InputError("BULWARK_ERR_LISTEN_HOST", `${names.host} "${host}" is not an address of this machine (EADDRNOTAVAIL): give one of its addresses (127.0.0.1, ::1), or 0.0.0.0 for all`, cause);
    case "EADDRINUSE":
      return new InputError("BULWARK_ERR_LISTEN_PORT", `${names.port} ${port} is already in use on ${host} (EADDRINUSE): stop what listens there or choose another port`, cause);
    case "EACCES":
      return new InputError("BULWARK_ERR_LISTEN_PORT", `${names.port} ${port} on ${host} is not allowed for this user (EACCES): ports below 1024 need privileges; choose one from 1024 up`, cause);
    default:
      return error;
  }
}

/**
 * The start-up warning for a listen address beyond this machine, or null for a loopback one. The server speaks plain
 * HTTP only, so there passwords, session cookies and API tokens cross the network in clear text (ASVS 12.2.1). Not
 * refused: a TLS-terminating reverse proxy on another host needs it. A host name is judged by the address it bound.
 *
 * @example
 * plainHTTPExposure("0.0.0.0", "0.0.0.0", "HOST") // "HOST 0.0.0.0 serves plain HTTP (no TLS) on every network interface: …"
 */
export function plainHTTPExposure(host: string, bound: string | null, name: string): string | null {
  const address = isIP(host) !== 0 || bound === null ? host : bound;
  if (isLoopback(address)) return null;
  const where = isWildcard(address) ? "on every network interface" : address === host ? "on an address other machines can reach" : `on ${address}, an address other machines can reach`;
  return (
    `${name} ${host} serves plain HTTP (no TLS) ${where}: passwords, session cookies and API tokens cross the network in clear text. ` +
    `Listen on 127.0.0.1 (${name}=127.0.0.1) behind a reverse proxy that terminates TLS on this machine; with the proxy on another host, keep the link to it private (a firewall, a private network or a tunnel)`
  );
}

/**
 * The start-up warning for PORT=0 (any free port) without BULWARK_PUBLIC_URL: the public URL, built from the
 * configured port, names port 0, so every mailed link (password reset, email change, sign-up) points nowhere and
 * the browser origin the CSRF check expects is one no browser has. Null otherwise.
 *
 * @example
 * publicURLOnPortZero(0, "http://localhost:0", 41234) // "PORT=0 and no BULWARK_PUBLIC_URL: …"
 */
export function publicURLOnPortZero(configuredPort: number, publicURL: string, boundPort: number): string | null {
  if (configuredPort !== 0 || !/^https?:\/\/[^/]*:0$/.test(publicURL)) return null;
  return (
    `PORT=0 and no BULWARK_PUBLIC_URL: the public URL is ${publicURL}, so mailed links (password reset, email change, ` +
    `sign-up) point nowhere and browsers' origin is refused; set BULWARK_PUBLIC_URL (this server listens on port ${boundPort})`
  );
}

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback, or the name localhost (RFC 6761 §6.3: always this machine). */
function isLoopback(address: string): boolean {
  const text = address.toLowerCase().replace(/\.$/, "");
  if (text === "localhost" || text.endsWith(".localhost")) return true;
  if (isIPv4(text)) return text.startsWith("127.");
  if (!isIPv6(text)) return false;
  const groups = ipv6Groups(text);
  if (groups.slice(0, 7).every((g) => g === 0)) return groups[7] === 1;
  // ::ffff:127.0.0.0/104, an IPv4 loopback address on an IPv6 socket.
  return groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff && groups[6]! >> 8 === 127;
}

/** 0.0.0.0 or :: (any spelling): every interface of the machine. */
function isWildcard(address: string): boolean {
  if (isIPv4(address)) return address === "0.0.0.0";
  return isIPv6(address) && ipv6Groups(address).every((g) => g === 0);
}

export async function runServer(app: App, options: ServerOptions & { handleSignals?: boolean; mailIdleMs?: number; maintenanceIntervalMs?: number; listenNames?: ListenNames } = {}): Promise<RunningServer> {
  // Loaded now, not at the first passkey ceremony: a broken install stops the start here.
  await webAuthnLibrary();
  const server = await buildServer(app, options);
  // On SQLite, WAL checkpoints (a page copy and two fsyncs) run in a worker instead of stalling requests.
  const checkpointer = startCheckpointer(app.db, { logger: app.logger });
  try {
    await server.listen({ host: app.config.host, port: app.config.port });
  } catch (error) {
    await checkpointer?.stop();
    throw listenError(error, app.config.host, app.config.port, options.listenNames);
  }
  const address = server.server.address();
  const port = typeof address === "object" && address ? address.port : app.config.port;
  const host = app.config.host.includes(":") ? `[${app.config.host}]` : app.config.host;
  const url = `http://${host}:${port}`;
  const exposure = plainHTTPExposure(app.config.host, typeof address === "object" && address ? address.address : null, options.listenNames?.host ?? "HOST");
  if (exposure !== null) app.logger.warn({ host: app.config.host, port }, exposure);
  const linkWarning = publicURLOnPortZero(app.config.port, app.config.http.publicURL, port);
  if (linkWarning !== null) app.logger.warn({ publicURL: app.config.http.publicURL, port }, linkWarning);
  if (app.config.databaseTransport === "plain") {
    app.logger.warn({ database: app.db.where }, "the PostgreSQL connection is plain (sslmode=disable) over the network: passwords and rows cross it readable; use sslmode=verify-full unless that network is trusted");
  }
  const argon2Warning = weakArgon2Warning(app.config.argon2);
  if (argon2Warning !== null) app.logger.warn({ argon2: app.config.argon2 }, argon2Warning);
  let startedMail: MailRunner | null = null;
  let maintenance: Maintenance;
  try {
    await app.audit.append({ type: "server.start", actor: "system", data: { url, pid: process.pid, dialect: app.db.dialect } });
    // The outbox sender delivers security notices and reset links while the server runs.
    startedMail = await startMailRunner(app, options.mailIdleMs === undefined ? {} : { idleMs: options.mailIdleMs });
    await resumeContainment(app, server);
    maintenance = startMaintenance(app, options.maintenanceIntervalMs === undefined ? {} : { intervalMs: options.maintenanceIntervalMs });
    // Nodes sharing a PostgreSQL: a clock far from the database server's is named now, not after a confused incident;
    // beyond BULWARK_MAX_CLOCK_SKEW_SECONDS the node does not serve at all (its lifetimes and windows would be off).
    const skew = await checkClockSkew(app.db, app.clock, app.logger, app.config.maxClockSkewMs);
    if (skewBeyond(skew, app.config.maxClockSkewMs)) throw clockSkewError(skew, app.config.maxClockSkewMs);
  } catch (error) {
    // Never keep serving half-started (it answered /healthz 503 with no sender, and the log had a start with no stop).
    await startedMail?.stop().catch(() => {});
    throw await abortStart(app, server, { url, checkpointer, error });
  }
  const mail: MailRunner = startedMail;

  let closing: Promise<void> | null = null;
  const close = (reason: string = "shutdown"): Promise<void> => {
    closing ??= (async () => {
      // In-flight requests finish, and each answer closes its connection (server.ts); a connection still open after
      // the grace period (a client that stopped reading) is cut, so the audit and WAL checkpoints below still run
      // before a supervisor's kill.
      const grace = setTimeout(() => server.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      // The runners stop meanwhile, not after: their graces run alongside the requests' (the outbox keeps what a last
      // request queues, for the next sender), so the whole close stays inside a supervisor's 10 s.
      const runners = Promise.all([maintenance.stop(), mail.stop()]);
      runners.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
      try {
        await server.close();
      } finally {
        clearTimeout(grace);
      }
      try {
        // Each step on its own, a failure logged: one write meeting a lock another process held past the busy timeout
        // skipped server.stop and the final checkpoint after it (a start with no stop in the log,
        // test/sqlite-busy-b-red-team.test.ts). Each write waits at most the store's own bound, as before.
        await shutdownStep(app, "stop the runners", () => runners);
        // The refused attempts counted but not yet written (refusal-sampler.ts): they would die with the process. A
        // write that fails leaves its counts, and the samplers after it, as they were (recordUnrecordedRefusals).
        const writeCounts = async (): Promise<void> => {
          await recordUnrecordedRefusals(app.accounts.refusals, app.audit, app.clock.now(), { all: true });
          await recordUnrecordedRefusals(app.accounts.callerRefusals, app.audit, app.clock.now(), { all: true });
          await recordUnrecordedTokenUses(app.accounts.tokenUses, app.audit, app.clock.now(), { all: true });
        };
        const counted = await shutdownStep(app, "record the unrecorded refusal and token-use counts", writeCounts);
        reportPasswordWorkRefusals(app, app.logger, { force: true });
        const stopped = await shutdownStep(app, "record server.stop", () => app.audit.append({ type: "server.stop", actor: "system", data: { url, pid: process.pid, reason } }));
        // Counts whose write failed are tried once more when server.stop has just been written (the lock is gone): a
        // lock held for a moment must not lose them. Behind a lock still held this costs no further wait.
        if (!counted && stopped) await shutdownStep(app, "record the unrecorded counts (again)", writeCounts);
        // A log the checkpoint must not vouch for (AuditLog.checkpoint says why) is logged, not a failed stop: the
        // server still closes cleanly, and `bulwark audit verify` reports the same problem.
        await app.audit.checkpoint().catch((error: unknown) => app.logger.error({ err: error }, "audit checkpoint at stop refused; run `bulwark audit verify`"));
      } finally {
        // Before the database closes: the last connection to close then checkpoints and removes the WAL.
        await checkpointer?.stop();
        await app.close();
      }
    })();
    return closing;
  };
  if (options.handleSignals) {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      process.once(signal, () => {
        app.logger.info({ signal }, "shutting down");
        close(signal).then(
          () => process.exit(0),
          (error) => {
            app.logger.error({ err: error }, "shutdown failed");
            process.exit(3);
          },
        );
      });
    }
  }
  return { url, server, close };
}

/** Runs one step of a shutdown; a failure is logged (the steps after it still run). Returns whether it succeeded. */
async function shutdownStep(app: App, step: string, work: () => Promise<unknown>): Promise<boolean> {
  try {
    await work();
    return true;
  } catch (error) {
    app.logger.error({ err: error, step }, `shutdown: could not ${step}; going on with the rest`);
    return false;
  }
}

/**
 * Undoes a start that failed after listen: stops listening, records server.stop next to server.start, stops the
 * checkpointer, and returns the error to throw. The app stays open for its owner to close, as after a listen
 * failure. A BulwarkError keeps its kind (and so its exit code); anything else becomes a named runtime failure.
 */
async function abortStart(app: App, server: FastifyInstance, started: { url: string; checkpointer: Checkpointer | null; error: unknown }): Promise<unknown> {
  const { url, checkpointer, error } = started;
  app.logger.error({ err: error }, "server start failed after listen; stopping");
  const reason = `start failed: ${isBulwarkError(error) ? error.code : "error"}`;
  // Each step on its own, as in close: a failed server.stop (the store still busy) must not skip the checkpoint.
  try {
    await shutdownStep(app, "stop listening", () => server.close());
    await shutdownStep(app, "record server.stop of a failed start", () => app.audit.append({ type: "server.stop", actor: "system", data: { url, pid: process.pid, reason } }));
    await shutdownStep(app, "checkpoint the audit log", () => app.audit.checkpoint());
  } finally {
    await checkpointer?.stop();
  }
  if (isBulwarkError(error)) return error;
  return new RuntimeFailure("BULWARK_ERR_SERVER_START", `the server could not finish starting and was stopped: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/**
 * A containment job interrupted by a crash or a shutdown resumes by itself when a server starts, in the
 * background, where it stopped (batches are claimed, so several servers resuming the same job is safe).
 */
async function resumeContainment(app: App, server: FastifyInstance): Promise<void> {
  const runner = jobRunnerOf(server);
  if (!runner) return;
  try {
    for (const job of await resumableJobs(containDeps(app), { logger: app.logger })) {
      await app.audit.append({ type: "contain.job.resumed", actor: "system", subject: job.id, data: { status: job.status, done: job.done, total: job.total, by: "server-start" } });
      app.logger.info({ jobId: job.id, kind: job.kind, done: job.done, total: job.total }, "resuming an unfinished containment job");
      runner.start(job.id);
    }
  } catch (error) {
    app.logger.error({ err: error }, "could not resume unfinished containment jobs; run `bulwark contain resume JOB`");
  }
}
