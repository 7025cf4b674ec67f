// Refuses fields a route does not declare, before Fastify's validator silently strips them: a client that sends
// `{"email": …, "roles": ["admin"]}` to create-user learns that `roles` is not accepted here instead of
// wondering why it was ignored (mass assignment, ASVS 8.2.3). Only schemas with additionalProperties: false.
import type { FastifyRequest } from "fastify";
import { apiErrors } from "./errors.ts";

interface ObjectSchema {
  type?: string;
  properties?: Record<string, unknown>;
  additionalProperties?: boolean;
}

// Nesting is bounded by the schemas themselves (a field not in `properties` is never descended into).
function unknownFields(value: unknown, schema: unknown, path: string, out: string[]): void {
  if (!schema || typeof schema !== "object" || !value || typeof value !== "object" || Array.isArray(value)) return;
  const s = schema as ObjectSchema;
  if (!s.properties) return;
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    const sub = Object.hasOwn(s.properties, key) ? s.properties[key] : undefined;
    if (sub === undefined) {
      if (s.additionalProperties === false) out.push(path + key);
    } else unknownFields(child, sub, `${path}${key}.`, out);
  }
}

/** preValidation hook: 400 naming the undeclared fields of the body or query string. */
export async function refuseUnknownFields(request: FastifyRequest): Promise<void> {
  const schema = request.routeOptions.schema;
  if (!schema) return;
  for (const [where, value, part] of [["body", request.body, schema.body], ["query string", request.query, schema.querystring]] as const) {
    const found: string[] = [];
    unknownFields(value, part, "", found);
    if (found.length) throw apiErrors.unknownFields(where, found);
  }
}
