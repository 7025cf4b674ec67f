// A child process for the concurrency test: appends N audit events to the database it is given.
import { AuditLog } from "../../src/audit/audit-log.ts";
import { systemClock } from "../../src/lib/clock.ts";
import { systemRandom } from "../../src/lib/random.ts";
import { openPostgres, openSQLite } from "../../src/store/database.ts";

const [target, countText, label] = process.argv.slice(2) as [string, string, string];
const database = target.startsWith("postgres") ? await openPostgres(target) : openSQLite(target, { create: false });
const audit = new AuditLog({ database, clock: systemClock, random: systemRandom });
for (let i = 0; i < Number(countText); i++) await audit.append({ type: "concurrency.test", actor: label, data: { i } });
await database.close();
