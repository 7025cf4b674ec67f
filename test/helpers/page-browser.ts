// Shared set-up of the browser tests of the link pages: Debian's Chromium (playwright-core, never a downloaded
// browser) and an auth fixture listening on a free loopback port that its public URL names.
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { chromium, type Browser as Chromium } from "playwright-core";
import { authFixture, ORIGIN, type AuthFixture } from "../../src/http/auth/test-client.ts";

export const CHROMIUM = process.env["BULWARK_CHROMIUM"] ?? "/usr/bin/chromium";

/** Whether Chromium is installed; says so loudly on stderr, naming the test file, when it is not. */
export function chromiumAvailable(file: string): boolean {
  const available = existsSync(CHROMIUM);
  if (!available) process.stderr.write(`\n[${file}] SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does)\n\n`);
  return available;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/**
 * An auth fixture whose public URL is its own loopback origin, listening there. The URL names the port before the
 * server listens on it, so a port found free can be taken meanwhile by another test file: then another is tried
 * (EADDRINUSE on a loaded CI host). `prepare` runs before it listens (hooks must be added then). `options.hostname`
 * "localhost" names the origin http://localhost:PORT (the server still listens on 127.0.0.1): WebAuthn takes the public
 * URL's host name as its RP ID and refuses an IP address there, so a passkey test needs it.
 */
export async function listeningPagesFixture(prepare?: (fx: AuthFixture) => void, options: { hostname?: "127.0.0.1" | "localhost" } = {}): Promise<{ fx: AuthFixture; origin: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const origin = `http://${options.hostname ?? "127.0.0.1"}:${port}`;
    // The in-process test client (fx.browser()) speaks as https://bulwark.test: trusted next to the real origin.
    const fx = await authFixture({ BULWARK_PUBLIC_URL: origin, BULWARK_TRUSTED_ORIGINS: ORIGIN });
    prepare?.(fx);
    try {
      await fx.server.listen({ host: "127.0.0.1", port });
      return { fx, origin };
    } catch (error) {
      await fx.close();
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt === 5) throw error;
    }
  }
}

/** Launches Chromium headless; `backForwardCache` turns back on what playwright turns off (a user's Chrome has it). */
export function launchChromium(options: { backForwardCache?: boolean } = {}): Promise<Chromium> {
  return chromium.launch({
    executablePath: CHROMIUM,
    ...(options.backForwardCache ? { ignoreDefaultArgs: ["--disable-back-forward-cache"] } : {}),
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
