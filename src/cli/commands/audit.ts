// `bulwark audit verify|export|tail|checkpoint|repair-head`: read and prove the hash-chained audit log.
import { accessSync, constants, createReadStream, existsSync, linkSync, renameSync, statSync, unlinkSync } from "node:fs";
import { open, rm, type FileHandle } from "node:fs/promises";
import { once } from "node:events";
import { basename, dirname, join, resolve as resolvePath } from "node:path";
import type { AuditEvent, Checkpoint, TrustedKey, VerifyReport } from "../../audit/index.ts";
import { isoOrNull } from "../../lib/calendar.ts";
import { InputError, isBulwarkError, RuntimeFailure } from "../../lib/errors.ts";
import { escapeControls, inertJSON } from "../../lib/terminal.ts";
import { writeAll } from "../../lib/write-all.ts";
import { boundedLines } from "../../checks/files/line-reader.ts";
import { scanJSONKeys } from "../../lib/json-keys.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { EXIT, type ExitCode } from "../exit-codes.ts";
import { action, cliActor, collect, group, progress, writeJSON, writeLine, writeNote } from "../run.ts";
import { parseTime } from "../time.ts";


/** A JSON-lines file's objects with their line numbers; any other line (bad JSON, null, a number, an array) is refused by file and line. */
async function* jsonLines(path: string, what: string): AsyncGenerator<{ line: number; value: Record<string, unknown> }> {
  checkReadable(path, what);
  try {
    for await (const { number: line, bytes, overlong } of boundedLines(createReadStream(path), MAX_LINE_BYTES)) {
      if (overlong) throw new InputError("BULWARK_ERR_USAGE", `${what} ${path}, line ${line}: longer than ${MAX_LINE_BYTES} bytes; not an audit file`);
      const text = bytes.toString("utf8").replace(/\r$/, "");
      if (text.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (cause) {
        throw new InputError("BULWARK_ERR_USAGE", `${what} ${path}, line ${line}: not valid JSON`, { cause });
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InputError("BULWARK_ERR_USAGE", `${what} ${path}, line ${line}: not a JSON object`);
      // JSON.parse keeps the last of two equal keys; a reader of the file may see the first. Bulwark never writes a
      // repeated key, so such a line was edited to show one value while another is verified.
      const { duplicate } = scanJSONKeys(text);
      if (duplicate) throw new InputError("BULWARK_ERR_USAGE", `${what} ${path}, line ${line}: has the key ${inertJSON(duplicate.path.slice(0, 80))} more than once; Bulwark never writes a repeated key`);
      yield { line, value: value as Record<string, unknown> };
    }
  } catch (error) {
    if (isBulwarkError(error)) throw error;
    throw new InputError("BULWARK_ERR_USAGE", `cannot read ${what} ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
}

/**
 * An event line is at most ~70 KiB (64 KiB of data, the other fields bounded); past this a file is not an export,
 * and reading on would hold the whole "line" in memory (a 600 MB file without a newline ran out of string length).
 */
const MAX_LINE_BYTES = 1024 * 1024;

/** Refuses, by name, an input file that is missing or a directory (reading one failed with a raw EISDIR, exit 3). */
function checkReadable(path: string, what: string): void {
  let stat;
  try {
    stat = statSync(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new InputError("BULWARK_ERR_USAGE", code === "ENOENT" ? `${what} ${path} does not exist` : `cannot read ${what} ${path} (${code ?? "error"})`, { cause });
  }
  if (stat.isDirectory()) throw new InputError("BULWARK_ERR_USAGE", `${what} ${path} is a directory, not a file`);
}

/**
 * Refuses, before anything is done, an output file that exists or whose directory is missing, not a directory or
 * not writable: `audit checkpoint --export` used to sign a checkpoint first and then fail with a raw ENOENT.
 */
function checkWritable(path: string, option: string): void {
  if (existsSync(path)) throw new InputError("BULWARK_ERR_USAGE", `${option} ${path} already exists; refusing to overwrite it`);
  const dir = dirname(resolvePath(path));
  try {
    if (!statSync(dir).isDirectory()) throw new InputError("BULWARK_ERR_USAGE", `${option} ${path}: ${dir} is not a directory`);
    accessSync(dir, constants.W_OK);
  } catch (cause) {
    if (isBulwarkError(cause)) throw cause;
    const code = (cause as NodeJS.ErrnoException).code ?? "error";
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" || code === "EPERM" ? "is not writable" : code === "ENOTDIR" ? "is not a directory" : `cannot be used (${code})`;
    throw new InputError("BULWARK_ERR_USAGE", `${option} ${path}: the directory ${dir} ${why}`, { cause });
  }
}

async function readCheckpoints(path: string): Promise<Checkpoint[]> {
  const out: Checkpoint[] = [];
  for await (const { line, value: o } of jsonLines(path, "checkpoint file")) {
    if (typeof o["seq"] !== "number" || typeof o["hash"] !== "string" || typeof o["signature"] !== "string" || typeof o["keyId"] !== "string" || typeof o["at"] !== "number") {
      throw new InputError("BULWARK_ERR_USAGE", `checkpoint file ${path}, line ${line}: needs seq, hash, at, keyId and signature`);
    }
    if (o["publicKey"] !== undefined && o["publicKey"] !== null && typeof o["publicKey"] !== "string") {
      throw new InputError("BULWARK_ERR_USAGE", `checkpoint file ${path}, line ${line}: publicKey must be text (base64url SPKI) when given`);
    }
    out.push(o as unknown as Checkpoint);
  }
  return out;
}

type Keys = Array<{ fingerprint: string; pinned: boolean }>;

/**
 * A stored time for a person to read: ISO 8601, or, for one no Date can hold (no append writes it: an altered
 * row), the stored number flagged as such. Never throws, so one altered time neither crashes a report nor hides
 * the events `audit tail` would print after it.
 */
function shownTime(ms: number): string {
  return isoOrNull(ms) ?? `TIME NOT AS BULWARK WRITES IT (altered row) ${ms}`;
}

function printReport(ctx: CliContext, report: VerifyReport, keys: Keys | null, json: boolean | undefined): ExitCode {
  if (json) {
    writeJSON(ctx, keys ? { ...report, signingKeys: keys } : report);
    return report.ok ? EXIT.ok : EXIT.fails;
  }
  if (!report.ok) {
    // The id and the problem quote stored (perhaps forged) text: escaped, or it could redraw this very line.
    writeLine(ctx, escapeControls(`audit chain BROKEN at event #${report.problem?.seq}${report.problem?.id ? ` (${report.problem.id})` : ""}: ${report.problem?.problem}`));
    return EXIT.fails;
  }
  const range = report.firstSeq > 1 ? `events #${report.firstSeq} to #${report.lastSeq} (a partial export: its link to #${report.firstSeq - 1} is trusted, not checked)` : `${report.events} events`;
  writeLine(ctx, `audit chain intact: ${range}, ${report.checkpointsChecked} checkpoint(s) verified, head #${report.lastSeq} ${report.lastHash.slice(0, 16)}…`);
  if (report.lastEventAt !== null) {
    // A log cut back to a stored checkpoint ends there, intact: only these times can show it ends too early.
    const checkpoint = report.lastCheckpointAt !== null ? `; newest verified checkpoint #${report.lastCheckpointSeq} signed ${shownTime(report.lastCheckpointAt)}` : "";
    writeLine(ctx, `  newest event #${report.lastSeq} appended ${shownTime(report.lastEventAt)}${checkpoint} (a log ending earlier than you expect was cut back)`);
  }
  if (report.checkpointsBeforeStart > 0) writeLine(ctx, `  ${report.checkpointsBeforeStart} checkpoint(s) before event #${report.firstSeq} were NOT checked: they fall before the first event of the file`);
  if (report.checkpointsUnchecked > 0) writeLine(ctx, `  ${report.checkpointsUnchecked} stored checkpoint(s) matched by hash only: their signatures could not be checked here`);
  if (report.uncovered > 0) {
    writeLine(ctx, `  ${report.uncovered} event(s) after ${report.lastCheckpointSeq > 0 ? `the last verified checkpoint (#${report.lastCheckpointSeq})` : "the start"} are covered by no verified signature: ` +
      "whoever could write the log could have rewritten them, head included, unseen; only a checkpoint exported later (audit checkpoint --export) protects them");
  }
  for (const k of keys ?? []) {
    writeLine(ctx, `  checkpoint signatures verified with key ${k.fingerprint}${k.pinned ? " (pinned by --public-key)" : " (taken from the checkpoint file: compare it with the fingerprint recorded at export, or pin it with --public-key)"}`);
  }
  return EXIT.ok;
}

/** An event as one export line: an altered row's unparseable data goes out verbatim as `rawData`, `data` null. */
function exportLine(e: AuditEvent): string {
  // inertJSON: C1 controls (an 8-bit terminal's CSI/OSC) escaped too; the line parses to the same value.
  return `${inertJSON(e.rawData === undefined ? e : { ...e, data: null })}\n`;
}

/** Export lines are gathered into writes of about this many bytes (one write per line was a system call per event). */
const WRITE_CHUNK = 256 * 1024;

/**
 * Writes `lines` to a temporary file beside `path`, synced, and links it into place only once it is complete, so a
 * failure halfway (reading the store, a full disk) never leaves a partial file that looks like a whole export, nor
 * the temporary file: a retry is not refused for either. Refuses to overwrite `path`. `option` names it in messages.
 */
async function writeComplete(path: string, option: string, lines: AsyncIterable<string> | Iterable<string>): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.partial`);
  let handle: FileHandle;
  try {
    // wx: never through a link, a FIFO or a file planted at the temporary name.
    handle = await open(temp, "wx", 0o600);
  } catch (cause) {
    throw new InputError("BULWARK_ERR_USAGE", `${option} ${path}: cannot create a file in ${dirname(path)} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  const written = async (io: Promise<void>): Promise<void> => {
    try {
      await io;
    } catch (cause) {
      // A full disk, a quota, a file size limit: exit 3 naming the file (it hung on a 'drain' that never came, exit 13).
      throw new RuntimeFailure("BULWARK_ERR_OUTPUT_WRITE", `${option} ${path}: cannot write it (${(cause as Error).message}); it was not created`, { cause });
    }
  };
  try {
    let chunk: string[] = [];
    let size = 0;
    for await (const line of lines) {
      chunk.push(line);
      size += line.length;
      if (size < WRITE_CHUNK) continue;
      await written(writeAll(handle, Buffer.from(chunk.join(""), "utf8")));
      chunk = [];
      size = 0;
    }
    await written(writeAll(handle, Buffer.from(chunk.join(""), "utf8")));
    // On disk before it has its name: after a power loss the name must not hold an empty or partial file.
    await written(handle.sync());
    await written(handle.close());
    try {
      // link() fails when `path` exists, where rename() would silently replace it.
      linkSync(temp, path);
      unlinkSync(temp);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new InputError("BULWARK_ERR_USAGE", `${option} ${path} already exists; refusing to overwrite it`);
      if (existsSync(path)) throw error;
      renameSync(temp, path); // a file system without hard links
    }
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temp, { force: true });
    throw error;
  }
}

export default {
  register(program, ctx) {
    const audit = group(program, "audit", "the tamper-evident audit log");

    audit
      .command("verify")
      .description("verify the hash chain, its head and its signed checkpoints (exit 1 names the first broken event)")
      .option("--checkpoints <file>", "also hold the chain against checkpoints exported earlier (JSON lines)")
      .option("--file <export>", "verify an exported log (JSON lines) offline, without the database; it must start at event #1")
      .option("--partial", "with --file: accept an export that starts after event #1 (audit export --since); its first link is trusted")
      .option("--public-key <key>", "trust only this key for exported checkpoints (repeatable): base64url SPKI, or a sha256:<hex> fingerprint", collect, [])
      .option("--json", "print the report as JSON")
      .action(
        action(ctx, async (opts: { checkpoints?: string; file?: string; partial?: boolean; publicKey: string[]; json?: boolean }) => {
          const { checkpointKeyCheck, parseTrustedKey } = await import("../../audit/index.ts");
          if (opts.partial && opts.file === undefined) throw new InputError("BULWARK_ERR_USAGE", "--partial applies to an export verified with --file");
          if (opts.publicKey.length > 0 && opts.checkpoints === undefined) throw new InputError("BULWARK_ERR_USAGE", "--public-key applies to the checkpoints given with --checkpoints");
          const trusted: TrustedKey[] = opts.publicKey.map((k) => parseTrustedKey(k));
          const keys = checkpointKeyCheck(trusted);
          const exported = opts.checkpoints !== undefined ? await readCheckpoints(opts.checkpoints) : [];
          if (opts.file !== undefined) {
            const { verifyChain, chainFieldsFromExport } = await import("../../audit/index.ts");
            const file = opts.file;
            const events = (async function* () {
              for await (const { line, value } of jsonLines(file, "export file")) {
                let fields;
                try {
                  fields = chainFieldsFromExport(value as never);
                } catch (error) {
                  // e.g. a line without data: name where it is, not only what.
                  if (isBulwarkError(error)) throw new InputError("BULWARK_ERR_USAGE", `export file ${file}, line ${line}: ${error.message}`, { cause: error });
                  throw error;
                }
                yield fields;
              }
            })();
            // A whole export must start at #1: trusting its first line would let the oldest events be cut away.
            let report = await verifyChain(events, { partial: opts.partial === true, checkpoints: exported, verifySignature: (cp) => keys.verify(cp) });
            // An export of a whole log holds at least the events of init: an empty file is one cut down to nothing.
            if (report.ok && report.events === 0 && opts.partial !== true) {
              report = { ...report, ok: false, problem: { seq: 1, id: "", problem: "the file holds no events, though a whole export starts at event #1 (cut away?)" } };
            }
            // A file that starts later is what `audit export --since` writes: say how to verify that one (the answer
            // stays exit 1, since a whole log cut at its start looks the same).
            if (!report.ok && report.problem?.seq === 1 && opts.partial !== true && report.problem.problem.startsWith("the log starts at event")) {
              report = { ...report, problem: { ...report.problem, problem: `${report.problem.problem} (if this file is an export made with --since, verify it with --partial)` } };
            }
            return printReport(ctx, report, exported.length > 0 ? keys.used() : null, opts.json);
          }
          const app = await ctx.app();
          const bar = progress(ctx, "verifying", 0);
          const report = await app.audit.verify({ exported, verifyExported: (cp) => keys.verify(cp), onProgress: (n) => bar.update(n, n) });
          bar.done();
          return printReport(ctx, report, exported.length > 0 ? keys.used() : null, opts.json);
        }),
      );

    audit
      .command("export")
      .description("print events as JSON lines (one event per line), oldest first")
      .option("--since <time>", "only events at or after this time (ISO 8601, UTC unless it carries an offset; or an age like 24h, 7d)")
      .option("--output <file>", "write to a file instead of stdout (refuses to overwrite; appears only once complete)")
      .action(
        action(ctx, async (opts: { since?: string; output?: string }) => {
          // Given is `!== undefined`: an empty --since used to export the whole log, an empty --output to print it.
          if (opts.output !== undefined) checkWritable(opts.output, "--output");
          const app = await ctx.app();
          const sinceAt = opts.since !== undefined ? parseTime(opts.since, "--since", app.clock.now()) : undefined;
          let n = 0;
          const altered: number[] = [];
          const lines = async function* (): AsyncGenerator<string> {
            for await (const e of app.audit.events(sinceAt === undefined ? {} : { sinceAt })) {
              if (e.rawData !== undefined) altered.push(e.seq);
              yield exportLine(e);
              n++;
            }
          };
          if (opts.output !== undefined) await writeComplete(opts.output, "--output", lines());
          else {
            // once() rejects on 'error': waiting on 'drain' alone hung on a stream that failed instead. A reader that
            // went away (`| head`) has what it wanted: the export stops, quietly; output lost otherwise is exit 3.
            try {
              for await (const line of lines()) if (!ctx.stdout.write(line)) await once(ctx.stdout, "drain");
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code !== "EPIPE") throw error;
            }
          }
          if (altered.length > 0) {
            ctx.stderr.write(`bulwark: warning: ${altered.length} event(s) hold stored data that is not a JSON object, or not in canonical form (an altered row; first #${altered[0]}): ` +
              "exported verbatim as rawData with data null; run `bulwark audit verify`\n");
          }
          if (opts.output !== undefined) writeNote(ctx, `exported ${n} events to ${opts.output}`);
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
          // Digits only, as every other count option of the CLI: Number() took 1e1, 0x2, 0b10, 2.0 and +2.
          const n = /^\d{1,5}$/.test(opts.lines) ? Number(opts.lines) : Number.NaN;
          if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InputError("BULWARK_ERR_USAGE", `--lines must be an integer from 1 to 10000, got "${opts.lines}"`);
          const app = await ctx.app();
          const print = (e: AuditEvent): void => {
            if (opts.json) writeLine(ctx, exportLine(e).trimEnd());
            else {
              const data = e.rawData === undefined ? JSON.stringify(e.data) : `DATA NOT AS BULWARK WRITES IT (altered row) ${JSON.stringify(e.rawData)}`;
              // JSON escapes C0 controls but not C1 (U+0080–U+009F, an 8-bit terminal's CSI/OSC): a user agent stored
              // in a login event must not drive the operator's terminal.
              writeLine(ctx, escapeControls(`#${e.seq} ${shownTime(e.at)} ${e.type} actor=${e.actor}${e.subject ? ` subject=${e.subject}` : ""} ${data}`));
            }
          };
          const events = await app.audit.tail(n);
          events.forEach(print);
          if (!opts.follow) return;
          let last = events.at(-1)?.seq ?? 0;
          let stop = false;
          process.once("SIGINT", () => (stop = true));
          // A reader that went away (`| grep -m1`), or output lost: followed on, it printed nowhere until killed (main.ts
          // keeps a command running when stdout fails, so that work in progress finishes).
          ctx.stdout.once("error", () => (stop = true));
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
      .option("--first", "sign a log that holds no checkpoint yet though its signing key is over an hour old (a store from a Bulwark that signed none at init); compare the log with an export kept elsewhere first: a log rewritten whole looks the same")
      .action(
        action(ctx, async (opts: { export?: string; json?: boolean; first?: boolean }) => {
          // Checked before signing: an export that cannot be written must not leave a checkpoint behind.
          if (opts.export !== undefined) checkWritable(opts.export, "--export");
          const app = await ctx.app();
          const cp = await app.audit.checkpoint({ first: opts.first === true, actor: cliActor() });
          if (opts.export !== undefined) {
            const { keyFingerprint } = await import("../../audit/index.ts");
            const keys = app.keyring.publicKeys();
            const checkpoints = await app.audit.checkpoints();
            const lines = checkpoints.map((c) => `${inertJSON({ ...c, publicKey: keys[c.keyId] })}\n`);
            // Complete or nothing: written in place, a full disk left fewer checkpoints in whole lines, which verify
            // accepted as intact and a retry was refused for. The checkpoint signed above stays in the store either way.
            await writeComplete(opts.export, "--export", lines);
            // Record these fingerprints apart from the file: `audit verify --public-key sha256:…` then trusts only them.
            for (const id of new Set(checkpoints.map((c) => c.keyId))) {
              if (keys[id]) writeNote(ctx, `signing key ${id}: ${keyFingerprint(keys[id])}`);
            }
          }
          if (opts.json) writeJSON(ctx, cp);
          else writeLine(ctx, cp ? `checkpoint at event #${cp.seq} ${cp.hash.slice(0, 16)}… signed by ${cp.keyId}` : "the audit log is empty; nothing to checkpoint");
        }),
      );

    audit
      .command("rotate-signing-key")
      .description("make a new signing key current for checkpoints and file baselines (after a leak): the key, an audit event and a checkpoint it signs commit together; from then on verify refuses checkpoints the old key signs")
      .option("--dry-run", "say which key would be retired, after the checks the real run meets (a chain head that records the log, a log its checkpoint may vouch for); change nothing")
      .option("--json", "print the result as JSON")
      .action(
        action(ctx, async (opts: { dryRun?: boolean; json?: boolean }) => {
          const app = await ctx.app();
          const { rotateSigningKey } = await import("../../audit/index.ts");
          const r = await rotateSigningKey({ database: app.db, keyring: app.keyring, audit: app.audit }, cliActor(), { dryRun: opts.dryRun === true });
          if (opts.json) return writeJSON(ctx, { dryRun: opts.dryRun === true, ...r });
          if (r.to === null) {
            writeLine(ctx, `dry run: signing key ${r.from.keyId} would be retired (${r.from.checkpoints} checkpoint(s) signed with it keep verifying) and a new key would sign a checkpoint at once; nothing changed`);
            return;
          }
          writeLine(ctx, `signing key ${r.from.keyId} retired; ${r.to.keyId} is current and signed the checkpoint at event #${r.checkpoint?.seq} (audit.signing-key-rotated)`);
          writeLine(ctx, `new signing key ${r.to.keyId}: ${r.to.fingerprint}`);
          // The running servers notice within a second. Checkpoints signed earlier keep verifying; file baselines do not
          // (a baseline has no place in the log to hold it to, so one signed by a retired key is no longer trusted).
          writeNote(ctx, "record the new fingerprint apart from the database, export checkpoints again (audit checkpoint --export) for offline verifies pinned with --public-key, and create file baselines again (check files --baseline): those signed with the retired key are no longer trusted");
        }),
      );

    audit
      .command("repair-head")
      .description("move a chain head left behind the stored events (appends fail with BULWARK_ERR_AUDIT_HEAD_BEHIND) to the newest event, once the chain up to it verifies")
      .action(
        action(ctx, async () => {
          const app = await ctx.app();
          const { from, to } = await app.audit.repairHead(cliActor());
          writeLine(ctx, `chain head moved from #${from.seq} to #${to.seq} ${to.hash.slice(0, 16)}… (recorded as audit.head-repaired)`);
        }),
      );
  },
} satisfies CommandModule;
