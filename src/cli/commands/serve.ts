// `bulwark serve` (HTTP server; applies pending migrations) and `bulwark start` (init if needed, then
// serve, printing the URL: what `npm start` runs).
import type { Command } from "commander";
import type { CliContext, CommandModule } from "../context.ts";
import { action } from "../run.ts";

function serveCommand(program: Command, ctx: CliContext, name: string, description: string, mode: "migrate" | "init"): void {
  program
    .command(name)
    .description(description)
    .option("--host <host>", "address to listen on (default $HOST or 127.0.0.1)")
    .option("--port <port>", "port to listen on (default $PORT or 8080)")
    .action(
      action(ctx, async (opts: { host?: string; port?: string }) => {
        if (opts.host) process.env["HOST"] = opts.host;
        if (opts.port) process.env["PORT"] = opts.port;
        const app = await ctx.open({ mode, logToStdout: true });
        const { runServer } = await import("../../http/run-server.ts");
        const running = await runServer(app, { handleSignals: true });
        ctx.stderr.write(`Bulwark is listening on ${running.url} (database: ${app.db.where})\n`);
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
