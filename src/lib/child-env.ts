// The environment handed to programs Bulwark runs (sshd -T, id). Bulwark's own settings hold secrets — the
// master key (BULWARK_MASTER_KEY), a database URL with its password — and no other program needs any of them,
// so none of them is passed on: a child's environment can be read by its user in /proc/PID/environ, and a
// program may log or dump it.

/**
 * `env` without any `BULWARK_*` variable.
 *
 * @example
 * execFile("sshd", ["-T"], { env: childEnvironment() });
 */
export function childEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) if (!name.toUpperCase().startsWith("BULWARK_")) out[name] = value;
  return out;
}
