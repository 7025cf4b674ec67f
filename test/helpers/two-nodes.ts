// Two Bulwark nodes behind one load balancer: two apps with their own HTTP servers (authFixture) on one PostgreSQL
// database, for the tests that race a request on one node against another on the other.
import { authFixture, type AuthFixture } from "../../src/http/auth/test-client.ts";

/**
 * Two HTTP nodes on the database at `url` (a fresh schema of the private cluster), sharing `masterKey`; `close` stops
 * both, the second first.
 *
 * @example
 * const { a, b, close } = await twoNodes(await cluster.createSchema("mine_1"), MASTER);
 */
export async function twoNodes(url: string, masterKey: string): Promise<{ a: AuthFixture; b: AuthFixture; close(): Promise<void> }> {
  const env = { BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: masterKey };
  const a = await authFixture(env);
  const b = await authFixture(env);
  return {
    a, b,
    async close() {
      await b.close();
      await a.close();
    },
  };
}
