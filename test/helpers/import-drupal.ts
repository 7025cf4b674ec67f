// A Drupal 7 `users` export imported as `bulwark users import --preset drupal7 users.csv` runs it (no --skip-bad, on
// conflict fail, unless `extra` says otherwise), for the rounds that attack what an import stores.
import { checkHeader, importUsers, resolveMap } from "../../src/accounts/import/index.ts";
import type { ImportDeps, ImportOptions, ImportReport } from "../../src/accounts/import/index.ts";

/**
 * @example
 * const report = await importDrupal(deps, "uid,name,pass,mail,status,created,login\n2,ana,…\n", { onConflict: "update" });
 */
export function importDrupal(deps: ImportDeps, csv: string, extra: Partial<Omit<ImportOptions, "rules" | "open">> = {}): Promise<ImportReport> {
  const map = resolveMap({ preset: "drupal7", map: {} });
  return importUsers(deps, {
    format: "csv", onConflict: "fail", batchSize: 500, dryRun: false, skipBad: false, actor: "cli:ops", file: "users.csv",
    onHeader: (h: string[]) => checkHeader(h, map, {}, { preset: "drupal7" }), ...extra,
    rules: { map, preset: "drupal7", source: "drupal7", salted: null },
    open: async function* () {
      yield csv;
    },
  });
}
