// `bulwark init`: creates the data dir, the master key file (0600), the database and its schema.
// Idempotent; never overwrites an existing key.
import type { CommandModule } from "../context.ts";
import { escapeControls } from "../../lib/terminal.ts";
import { action, writeJSON, writeLine } from "../run.ts";

export default {
  register(program, ctx) {
    program
      .command("init")
      .description("create the data dir, master key, database and schema (safe to run again)")
      .option("--json", "print what was created as JSON")
      .action(
        action(ctx, async (opts: { json?: boolean }) => {
          const app = await ctx.open({ mode: "init" });
          const r = app.init;
          if (opts.json) {
            writeJSON(ctx, { dataDir: app.config.dataDir, database: app.db.where, dialect: app.db.dialect, masterKeyId: app.keyring.masterKeyId, ...r });
            return;
          }
          writeLine(ctx, `data dir:   ${escapeControls(app.config.dataDir)}${r.createdDataDir ? " (created)" : ""}`);
          writeLine(ctx, `database:   ${escapeControls(app.db.where)} [${app.db.dialect}]${r.createdDatabase ? " (created)" : ""}`);
          writeLine(ctx, `master key: ${app.keyring.masterKeyId}${r.createdMasterKeyFile ? " (new key file, mode 0600 — back it up: without it encrypted data is lost)" : ""}`);
          writeLine(ctx, `migrations: ${r.migrationsApplied.length ? `applied ${r.migrationsApplied.join(", ")}` : "up to date"}`);
          if (r.keysCreated.length) writeLine(ctx, `keys:       created ${r.keysCreated.join(", ")}`);
          writeLine(ctx, "Bulwark is initialised.");
        }),
      );
  },
} satisfies CommandModule;
