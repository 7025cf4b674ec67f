// Starts the HTTP server, records start and stop in the audit log, and shuts down gracefully on
// SIGTERM/SIGINT: stop accepting, finish requests in flight, checkpoint the audit chain, close the database.
import type { FastifyInstance } from "fastify";
import type { App } from "../app/types.ts";
import { startMailRunner, type MailRunner } from "./mail-runner.ts";
import { buildServer, type ServerOptions } from "./server.ts";

export interface RunningServer {
  url: string;
  server: FastifyInstance;
  /** Stops the server and closes the app; safe to call twice. */
  close(reason?: string): Promise<void>;
}

export async function runServer(app: App, options: ServerOptions & { handleSignals?: boolean; mailIdleMs?: number } = {}): Promise<RunningServer> {
  const server = await buildServer(app, options);
  await server.listen({ host: app.config.host, port: app.config.port });
  const address = server.server.address();
  const port = typeof address === "object" && address ? address.port : app.config.port;
  const host = app.config.host.includes(":") ? `[${app.config.host}]` : app.config.host;
  const url = `http://${host}:${port}`;
  await app.audit.append({ type: "server.start", actor: "system", data: { url, pid: process.pid, dialect: app.db.dialect } });
  // The outbox sender delivers security notices and reset links while the server runs.
  const mail: MailRunner = await startMailRunner(app, options.mailIdleMs === undefined ? {} : { idleMs: options.mailIdleMs });

  let closing: Promise<void> | null = null;
  const close = (reason: string = "shutdown"): Promise<void> => {
    closing ??= (async () => {
      await server.close();
      try {
        await mail.stop();
        await app.audit.append({ type: "server.stop", actor: "system", data: { url, pid: process.pid, reason } });
        await app.audit.checkpoint();
      } finally {
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
