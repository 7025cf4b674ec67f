// The root logins kept as evidence for authlog.root-login: by password and by other methods apart, each bounded. A
// flood of forged "Accepted … for root" lines (logger) can fill what is kept but cannot push out the latest login, nor
// the first from an address not seen before the bound.
import type { RootLoginSample, SuccessRecord } from "./types.ts";

/** Addresses whose first root login is kept, per sample: past this, logins from new addresses are counted only. */
const MAX_ADDRESSES = 1_000;
/** Methods named, per sample: forged lines can carry any number of made-up ones. */
const MAX_METHODS = 50;

/** An empty sample. */
export function rootLoginSample(): RootLoginSample {
  return { count: 0, earliest: null, latest: null, byAddress: new Map(), moreAddresses: false, methods: new Set(), moreMethods: false };
}

/**
 * Counts `login` in `sample` and keeps it when it is the earliest or latest by stamp so far (of equal stamps, the one
 * read last is the latest), or the first from its address.
 *
 * @example
 * const s = rootLoginSample();
 * addRootLogin(s, login);
 * s.latest === login; // true
 */
export function addRootLogin(sample: RootLoginSample, login: SuccessRecord): void {
  sample.count++;
  if (sample.earliest === null || login.timeMs < sample.earliest.timeMs) sample.earliest = login;
  if (sample.latest === null || login.timeMs >= sample.latest.timeMs) sample.latest = login;
  if (!sample.byAddress.has(login.address)) {
    if (sample.byAddress.size < MAX_ADDRESSES) sample.byAddress.set(login.address, login);
    else sample.moreAddresses = true;
  }
  if (!sample.moreMethods && !sample.methods.has(login.method)) {
    if (sample.methods.size < MAX_METHODS) sample.methods.add(login.method);
    else sample.moreMethods = true;
  }
}
