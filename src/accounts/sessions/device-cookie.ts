// The known-device cookie, `__Host-bulwark-device`: how a login tells a browser that signed in to the account before
// from one that never did, so the owner can be told of a sign-in from a new device or browser (ASVS 6.3.5). It holds
// no state the server keeps: a random device id, and for each account signed in from it (at most MAX_ACCOUNTS, the
// latest first) a tag keyed by the server's device key (Keyring.deviceTag) over the device id and the account's key —
// its id and when its password last changed (DeviceAccount), so a password change or reset makes every browser new
// again but the one that made it. Only the server can make a tag; one from another browser proves nothing here (the
// device id differs); a tag names no account to whoever reads the cookie. Copying a victim's cookie needs their
// browser, and then only spares the attacker a notice.
// Same attributes as the session cookie (Secure, HttpOnly, SameSite=Lax, Path=/, no Domain), kept for a year.
import { parseCookieHeader } from "./cookie.ts";

export const DEVICE_COOKIE = "__Host-bulwark-device";
/** Accounts one browser is remembered for: a family computer, an administrator's second account, a shared desk. */
export const MAX_DEVICE_ACCOUNTS = 10;
const MAX_AGE_SECONDS = 365 * 86_400;
// d2: tags under the device key of their own (Keyring.deviceTag). d1 tags were Keyring.identifierTag's, the key the audit
// log tags any typed text with, so a reader of the log could have one made for a device id of its choosing; a d1
// cookie is read as none, and each browser counts as new once (one notice) after the upgrade.
const VERSION = "d2";
const DEVICE_ID = /^[A-Za-z0-9_-]{22}$/;
const TAG = /^[0-9a-f]{16}$/;

export interface DeviceCookie {
  deviceId: string;
  /** Tags of the accounts signed in from this browser, the latest first. */
  tags: string[];
}

/**
 * The server's keyed tag of `text` (Keyring.deviceTag): 16 hex characters, under a key used for nothing else. Never
 * Keyring.identifierTag: the audit log holds that tag of any text anyone types, a device tag included.
 */
export type DeviceTagger = (text: string) => string;

/** What a tag is bound to: the account, and its password's last change (null: never changed). */
export interface DeviceAccount {
  id: string;
  passwordChangedAt: number | null;
}

const tagOf = (tagger: DeviceTagger, deviceId: string, account: DeviceAccount): string =>
  tagger(`known-device:${deviceId}:${account.id}:${account.passwordChangedAt ?? 0}`);

/**
 * The device cookie a Cookie header carries, or null (none, two different ones, or not in our format).
 *
 * @example
 * readDeviceCookie(request.headers.cookie) // { deviceId: "…", tags: ["9f…"] } or null
 */
export function readDeviceCookie(header: string | undefined | null): DeviceCookie | null {
  const values = parseCookieHeader(header).get(DEVICE_COOKIE);
  if (!values || values.length === 0 || values.some((v) => v !== values[0])) return null;
  const parts = (values[0] as string).split(".");
  if (parts.length < 2 || parts.length > MAX_DEVICE_ACCOUNTS + 2 || parts[0] !== VERSION) return null;
  const [, deviceId, ...tags] = parts as [string, string, ...string[]];
  if (!DEVICE_ID.test(deviceId) || !tags.every((t) => TAG.test(t))) return null;
  return { deviceId, tags };
}

/** Whether `cookie` says this browser signed in to `account` before (since its password last changed). */
export function knownDevice(cookie: DeviceCookie | null, account: DeviceAccount, tagger: DeviceTagger): boolean {
  return cookie !== null && cookie.tags.includes(tagOf(tagger, cookie.deviceId, account));
}

/**
 * The Set-Cookie value that remembers this browser for `account` (null: renews the cookie as it is), first in the
 * list, keeping the other accounts it held (the oldest dropped past MAX_DEVICE_ACCOUNTS). A browser without one gets a
 * new device id (`newDeviceId`, 16 random bytes as base64url).
 *
 * @example
 * reply.header("set-cookie", deviceCookieFor(readDeviceCookie(header), user, tagger, () => base64url(random.bytes(16))));
 */
export function deviceCookieFor(cookie: DeviceCookie | null, account: DeviceAccount | null, tagger: DeviceTagger, newDeviceId: () => string): string {
  const deviceId = cookie?.deviceId ?? newDeviceId();
  if (!DEVICE_ID.test(deviceId)) throw new Error("a device id is 22 base64url characters (16 random bytes)");
  const tag = account === null ? null : tagOf(tagger, deviceId, account);
  const tags = [...(tag === null ? [] : [tag]), ...(cookie?.tags ?? []).filter((t) => t !== tag)].slice(0, MAX_DEVICE_ACCOUNTS);
  return `${DEVICE_COOKIE}=${[VERSION, deviceId, ...tags].join(".")}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${MAX_AGE_SECONDS}`;
}
