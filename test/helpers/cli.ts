// Runs the `bulwark` CLI in a child process with the pinned Node, as a user would.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

export interface CLIResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function bulwark(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Promise<CLIResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...options.env };
    // Tests decide the environment: nothing leaks in from the developer's shell.
    for (const key of ["BULWARK_DATA_DIR", "BULWARK_DATABASE_URL", "BULWARK_MASTER_KEY", "HOST", "PORT"]) {
      if (!options.env || !(key in options.env)) delete env[key];
    }
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...args], { env, cwd: options.cwd, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}
