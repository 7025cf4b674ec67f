// Test support shared by the notify tests: a migrated database, an outbox, a local SMTP server and a transport.
import assert from "node:assert/strict";
import { Keyring } from "../crypto/keyring.ts";
import { ManualClock } from "../lib/clock.ts";
import { systemRandom } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { createKeyStore } from "../store/key-store.ts";
import { migrate } from "../store/migrator.ts";
import { MIGRATIONS } from "../store/migrations/index.ts";
import type { MailConfig } from "./config.ts";
import { Outbox } from "./outbox.ts";
import { startTestSMTPServer, type Responder, type TestSMTPServer } from "./smtp-test-server.ts";
import { createSMTPTransport, type MailTransport } from "./transport.ts";

export const FROM = "security@bulwark.test";

export interface NotifyFixture {
  clock: ManualClock;
  /** The keyring that seals link bodies (key rotation re-seals them). */
  keyring: Keyring;
  outbox: Outbox;
  server: TestSMTPServer;
  transport(extra?: Partial<MailConfig>): Promise<MailTransport>;
  close(): Promise<void>;
}

/** Migrates `db`, starts an SMTP server. */
export async function notifyFixture(db: Database, respond?: Responder): Promise<NotifyFixture> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  const outcome = await migrate(db, clock, MIGRATIONS);
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(db), clock, random: systemRandom });
  await keyring.ensureKeys();
  const server = await startTestSMTPServer(respond);
  const transports: MailTransport[] = [];
  return {
    clock,
    keyring,
    // Link bodies sealed at rest, as the server's keyring does.
    outbox: new Outbox({ database: db, clock, random: systemRandom, linkCipher: keyring }),
    server,
    async transport(extra = {}) {
      // The test server offers no STARTTLS: clear text is opted into explicitly, as an operator would.
      const t = await createSMTPTransport({ smtp: { host: "127.0.0.1", port: server.port, secure: false, requireTLS: false, pool: true, maxConnections: 3 }, from: FROM, ...extra });
      transports.push(t);
      return t;
    },
    async close() {
      for (const t of transports) await t.close();
      await server.close();
    },
  };
}
