// Base error classes: every error Bulwark throws carries a stable code and a kind that decides
// the CLI exit code and the HTTP status. Domains subclass these in their own errors.ts.

/**
 * What went wrong, in terms of who must act: the caller (input/usage), or the runtime. "unavailable": a service this
 * one depends on cannot answer now (a lookup's outage, a full work queue); the same request may succeed in a moment.
 */
export type ErrorKind = "usage" | "input" | "not-found" | "conflict" | "unauthorized" | "forbidden" | "runtime" | "unavailable";

export interface BulwarkErrorOptions {
  cause?: unknown;
  /** Extra structured context, safe to show to an operator (never secrets). */
  details?: Record<string, unknown>;
}

/**
 * Base class for every error Bulwark throws on purpose.
 *
 * @example
 * throw new BulwarkError("BULWARK_ERR_CONFIG", "input", "PORT must be an integer between 1 and 65535, got \"http\"");
 */
export class BulwarkError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, kind: ErrorKind, message: string, options: BulwarkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.kind = kind;
    this.details = options.details;
  }
}

/** Bad command-line usage or bad input data: the caller must change what they gave us. */
export class InputError extends BulwarkError {
  constructor(code: string, message: string, options: BulwarkErrorOptions = {}) {
    super(code, "input", message, options);
  }
}

/** A failure of the environment or of Bulwark itself (database down, disk full, bug). */
export class RuntimeFailure extends BulwarkError {
  constructor(code: string, message: string, options: BulwarkErrorOptions = {}) {
    super(code, "runtime", message, options);
  }
}

/**
 * Something this request needs cannot answer now; the caller may try again after `retryAfterSeconds` (HTTP 503 with
 * Retry-After, exit 3). The message is meant for the caller: it is sent as it is, unlike a runtime failure's.
 */
export class Unavailable extends BulwarkError {
  readonly retryAfterSeconds: number;
  constructor(code: string, message: string, retryAfterSeconds: number, options: BulwarkErrorOptions = {}) {
    super(code, "unavailable", message, options);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export function isBulwarkError(value: unknown): value is BulwarkError {
  return value instanceof BulwarkError;
}
