// The permissions Bulwark knows. Deny by default: a route or command names the permission it needs and a
// user must hold it through a role; `admin` implies every other permission.

export const PERMISSIONS = [
  "accounts.read",
  "accounts.write",
  "contain.run",
  "incidents.manage",
  "checks.run",
  "inventory.manage",
  "audit.read",
  "admin",
] as const;

export type Permission = (typeof PERMISSIONS)[number];

/** Permissions whose holders must use MFA (issue 4: "any role holding an administrative permission"). */
export const ADMINISTRATIVE: ReadonlySet<Permission> = new Set<Permission>(["admin", "accounts.write", "contain.run", "inventory.manage"]);

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}

/**
 * Whether a set of held permissions grants `needed`. Fails closed: an empty or unknown set grants nothing.
 *
 * @example
 * allows(new Set(["accounts.read"]), "accounts.write") // false
 */
export function allows(held: ReadonlySet<string>, needed: Permission): boolean {
  return held.has("admin") || held.has(needed);
}

export function holdsAdministrative(held: ReadonlySet<string>): boolean {
  for (const p of held) if (ADMINISTRATIVE.has(p as Permission)) return true;
  return false;
}
