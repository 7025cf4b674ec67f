// One fixture for the tests of a file or a describe block, opened in its before() and closed in its after(): the
// `let fx; before(...); after(...)` block each red-team file used to write out again.
import { after, before } from "node:test";
import { authFixture, type AuthFixture } from "../../src/http/auth/test-client.ts";

/**
 * Registers, in the enclosing suite, the hooks that open `open()`'s fixture before its tests and close it after, and
 * returns a stand-in that forwards every property to the open fixture (methods bound to it). Read before the suite's
 * before() ran (at module load, say), it throws: the fixture does not exist yet.
 *
 * Call it inside a describe() when another before() of the same suite reads the fixture: at a file's top level
 * node:test starts each before() as it is registered, without waiting for the one before it, so a second top-level
 * before() would read the fixture while it is still opening. Tests (top level or not) always wait for it.
 *
 * @example
 * describe("…", () => {
 *   const fx = sharedFixture();
 *   const flows = authFlows(() => fx);
 *   it("…", async () => { await fx.user("a@example.org"); });
 * });
 */
export function sharedFixture<F extends { close(): Promise<void> } = AuthFixture>(open: () => Promise<F> = () => authFixture() as unknown as Promise<F>): F {
  let current: F | undefined;
  before(async () => {
    current = await open();
  });
  after(async () => {
    await current?.close();
  });
  return new Proxy({} as F, {
    get(_target, key) {
      if (current === undefined) throw new Error(`the shared fixture is read (${String(key)}) before its suite's before() opened it`);
      const value: unknown = Reflect.get(current, key);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(current) : value;
    },
  });
}
