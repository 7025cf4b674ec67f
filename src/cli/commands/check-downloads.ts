// `bulwark check downloads SHA256SUMS [--dir D]`: verify release artifacts against published checksums.
import type { Command } from "commander";
import { InputError } from "../../lib/errors.ts";
import { addCheckOptions, finishCheck, type CheckOptions } from "../check-common.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { action, group } from "../run.ts";

interface DownloadsOptions extends CheckOptions {
  dir?: string;
  ignoreMissing?: boolean;
  maxFileBytes?: string;
}

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * --max-file-bytes as `check files` reads it: digits and an optional K, M, G or T (powers of 1024). (The same rule
 * and wording as check-files.ts's parseBytes; one shared copy in check-common.ts would be better.)
 */
function parseBytes(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,16})([KMGT]?)$/i.exec(value);
  const n = m ? Number(m[1]) * (UNITS[(m[2] as string).toUpperCase()] as number) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw new InputError("BULWARK_ERR_USAGE", `${option} must be a number of bytes, optionally followed by K, M, G or T (e.g. 4G), got "${value.slice(0, 20)}"`);
  }
  return n;
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
