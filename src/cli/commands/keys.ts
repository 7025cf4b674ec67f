// `bulwark keys rotate-master [--dry-run] [--yes] [--print-key] [--json]`: moves the store to a new master key, for when
// the old one may have been copied (root on the server, SourceLair 2014, seed 001). Its own group, not a containment
// lever (levers are resumable jobs over accounts, with undo; this is one transaction and a file rename, and cannot be
// undone) nor an `audit` command (it concerns every key, not the log's). Exit codes: 0 done, 2 refused, 3 failure.
import { join } from "node:path";
import type { CommandModule } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { confirmOrRefuse } from "../prompt.ts";
import { action, cliActor, escapedLines, group, writeFlushed, writeJSON, writeLine, writeNote } from "../run.ts";
import { InputError } from "../../lib/errors.ts";
import { toBase64 } from "../../lib/encoding.ts";
import type { RandomSource } from "../../lib/random.ts";
import { inertJSON } from "../../lib/terminal.ts";
import type { MasterKeyRotation } from "../../store/key-store.ts";

/** The audit event of a master key rotation: old and new masterKeyId (fingerprints), never a key. */
export const MASTER_ROTATED_EVENT = "keys.master-rotated";

/**
 * A new master key from the app's random source (node:crypto's CSPRNG). parseMasterKey refuses, as placeholders, the
 * keys a random source almost never yields (fewer than 16 distinct bytes: below 2^-40); one printed for
 * BULWARK_MASTER_KEY must pass it at the next start, so such a draw is drawn again.
 */
async function newMasterKey(random: RandomSource): Promise<Uint8Array> {
  const { parseMasterKey } = await import("../../crypto/master-key.ts");
  for (let attempt = 1; ; attempt++) {
    const key = random.bytes(32);
    try {
      return parseMasterKey(toBase64(key), "the new master key");
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}

export default {
  register(program, ctx) {
    const keys = group(program, "keys", "the keyring's master key");
    keys
      .command("rotate-master")
      .description(
        "replace the master key (after it may have been copied): every stored key is wrapped again under a new one, in one transaction; " +
          "the key file is replaced, or with BULWARK_MASTER_KEY the new key is printed once (--print-key)",
      )
      .option("--dry-run", "count the keys that would be wrapped again, by purpose, after checking each unwraps; change nothing")
      .option("--yes", "do not ask for confirmation")
      .option("--print-key", "with BULWARK_MASTER_KEY: print the new key once on stdout, for your secret store (required then: there is nowhere else to put it)")
      .option("--json", "print the result as JSON")
      .action(
        action(ctx, async (opts: { dryRun?: boolean; yes?: boolean; printKey?: boolean; json?: boolean }) => {
          const app = await ctx.app();
          const { MASTER_KEY_FILE } = await import("../../app/open-app.ts");
          const { discardPendingMasterKey, installPendingMasterKey, writePendingMasterKey } = await import("../../crypto/master-key.ts");
          const { masterKeyCheck } = await import("../../crypto/keyring.ts");
          const { recordedMasterKeyCheck, rotateMasterKey } = await import("../../store/key-store.ts");
          const fromEnvironment = app.config.masterKeyText !== null;
          const keyFile = join(app.config.dataDir, MASTER_KEY_FILE);
          const source = fromEnvironment ? "BULWARK_MASTER_KEY" : keyFile;

          if (opts.dryRun) {
            // A throwaway key: the dry run wraps every key again in memory, so that a key that does not unwrap is found now.
            const r = await rotateMasterKey(app.db, app.keyring, await newMasterKey(app.random), { dryRun: true });
            if (opts.json) return writeJSON(ctx, { dryRun: true, from: r.from, source, rewrapped: r.rewrapped, tagKeyStored: r.tagKeyStored });
            writeLine(ctx, `dry run: master key ${r.from} (from ${source}) would be replaced; keys wrapped again: ${Object.entries(r.rewrapped).map(([p, n]) => `${p} ${n}`).join(", ")}`);
            if (r.tagKeyStored) writeLine(ctx, "the identifier tag key would be stored as a key of its own (tags in the audit log and flood control stay the same)");
            writeLine(ctx, fromEnvironment ? "the new key would be printed once (--print-key); no file written" : `${keyFile} would be replaced by the new key`);
            writeLine(ctx, "nothing changed");
            return;
          }
          // Refused before anything is written: the new key would exist nowhere but on a terminal nobody asked to show it.
          if (fromEnvironment && !opts.printKey) {
            throw new InputError(
              "BULWARK_ERR_USAGE",
              "the master key comes from BULWARK_MASTER_KEY, so the new key can only be handed over on stdout: add --print-key, " +
                "and have your secret store ready (see --dry-run first)",
            );
          }
          await confirmOrRefuse(ctx, {
            yes: opts.yes,
            question: `Replace master key ${app.keyring.masterKeyId} (${source})? Servers holding the old key must be restarted. Type "yes" to go on: `,
            noTerminal: () => new InputError("BULWARK_ERR_USAGE", "replacing the master key needs confirmation: add --yes (see --dry-run first)"),
            declined: () => new InputError("BULWARK_ERR_USAGE", "not confirmed: the master key was not replaced"),
          });

          const newMaster = await newMasterKey(app.random);
          const next = [
            ...(fromEnvironment
              ? ["put the new key in your secret store as BULWARK_MASTER_KEY now, then restart every process with it: one still holding the old key " +
                  "keeps working with the keys it has, but fails (BULWARK_ERR_MASTER_KEY_ROTATED) on any key made from now on"]
              : ["servers reading this key file take the new key on their own; restart any node given the old key otherwise (BULWARK_MASTER_KEY, " +
                  "a copy of the file): it keeps working with the keys it has, but fails (BULWARK_ERR_MASTER_KEY_ROTATED) on any key made from now on"]),
            "run `bulwark contain rotate-keys --all --yes` too: values sealed before stay under data keys the old master key unwrapped; rotate-keys seals them again under a data key it never saw",
            "run `bulwark audit rotate-signing-key`: the audit signing key in force was wrapped under the old master key, and a copy of it would vouch for a rewritten log; the new one is made under the new master key",
            "if a copy of the database may have gone with the old key (a backup, root on the server), what was sealed in it stays usable after re-sealing — " +
              "TOTP seeds, connected accounts' tokens — and its password hashes can be cracked: " +
              "`bulwark contain require-mfa-reenrolment unlink-sso invalidate-passwords --all --yes` (docs/containment.md, 'When the master key may be copied too')",
            "backups made before this rotation still open with the old master key only: keep it with them, or destroy both",
          ];
          const report = (rotation: MasterKeyRotation): string => {
            if (opts.json) {
              return `${inertJSON({ dryRun: false, from: rotation.from, to: rotation.to, source, rewrapped: rotation.rewrapped, tagKeyStored: rotation.tagKeyStored, event: MASTER_ROTATED_EVENT, next, ...(fromEnvironment ? { newMasterKey: toBase64(newMaster) } : {}) }, 2)}\n`;
            }
            return [
              `master key ${rotation.from} replaced by ${rotation.to}; keys wrapped again: ${Object.entries(rotation.rewrapped).map(([p, n]) => `${p} ${n}`).join(", ")} (${MASTER_ROTATED_EVENT})`,
              ...(rotation.tagKeyStored ? ["the identifier tag key is now stored under the new master key: tags in the audit log and flood control are unchanged"] : []),
              fromEnvironment ? `new BULWARK_MASTER_KEY: ${toBase64(newMaster)}` : `${keyFile} now holds the new key (mode 0600); the old key file is gone`,
              "next:",
              ...next.map((step) => `  - ${step}`),
            ].map((line) => `${escapedLines(line)}\n`).join("");
          };
          // With BULWARK_MASTER_KEY, stdout is the only place the new key goes: it is handed over inside the rotation's
          // transaction, and the COMMIT waits until stdout has taken it. Printed after the commit, a full disk under
          // `> key.txt` or a secret-store client that exited first lost the only copy of the key everything is wrapped
          // under (a closed pipe even exited 0). Until the hand-over is done the exit code says failure: the rejected
          // write rolls the rotation back and the command exits 3 (a failing stdout no longer ends the process, main.ts).
          let handedOver = false;
          const handOver = async (rotation: MasterKeyRotation): Promise<void> => {
            process.exitCode = EXIT.runtime;
            if (!opts.json) writeNote(ctx, "WARNING: the new master key follows, printed this once and kept nowhere else: without it every secret in the store is lost. Do not paste it into a ticket or a chat.");
            await writeFlushed(ctx.stdout, report(rotation));
            handedOver = true;
          };
          // The key file first, synced (pending beside the old one), then the transaction, then the rename: a crash in
          // between leaves a pending file that the next open takes only if the store records its key (findRotatedMasterKey).
          if (!fromEnvironment) writePendingMasterKey(keyFile, newMaster);
          let rotation: MasterKeyRotation;
          try {
            rotation = await rotateMasterKey(app.db, app.keyring, newMaster, {
              inTransaction: async (trx, r) => {
                await app.audit.appendIn(trx, {
                  type: MASTER_ROTATED_EVENT, actor: cliActor(),
                  data: { from: r.from, to: r.to, source: fromEnvironment ? "environment" : "file", rewrapped: r.rewrapped, tagKeyStored: r.tagKeyStored },
                });
                if (fromEnvironment) await handOver(r);
              },
            });
          } catch (error) {
            // A COMMIT whose answer was lost may have committed: ask the store which key it records before saying anything.
            const recorded = await recordedMasterKeyCheck(app.db).catch(() => undefined);
            if (fromEnvironment) {
              if (!handedOver) throw error; // nothing printed, nothing committed: the old key is the key
              if (recorded === masterKeyCheck(newMaster)) {
                writeNote(ctx, `bulwark: the rotation committed although the database reported an error (${(error as Error).message}): the key printed above is the master key now`);
                return EXIT.ok;
              }
              writeNote(ctx, recorded === undefined
                ? "bulwark: the store could not be asked whether the rotation committed: start a process with the key printed above; if it is refused, the old key is still the master key"
                : "bulwark: the rotation did not commit: the key printed above is NOT in use; the old BULWARK_MASTER_KEY still is");
              throw error;
            }
            // The pending file goes only when the store surely does not record its key: a COMMIT whose answer was lost may
            // have committed, and removing the file then would lose the only copy of the key everything is wrapped under.
            if (recorded === undefined) {
              writeNote(ctx, `bulwark: the store could not be asked whether the rotation committed; ${keyFile}.pending is left in place: the next start takes it if the store records its key`);
              throw error;
            }
            if (recorded !== masterKeyCheck(newMaster)) {
              discardPendingMasterKey(keyFile);
              throw error;
            }
            // Committed after all: the file is moved into place below.
            rotation = { from: app.keyring.masterKeyId, to: masterKeyCheck(newMaster).slice(0, 16), rewrapped: {}, tagKeyStored: false, dryRun: false };
            writeNote(ctx, `bulwark: the rotation committed although the database reported an error (${(error as Error).message})`);
          }
          if (fromEnvironment) return EXIT.ok; // handed over before the commit
          // Done already when a server reading the key table since the COMMIT moved the pending file into place itself.
          installPendingMasterKey(keyFile, newMaster);
          ctx.stdout.write(report(rotation));
          return EXIT.ok;
        }),
      );
  },
} satisfies CommandModule;
