// `bulwark serve` (HTTP server; applies pending migrations) and `bulwark start` (init if needed, then
// serve, printing the URL: what `npm start` runs).
import type { Command } from "commander";
import type { CliContext, CommandModule } from "../context.ts";
import { escapeControls } from "../../lib/terminal.ts";
import { action, writeNote } from "../run.ts";
import { InputError } from "../../lib/errors.ts";

function serveCommand(program: Command, ctx: CliContext, name: string, description: string, mode: "migrate" | "init"): void {
  program
    .command(name)
    .description(description)
    .option("--host <host>", "address to listen on (default $HOST or 127.0.0.1)")
    .option("--port <port>", "port to listen on (default $PORT or 8080)")
    .action(
      action(ctx, async (opts: { host?: string; port?: string }) => {
        // Given as options (not copied into HOST/PORT), so that a bad value or a failed listen names the option typed.
        if (opts.host !== undefined && (opts.host.trim() === "" || /[\s/]/.test(opts.host.trim()))) {
          throw new InputError("BULWARK_ERR_USAGE", `--host must be a host name or IP address, got "${opts.host.slice(0, 60)}"`);
        }
        const app = await ctx.open({ mode, logToStdout: true, listen: { ...(opts.host !== undefined ? { host: opts.host } : {}), ...(opts.port !== undefined ? { port: opts.port } : {}) } });
        const { runServer } = await import("../../http/run-server.ts");
        const listenNames = { host: opts.host !== undefined ? "--host" : "HOST", port: opts.port !== undefined ? "--port" : "PORT" };
        const running = await runServer(app, { handleSignals: true, listenNames });
        writeNote(ctx, `Bulwark is listening on ${running.url} (database: ${escapeControls(app.db.where)})`);
        // Runs until SIGTERM/SIGINT; run-server exits the process after a graceful close.
        await new Promise<never>(() => {});
      }),
    );
}

export default {
  register(program, ctx) {
    serveCommand(program, ctx, "serve", "run the HTTP server (applies pending migrations)", "migrate");
    serveCommand(program, ctx, "start", "initialise if needed, then run the HTTP server (npm start)", "init");
  },
} satisfies CommandModule;
