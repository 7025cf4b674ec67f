// An administrator creating an account on a test fixture's store, both ways: POST /api/v1/users with an API token, and
// `bulwark users create` in this process with a password typed on stdin.
import { PassThrough } from "node:stream";
import type { LightMyRequestResponse } from "fastify";
import { HOST, type AuthFixture } from "../../src/http/auth/test-client.ts";
import { bulwarkInProcess, fixtureCliEnv } from "./cli.ts";
import type { DialectFixture } from "./dialects.ts";
import { testMasterKey } from "./master-key.ts";

/** The password the CLI's create reads from stdin. */
export const CLI_PASSWORD = "a long and unusual passphrase 42\n";

/**
 * `api(body)`: POST /api/v1/users with the token `writer()` returns; `cli(args)`: `bulwark users create ARGS` on the
 * fixture's database (its PostgreSQL URL and master key, `label`'s, when the dialect has one).
 *
 * @example
 * const creates = adminCreates(() => fx, dx, LABEL, () => writer);
 * await creates.api({ email }); await creates.cli(["--email", email]);
 */
export function adminCreates(fx: () => AuthFixture, dx: Pick<DialectFixture, "lastTarget">, label: string, writer: () => string): {
  api(body: Record<string, unknown>): Promise<LightMyRequestResponse>;
  cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
} {
  return {
    api: (body) => fx().server.inject({ method: "POST", url: "/api/v1/users", headers: { host: HOST, authorization: `Bearer ${writer()}`, "content-type": "application/json" }, payload: JSON.stringify(body) }),
    cli: (args) => {
      const url = dx.lastTarget().databaseURL;
      const stdin = new PassThrough();
      stdin.end(CLI_PASSWORD);
      return bulwarkInProcess(["users", "create", ...args], fixtureCliEnv(fx().app.config.dataDir, url ? { url, masterKey: testMasterKey(label) } : null), stdin);
    },
  };
}
