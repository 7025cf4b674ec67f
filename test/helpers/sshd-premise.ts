// The installed sshd as ground truth for the ssh check's red-team tests: `sshd -T` on a file, and a premise check.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { findSshd, runSshdTest, type MatchContext, type SshdResult } from "../../src/checks/ssh/index.ts";

/**
 * `sshd -T` over files written to a temp dir under `prefix` (removed after the calling test file), and `premise`, which
 * re-checks what a test assumes sshd does — a no-op where sshd is not installed or cannot run here (no /run/sshd).
 * Call it at the top of a test file.
 *
 * @example
 * const { premise } = sshdGroundTruth("bulwark-sshd-shapes-");
 * await premise("PermitRootLogin yes\n", "permitrootlogin", (v) => v === "yes");
 */
export function sshdGroundTruth(prefix: string): {
  usable: boolean;
  sshdOn: (text: string, match?: MatchContext) => Promise<SshdResult | null>;
  premise: (text: string, key: string, holds: (value: string) => boolean, match?: MatchContext) => Promise<void>;
} {
  const sshd = findSshd();
  const usable = sshd !== null && existsSync("/run/sshd");
  const root = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(root, { recursive: true, force: true }));
  let cases = 0;
  const sshdOn = async (text: string, match?: MatchContext): Promise<SshdResult | null> => {
    if (!usable) return null;
    const dir = join(root, `case${cases++}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "sshd_config"), text);
    return runSshdTest(sshd as string, join(dir, "sshd_config"), match);
  };
  const premise = async (text: string, key: string, holds: (value: string) => boolean, match?: MatchContext): Promise<void> => {
    const r = await sshdOn(text, match);
    if (r === null) return;
    assert.ok(r.ok, `premise: sshd -T accepts this file (${r.ok ? "" : r.message})`);
    assert.ok(holds(r.values[key] ?? ""), `premise: sshd -T prints ${key} ${r.values[key]}`);
  };
  return { usable, sshdOn, premise };
}
