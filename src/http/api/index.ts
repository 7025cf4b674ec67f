// The JSON API under /api/v1: every route declares the access it needs (see ../auth-context.ts), and a guard
// enforces it on every request; a route without a declaration stops the server from booting (fail closed).
import type { FastifyInstance, RouteOptions } from "fastify";
import type { App } from "../../app/types.ts";
import { containDeps } from "../../contain/index.ts";
import { registerAuditRoutes } from "./audit-events.ts";
import { auditRefusal } from "./common.ts";
import { registerContainRoutes } from "./contain.ts";
import { accessGuard } from "./guard.ts";
import { createJobRunner, type JobRunner } from "./job-runner.ts";
import { registerRoleRoutes } from "./roles.ts";
import { assertTextFieldsSafe, refuseUnknownFields } from "./strict-fields.ts";
import { registerTokenRoutes } from "./tokens.ts";
import { registerUserRoutes } from "./users.ts";

export const API_PREFIX = "/api/v1";

/** A registered /api/v1 route and the access it declares (what test/api-routes.test.ts walks). */
export interface APIRoute {
  method: string;
  url: string;
  access: string | undefined;
}

const catalogue = new WeakMap<FastifyInstance, APIRoute[]>();
const runners = new WeakMap<FastifyInstance, JobRunner>();

/** The background job runner of a built server (runServer resumes unfinished containment jobs with it). */
export function jobRunnerOf(server: FastifyInstance): JobRunner | undefined {
  return runners.get(server);
}

/** Every route registered under /api/v1 on a server built by buildServer, with its declared access. */
export function apiRoutesOf(server: FastifyInstance): readonly APIRoute[] {
  return catalogue.get(server) ?? [];
}

class MissingAccessError extends Error {}

/** Registers every /api/v1 route on the server. Called once by buildServer, after the authentication hook. */
export async function registerApiRoutes(server: FastifyInstance, app: App): Promise<void> {
  const routes: APIRoute[] = [];
  catalogue.set(server, routes);
  const deps = containDeps(app);
  // One runner per server: API-started jobs and jobs resumed at start-up pause between batches on close.
  const runner = createJobRunner(deps, server.log);
  runners.set(server, runner);
  server.addHook("onClose", async () => runner.stop());
  await server.register(async (api) => {
    api.addHook("onRoute", (route: RouteOptions) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const access = route.config?.access;
      for (const method of methods) routes.push({ method, url: route.url, access });
      if (access === undefined) throw new MissingAccessError(`${methods.join(",")} ${route.url} declares no config.access; every /api/v1 route must`);
      // Every string field refuses control characters (a NUL is a 500 on PostgreSQL): checked at boot, fail closed.
      assertTextFieldsSafe(route);
    });
    // onRequest: before the body is read, so an anonymous caller cannot make us parse (or validate) anything.
    // preValidation: unknown fields, and any body or query string on a route that declares none, are a 400.
    api.addHook("onRequest", accessGuard(app));
    api.addHook("preValidation", refuseUnknownFields);
    // A refused request of a signed-in caller (403, or a 409 that guards who can act) is recorded, sampled: one place
    // for every route and for the guard's own refusals, so no route can forget it (auditRefusal). onError runs before
    // the error handler answers; a failed append is logged and the refusal stands (recordSampled).
    api.addHook("onError", async (request, _reply, error) => auditRefusal(app, request, error));
    // API responses carry account data: never cached by a browser or proxy (ASVS 14.3.2).
    api.addHook("onSend", async (_request, reply) => {
      reply.header("cache-control", "no-store");
    });

    registerUserRoutes(api, app);
    registerRoleRoutes(api, app);
    registerTokenRoutes(api, app);
    registerContainRoutes(api, app, deps, runner);
    registerAuditRoutes(api, app);
  }, { prefix: API_PREFIX });
}
