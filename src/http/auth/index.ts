// The /auth surface: hooks (authentication, gates, access, CSRF, no-store) and every /auth route.
import type { FastifyInstance } from "fastify";
import type { App } from "../../app/types.ts";
import { registerAuthHooks } from "./authenticate.ts";
import { registerFormParser, registerJSONParser } from "./form-body.ts";
import { registerEmailRoutes } from "./routes/email-routes.ts";
import { registerMfaRoutes } from "./routes/mfa-routes.ts";
import { registerPasswordRoutes } from "./routes/password-routes.ts";
import { registerReauthRoutes } from "./routes/reauth-routes.ts";
import { registerRegisterRoutes } from "./routes/register-routes.ts";
import { registerSessionRoutes } from "./routes/session-routes.ts";

export { safeNext } from "./safe-redirect.ts";
export { LOGIN_FAILED_BODY } from "./routes/session-routes.ts";
export { RESET_ACCEPTED } from "./routes/password-routes.ts";
export type { Gate, PendingGate, CookieSession } from "./state.ts";

/** Installs the account hooks on the root server and registers the /auth routes. Call before other routes. */
export function registerAuth(server: FastifyInstance, app: App): void {
  registerFormParser(server);
  registerJSONParser(server);
  registerAuthHooks(server, app);
  registerSessionRoutes(server, app);
  registerPasswordRoutes(server, app);
  registerReauthRoutes(server, app);
  registerRegisterRoutes(server, app);
  registerMfaRoutes(server, app);
  registerEmailRoutes(server, app);
}
