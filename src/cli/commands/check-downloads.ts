// `bulwark check downloads SHA256SUMS [--dir D]`: verify release artifacts against published checksums.
import type { Command } from "commander";
import { addCheckOptions, finishCheck, parseBytes, type CheckOptions } from "../check-common.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { action, group } from "../run.ts";

interface DownloadsOptions extends CheckOptions {
  dir?: string;
  ignoreMissing?: boolean;
  maxFileBytes?: string;
}

export default {
  register(program: Command, ctx: CliContext): void {
    const check = group(program, "check", "run a security check and print findings");
    addCheckOptions(
      check
        .command("downloads")
        .description(
          "verify files against a checksum file in sha256sum (\"HASH  name\", \"HASH *name\") or BSD (\"SHA256 (name) = HASH\") format; " +
            "names that lead outside the directory are refused, never read",
        )
        .argument("<sums>", "the checksum file, e.g. SHA256SUMS")
        .option("--dir <dir>", "directory holding the files (default: the checksum file's directory)")
        .option("--ignore-missing", "do not report listed files that do not exist, like sha256sum -c --ignore-missing (still a finding when none exists)")
        .option("--max-file-bytes <n>", "largest listed file hashed (K, M, G, T suffixes; default 64G); a larger one is reported high as not verified"),
    ).action(
      action(ctx, async (sums: string, opts: DownloadsOptions) => {
        const maxFileBytes = parseBytes("--max-file-bytes", opts.maxFileBytes);
        const { verifyDownloads } = await import("../../checks/downloads/index.ts");
        const r = await verifyDownloads({ sums, dir: opts.dir, ignoreMissing: opts.ignoreMissing === true, ...(maxFileBytes === undefined ? {} : { maxFileBytes }) });
        const absent = r.missingIgnored > 0 ? `; ${r.missingIgnored} listed but absent (--ignore-missing)` : "";
        return finishCheck(ctx, opts, {
          check: "downloads",
          findings: r.findings,
          extra: { dir: r.dir, entries: r.entries, ok: r.ok, verified: r.okNames, missingIgnored: r.missingIgnored },
          summary: [`${r.ok} of ${r.entries} listed file(s) verified in ${r.dir}${absent}`],
        });
      }),
    );
  },
} satisfies CommandModule;
