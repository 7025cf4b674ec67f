// A ConfigSource over an in-memory map of path → text: lets tests and callers that already hold the
// files (e.g. from a container image) evaluate a configuration without touching the disk.
import { SshConfigUnreadableError } from "./errors.ts";
import type { ConfigSource } from "./parser.ts";
import { matchPattern } from "./patterns.ts";

/**
 * @example
 * const source = memorySource({ "/etc/ssh/sshd_config": "Include sshd_config.d/*.conf\n" });
 */
export function memorySource(files: Readonly<Record<string, string>>): ConfigSource {
  return {
    read(path: string): string {
      const text = files[path];
      if (text === undefined) throw new SshConfigUnreadableError(path, "no such file");
      return text;
    },
    glob(pattern: string): string[] {
      const segs = pattern.split("/");
      return Object.keys(files)
        .filter((p) => {
          const parts = p.split("/");
          return parts.length === segs.length && parts.every((part, i) => !(part.startsWith(".") && /[*?]/.test(segs[i] ?? "")) && matchPattern(part, segs[i] ?? ""));
        })
        .sort();
    },
  };
}
