// Public API of the HTTP shell.
export { buildServer, type ServerOptions } from "./server.ts";
export { runServer, type RunningServer } from "./run-server.ts";
