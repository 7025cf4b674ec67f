// `bulwark audit verify|export|tail|checkpoint`: read and prove the hash-chained audit log.
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Checkpoint, VerifyReport } from "../../audit/index.ts";
import { InputError } from "../../lib/errors.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { EXIT, type ExitCode } from "../exit-codes.ts";
import { action, group, progress, writeJSON, writeLine } from "../run.ts";
import { parseTime } from "../time.ts";

async function* jsonLines(path: string, what: string): AsyncGenerator<Record<string, unknown>> {
  if (!existsSync(path)) throw new InputError("BULWARK_ERR_USAGE", `${what} ${path} does not exist`);
  let line = 0;
  for await (const text of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
    line++;
    if (text.trim() === "") continue;
    try {
      yield JSON.parse(text) as Record<string, unknown>;
    } catch (cause) {
      throw new InputError("BULWARK_ERR_USAGE", `${what} ${path}, line ${line}: not valid JSON`, { cause });
    }
  }
}

async function readCheckpoints(path: string): Promise<Checkpoint[]> {
  const out: Checkpoint[] = [];
  for await (const o of jsonLines(path, "checkpoint file")) {
    if (typeof o["seq"] !== "number" || typeof o["hash"] !== "string" || typeof o["signature"] !== "string" || typeof o["keyId"] !== "string" || typeof o["at"] !== "number") {
      throw new InputError("BULWARK_ERR_USAGE", `checkpoint file ${path}: every line needs seq, hash, at, keyId and signature`);
    }
    out.push(o as unknown as Checkpoint);
  }
  return out;
}

function printReport(ctx: CliContext, report: VerifyReport, json: boolean | undefined): ExitCode {
  if (json) writeJSON(ctx, report);
  else if (report.ok) writeLine(ctx, `audit chain intact: ${report.events} events, ${report.checkpointsChecked} checkpoint(s) verified, head #${report.lastSeq} ${report.lastHash.slice(0, 16)}…`);
  else writeLine(ctx, `audit chain BROKEN at event #${report.problem?.seq}${report.problem?.id ? ` (${report.problem.id})` : ""}: ${report.problem?.problem}`);
  return report.ok ? EXIT.ok : EXIT.fails;
}

export default {
  register(program, ctx) {
    const audit = group(program, "audit", "the tamper-evident audit log");

    audit
      .command("verify")
      .description("verify the hash chain, its head and its signed checkpoints (exit 1 names the first broken event)")
      .option("--checkpoints <file>", "also hold the chain against checkpoints exported earlier (JSON lines)")
      .option("--file <export>", "verify an exported log (JSON lines) offline, without the database")
      .option("--json", "print the report as JSON")
      .action(
        action(ctx, async (opts: { checkpoints?: string; file?: string; json?: boolean }) => {
          const exported = opts.checkpoints ? await readCheckpoints(opts.checkpoints) : [];
          if (opts.file) {
            const { verifyChain, chainFieldsFromExport } = await import("../../audit/index.ts");
            const { verifyWithPublicKey } = await import("../../crypto/keyring.ts");
            const { checkpointMessage } = await import("../../audit/verify.ts");
            const file = opts.file;
            const events = (async function* () {
              for await (const o of jsonLines(file, "export file")) yield chainFieldsFromExport(o as never);
            })();
            const report = await verifyChain(events, {
              partial: true,
              checkpoints: exported,
              verifySignature: (cp) => (cp.publicKey ? verifyWithPublicKey(cp.publicKey, checkpointMessage(cp.seq, cp.hash, cp.at), Buffer.from(cp.signature, "base64url")) : false),
            });
            return printReport(ctx, report, opts.json);
          }
          const app = await ctx.app();
          const bar = progress(ctx, "verifying", 0);
          const report = await app.audit.verify({ exported, onProgress: (n) => bar.update(n, n) });
          bar.done();
          return printReport(ctx, report, opts.json);
        }),
      );

    audit
      .command("export")
      .description("print events as JSON lines (one event per line), oldest first")
      .option("--since <time>", "only events at or after this time (ISO 8601, or an age like 24h, 7d)")
      .option("--output <file>", "write to a file instead of stdout (refuses to overwrite)")
      .action(
        action(ctx, async (opts: { since?: string; output?: string }) => {
          const app = await ctx.app();
          const sinceAt = opts.since ? parseTime(opts.since, "--since", app.clock.now()) : undefined;
          if (opts.output && existsSync(opts.output)) throw new InputError("BULWARK_ERR_USAGE", `--output ${opts.output} already exists; refusing to overwrite it`);
          const out = opts.output ? createWriteStream(opts.output, { flags: "wx", mode: 0o600 }) : ctx.stdout;
          let n = 0;
          for await (const e of app.audit.events(sinceAt === undefined ? {} : { sinceAt })) {
            if (!out.write(`${JSON.stringify(e)}\n`)) await new Promise<void>((r) => out.once("drain", () => r()));
            n++;
          }
          if (opts.output) {
            await new Promise<void>((resolve, reject) => (out as ReturnType<typeof createWriteStream>).end((err?: Error | null) => (err ? reject(err) : resolve())));
            ctx.stderr.write(`exported ${n} events to ${opts.output}\n`);
          }
        }),
      );

    audit
      .command("tail")
      .description("show the newest events")
      .option("-n, --lines <n>", "how many events", "20")
      .option("-f, --follow", "keep printing new events until interrupted")
      .option("--json", "one JSON object per line")
      .action(
        action(ctx, async (opts: { lines: string; follow?: boolean; json?: boolean }) => {
          const n = Number(opts.lines);
          if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InputError("BULWARK_ERR_USAGE", `--lines must be an integer from 1 to 10000, got "${opts.lines}"`);
          const app = await ctx.app();
          const print = (e: { seq: number; at: number; type: string; actor: string; subject: string; data: unknown }): void => {
            if (opts.json) writeLine(ctx, JSON.stringify(e));
            else writeLine(ctx, `#${e.seq} ${new Date(e.at).toISOString()} ${e.type} actor=${e.actor}${e.subject ? ` subject=${e.subject}` : ""} ${JSON.stringify(e.data)}`);
          };
          const events = await app.audit.tail(n);
          events.forEach(print);
          if (!opts.follow) return;
          let last = events.at(-1)?.seq ?? 0;
          let stop = false;
          process.once("SIGINT", () => (stop = true));
          while (!stop) {
            await new Promise((r) => setTimeout(r, 1000));
            for await (const e of app.audit.events({ afterSeq: last })) {
              print(e);
              last = e.seq;
            }
          }
        }),
      );

    audit
      .command("checkpoint")
      .description("sign the current head now; with --export, write every checkpoint (with public keys) to keep elsewhere")
      .option("--export <file>", "write all checkpoints as JSON lines to this file (refuses to overwrite)")
      .option("--json", "print the new checkpoint as JSON")
      .action(
        action(ctx, async (opts: { export?: string; json?: boolean }) => {
          const app = await ctx.app();
          const cp = await app.audit.checkpoint();
          if (opts.export) {
            if (existsSync(opts.export)) throw new InputError("BULWARK_ERR_USAGE", `--export ${opts.export} already exists; refusing to overwrite it`);
            const keys = app.keyring.publicKeys();
            const lines = (await app.audit.checkpoints()).map((c) => JSON.stringify({ ...c, publicKey: keys[c.keyId] }));
            const { writeFileSync } = await import("node:fs");
            writeFileSync(opts.export, lines.map((l) => `${l}\n`).join(""), { flag: "wx", mode: 0o600 });
          }
          if (opts.json) writeJSON(ctx, cp);
          else writeLine(ctx, cp ? `checkpoint at event #${cp.seq} ${cp.hash.slice(0, 16)}… signed by ${cp.keyId}` : "the audit log is empty; nothing to checkpoint");
        }),
      );
  },
} satisfies CommandModule;
