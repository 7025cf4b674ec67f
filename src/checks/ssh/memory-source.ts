// A ConfigSource over an in-memory map of path → text: lets tests and callers that already hold the
// files (e.g. from a container image) evaluate a configuration without touching the disk.
import { posix } from "node:path";
import { SshConfigUnreadableError } from "./errors.ts";
import { globMatch } from "./glob.ts";
import type { ConfigSource } from "./parser.ts";

/**
 * @example
 * const source = memorySource({ "/etc/ssh/sshd_config": "Include sshd_config.d/*.conf\n" });
 */
export function memorySource(files: Readonly<Record<string, string>>): ConfigSource {
  return {
    read(path: string): string {
      const text = Object.hasOwn(files, path) ? files[path] : undefined;
      if (text === undefined) throw new SshConfigUnreadableError(path, "no such file");
      return text;
    },
    glob(pattern: string): string[] {
      // A map has no symbolic links: ".." may be resolved lexically here.
      const segs = posix.normalize(pattern).split("/");
      return Object.keys(files)
        .filter((p) => {
          const parts = p.split("/");
          return parts.length === segs.length && parts.every((part, i) => globMatch(part, segs[i] ?? ""));
        })
        .sort();
    },
  };
}
