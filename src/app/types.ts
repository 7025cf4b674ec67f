// The composition root's product: every service a shell (CLI or HTTP) may use.
import type { Logger } from "pino";
import type { AuditLog } from "../audit/index.ts";
import type { Keyring } from "../crypto/index.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/index.ts";
import type { CheckRunStore } from "../checks/record.ts";
import type { Config } from "./config.ts";
import type { AccountServices } from "./accounts.ts";

export interface App {
  config: Config;
  clock: Clock;
  random: RandomSource;
  logger: Logger;
  db: Database;
  keyring: Keyring;
  audit: AuditLog;
  checkRuns: CheckRunStore;
  accounts: AccountServices;
  close(): Promise<void>;
}
