// --cross-check: runs the installed `sshd -T` on the same file and compares its effective values with
// ours. sshd -T needs a host key (we make a throwaway ECDSA key with node:crypto, so ssh-keygen is not
// needed) and the privilege-separation directory /run/sshd; it never needs a running daemon.
import { execFile, execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childEnvironment } from "../../lib/child-env.ts";
import type { Finding } from "../finding.ts";
import { localPort, type MatchContext } from "./match.ts";
import type { SshConfig } from "./parser.ts";

const CANDIDATES = ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"];

/** Path of the installed sshd, or null. */
export function findSshd(): string | null {
  for (const path of CANDIDATES) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // try the next place
    }
  }
  return null;
}

/** sshd refuses to run -T without its privilege-separation directory; create it when we may. */
export function ensurePrivsepDir(dir = "/run/sshd"): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    return true;
  } catch {
    return false;
  }
}

/** The "-C" argument for a match context. */
export function connectionSpec(ctx: MatchContext): string {
  const parts: string[] = [];
  if (ctx.user !== undefined) parts.push(`user=${ctx.user}`);
  if (ctx.host !== undefined) parts.push(`host=${ctx.host}`);
  if (ctx.addr !== undefined) parts.push(`addr=${ctx.addr}`);
  if (ctx.laddr !== undefined) parts.push(`laddr=${ctx.laddr}`);
  if (ctx.lport !== undefined) parts.push(`lport=${ctx.lport}`);
  if (ctx.rdomain !== undefined) parts.push(`rdomain=${ctx.rdomain}`);
  return parts.join(",");
}

/**
 * The connection to hand `sshd -T -C` so that it evaluates what we evaluate. sshd's test mode refuses
 * a file with "Match LocalPort" unless -C names an lport ("'Match LocalPort' in configuration but
 * 'lport' not in connection test specification"), although the daemon itself runs with it. Without
 * an lport we treat every LocalPort criterion as not matching; sshd does the same when given a port
 * that no criterion names, so that is the port we pass.
 *
 * @example
 * sshdTestContext(loadSshdConfig(path), undefined); // { lport: 65535 } when the file has "Match LocalPort 22"
 */
export function sshdTestContext(config: SshConfig, match: MatchContext | undefined): MatchContext | undefined {
  if (match?.lport !== undefined) return match;
  const named = new Set(config.blocks.flatMap((b) => b.criteria.filter((c) => c.attribute === "localport").map(localPort)));
  if (named.size === 0) return match;
  let port = 65535;
  while (named.has(port)) port--;
  return { ...match, lport: port };
}

export type SshdResult = { ok: true; values: Record<string, string> } | { ok: false; message: string };

/** Groups of a local user as `id -Gn` prints them (what sshd's "Match Group" sees), or undefined. */
export function systemGroups(user: string): string[] | undefined {
  try {
    return execFileSync("id", ["-Gn", "--", user], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000, env: childEnvironment() }).trim().split(/\s+/);
  } catch {
    return undefined;
  }
}

/**
 * Runs `sshd -T -f configPath -o HostKey=<temp key> [-C spec]` and parses its "keyword value" lines
 * (the first line of a repeated keyword wins).
 *
 * @example
 * const r = await runSshdTest("/usr/sbin/sshd", "/etc/ssh/sshd_config");
 */
export async function runSshdTest(sshd: string, configPath: string, match?: MatchContext): Promise<SshdResult> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-sshd-"));
  try {
    const key = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" });
    const keyPath = join(dir, "host_key");
    // sshd refuses a host key readable by others.
    writeFileSync(keyPath, key, { mode: 0o600 });
    const args = ["-T", "-f", configPath, "-o", `HostKey=${keyPath}`];
    if (match !== undefined) args.push("-C", connectionSpec(match));
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(sshd, args, { timeout: 20_000, maxBuffer: 4 << 20, env: childEnvironment() }, (error, out, err) => {
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 255) : 0, stdout: out, stderr: err });
      });
    });
    if (code !== 0) return { ok: false, message: stderr.trim() || `sshd -T exited with ${code}` };
    const values: Record<string, string> = {};
    for (const line of stdout.split("\n")) {
      const sp = line.indexOf(" ");
      if (sp <= 0) continue;
      const k = line.slice(0, sp);
      if (!(k in values)) values[k] = line.slice(sp + 1);
    }
    return { ok: true, values };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Difference {
  keyword: string;
  ours: string;
  sshd: string | null;
}

/** Keywords where our value differs from sshd's (only keywords we evaluate). */
export function differences(ours: Record<string, string>, sshd: Record<string, string>): Difference[] {
  return Object.keys(ours)
    .filter((k) => sshd[k] !== ours[k])
    .map((k) => ({ keyword: k, ours: ours[k] as string, sshd: sshd[k] ?? null }));
}

/** The findings a cross-check produces: one per disagreement, or one when sshd refused the file. */
export function crossCheckFindings(result: SshdResult, ours: Record<string, string>, sshd: string): Finding[] {
  if (!result.ok) {
    return [{
      id: "ssh.cross-check",
      severity: "medium",
      title: "sshd -T rejected a configuration Bulwark accepted",
      detail: result.message.slice(0, 2000),
      evidence: { sshd },
      remediation: "Run `sshd -t` and fix the configuration before reloading sshd; report the difference to Bulwark.",
    }];
  }
  return differences(ours, result.values).map((d) => ({
    id: "ssh.cross-check",
    severity: "medium",
    title: `sshd -T and Bulwark disagree on ${d.keyword}`,
    detail: `Bulwark evaluated "${d.ours}", sshd -T printed ${d.sshd === null ? "nothing" : `"${d.sshd}"`}.`,
    evidence: { sshd, keyword: d.keyword, ours: d.ours, theirs: d.sshd },
    remediation: "Trust sshd's value; report the configuration to Bulwark so the evaluator can be fixed.",
  }));
}
