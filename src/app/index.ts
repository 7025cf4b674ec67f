// Public API of the composition root.
export { openApp, SQLITE_FILE, MASTER_KEY_FILE, type OpenAppOptions, type OpenedApp, type InitReport } from "./open-app.ts";
export { loadConfig, type Config, type ConfigOverrides } from "./config.ts";
export type { App } from "./types.ts";
