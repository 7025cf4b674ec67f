// Holding requests inside the server for the tests that need several at once: a dummy verify that waits on a latch
// (an unknown account's login "while its hash runs"), and a wait for a condition with a safety net.

/** Makes every dummy verify of `app` (an unknown account's login) wait until `open` is called; counts the ones waiting. */
export function latchDummyVerify(app: { accounts: { passwords: object } }): { waiting: () => number; open: () => void; restore: () => void } {
  const passwords = app.accounts.passwords as { dummyVerify: (password: string) => Promise<false> };
  const original = passwords.dummyVerify;
  let waiting = 0;
  let open!: () => void;
  const latch = new Promise<void>((resolve) => (open = resolve));
  passwords.dummyVerify = async (password) => {
    waiting++;
    await latch;
    return original(password);
  };
  return { waiting: () => waiting, open, restore: () => (passwords.dummyVerify = original) };
}

/** Resolves once `condition` holds; rejects after 10 s naming `what` (a safety net, not an assertion on time). */
export async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
