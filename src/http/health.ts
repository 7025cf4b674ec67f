// GET /healthz: whether this node can serve — the store answers a read, and accepts a write. The write is probed at
// most once per PROBE_OK_MS (once per PROBE_FAILED_MS while it fails): the route is public, and a crowd asking at once
// shares one probe, so no caller can turn health checks into a stream of writes.
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import type { App } from "../app/types.ts";
import { probeWrites, type WriteProbe } from "../store/write-probe.ts";

/** How long a committed probe stands for the next callers. */
export const PROBE_OK_MS = 5_000;
/** How long a failed probe stands: shorter, so a recovered disk is seen soon. */
export const PROBE_FAILED_MS = 1_000;

type Writes = WriteProbe | "failing";

export function registerHealth(server: FastifyInstance, app: App): void {
  let last: { at: number; writes: Writes } | null = null;
  let inFlight: Promise<Writes> | null = null;

  const probe = async (): Promise<Writes> => {
    try {
      const writes = await probeWrites(app.db, app.clock.now());
      if (last?.writes === "failing") server.log.info("the store accepts writes again");
      return writes;
    } catch (error) {
      // Said once, when it starts failing: the operator needs the engine's reason, the public answer does not.
      if (last?.writes !== "failing") server.log.error({ err: error }, "the store refuses writes: logins, resets and audit events will fail");
      return "failing";
    }
  };

  const writes = async (): Promise<Writes> => {
    const now = app.clock.now();
    if (last && now - last.at >= 0 && now - last.at < (last.writes === "failing" ? PROBE_FAILED_MS : PROBE_OK_MS)) return last.writes;
    inFlight ??= probe().then((result) => {
      last = { at: app.clock.now(), writes: result };
      inFlight = null;
      return result;
    });
    return inFlight;
  };

  server.get("/healthz", async (_request, reply) => {
    const database = app.db.dialect;
    try {
      await sql`SELECT 1`.execute(app.db.db);
    } catch {
      return reply.status(503).send({ status: "unavailable", database });
    }
    const state = await writes();
    if (state === "failing") return reply.status(503).send({ status: "unavailable", database, writes: "failing" });
    return { status: "ok", database, writes: state };
  });
}
