// Maps Bulwark error kinds to HTTP statuses. A 5xx never carries internals: the client gets a generic
// message and the request id, the log gets the rest.
import type { ErrorKind } from "../lib/errors.ts";

export const STATUS_BY_KIND: Record<ErrorKind, number> = {
  usage: 400,
  input: 400,
  "not-found": 404,
  conflict: 409,
  unauthorized: 401,
  forbidden: 403,
  runtime: 500,
  unavailable: 503,
};

export interface ErrorBody {
  error: { code: string; message: string; requestId?: string };
}
