// `bulwark check ssh`: evaluates sshd_config (Includes, Match blocks, defaults) as `sshd -T` does,
// without a running daemon, and reports risky settings; --cross-check compares with the installed sshd.
import type { Command } from "commander";
import { RuntimeFailure } from "../../lib/errors.ts";
import { addCheckOptions, finishCheck, type CheckOptions } from "../check-common.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { action, group } from "../run.ts";

interface SshOptions extends CheckOptions {
  config: string;
  includeBase: string;
  match?: string;
  crossCheck?: boolean;
}

// The keywords the findings weigh; authenticationmethods decides which of the authentication settings can be used at all.
const SUMMARY_KEYS = ["permitrootlogin", "passwordauthentication", "kbdinteractiveauthentication", "pubkeyauthentication", "authenticationmethods", "permitemptypasswords", "maxauthtries", "usepam", "x11forwarding"];

export default {
  register(program: Command, ctx: CliContext): void {
    const check = group(program, "check", "run a security check and print findings");
    addCheckOptions(
      check
        .command("ssh")
        .description("evaluate sshd_config as sshd -T does (Includes, Match blocks, defaults; no running daemon needed) and report risky settings")
        .option("--config <file>", "sshd configuration file", "/etc/ssh/sshd_config")
        .option("--include-base <dir>", "directory relative Include paths resolve against", "/etc/ssh")
        .option("--match <spec>", "evaluate for one connection, like sshd -T -C: user=U,host=H,addr=A[,laddr=L,lport=P,rdomain=R]")
        .option("--cross-check", "also run the installed sshd -T on the same file and report any difference"),
    ).action(
      action(ctx, async (opts: SshOptions) => {
        const lib = await import("../../checks/ssh/index.ts");
        const config = lib.loadSshdConfig(opts.config, { includeBase: opts.includeBase });
        let match = opts.match === undefined ? undefined : lib.parseMatchSpec(opts.match);
        // "Match Group" needs the user's groups, as sshd looks them up; only ask the system when used.
        const usesGroups = config.blocks.some((b) => b.criteria.some((c) => c.attribute === "group"));
        if (match?.user !== undefined && usesGroups) {
          const groups = lib.systemGroups(match.user);
          if (groups !== undefined) match = { ...match, groups };
        }
        const evaluation = lib.evaluate(config, match === undefined ? {} : { match });
        const findings = match === undefined ? lib.checkSshConfig(config) : lib.sshFindings(evaluation);
        if (opts.crossCheck) {
          const sshd = lib.findSshd();
          if (sshd === null) throw new RuntimeFailure("BULWARK_ERR_SSHD_MISSING", "--cross-check needs sshd (install openssh-server); it was not found in /usr/sbin, /usr/local/sbin or /sbin");
          if (!lib.ensurePrivsepDir()) throw new RuntimeFailure("BULWARK_ERR_SSHD_PRIVSEP", "--cross-check needs the directory /run/sshd and cannot create it (run as root or mkdir -p /run/sshd)");
          const result = await lib.runSshdTest(sshd, opts.config, lib.sshdTestContext(config, match));
          findings.push(...lib.crossCheckFindings(result, evaluation.effective, sshd));
        }
        const summary = [
          `${opts.config}: ${config.files.length} file(s), ${config.blocks.length} Match block(s)${match ? ` evaluated for ${opts.match}` : ""}`,
          ...SUMMARY_KEYS.map((k) => `  ${k} ${evaluation.effective[k]}`),
        ];
        return finishCheck(ctx, opts, { check: "ssh", findings, summary, extra: { effective: evaluation.effective } });
      }),
    );
  },
} satisfies CommandModule;
