// `bulwark hash identify|verify|new`: the password-hash table from the command line, no database.
// Exit codes (DESIGN.md): 0 match/ok, 1 mismatch, 2 unknown, malformed or out-of-bounds hash, or no password.
import type { Command } from "commander";
import type { CliContext, CommandModule } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { action, group, readStdin, writeJSON, writeLine } from "../run.ts";
import { InputError } from "../../lib/errors.ts";

/** Strips exactly one trailing newline ("\n" or "\r\n"): the password is otherwise taken as received. */
function stripOneNewline(text: string): string {
  if (text.endsWith("\r\n")) return text.slice(0, -2);
  if (text.endsWith("\n")) return text.slice(0, -1);
  return text;
}

// Loaded lazily: argon2/bcrypt native bindings are not needed for the rest of the CLI.
async function passwordContext() {
  const [{ createPasswordContext }, { systemRandom }] = await Promise.all([
    import("../../accounts/passwords/index.ts"),
    import("../../lib/random.ts"),
  ]);
  return createPasswordContext({ random: systemRandom });
}

function register(program: Command, ctx: CliContext): void {
  const hash = group(program, "hash", "Identify, verify and create password hashes (every supported legacy format).");

  hash
    .command("identify")
    .description("Print the scheme id of a stored password hash (exit 2 when unknown, malformed or out of bounds).")
    .argument("<hash>", "the stored hash (quote it: it contains $)")
    .option("--json", "print { scheme, params } as JSON")
    .action(
      action(ctx, async (stored: string, opts: { json?: boolean }) => {
        const passwords = await passwordContext();
        if (opts.json) writeJSON(ctx, passwords.describe(stored));
        else writeLine(ctx, passwords.identify(stored));
        return EXIT.ok;
      }),
    );

  hash
    .command("verify")
    .description("Read a password from stdin (one trailing newline stripped) and check it against HASH: exit 0 match, 1 mismatch.")
    .argument("<hash>", "the stored hash (quote it: it contains $)")
    .option("--json", "print { match } as JSON")
    .action(
      action(ctx, async (stored: string, opts: { json?: boolean }) => {
        const passwords = await passwordContext();
        // Refuse an unsupported hash before waiting for a password.
        passwords.identify(stored);
        const match = await passwords.verify(stripOneNewline(await readStdin(ctx)), stored);
        if (opts.json) writeJSON(ctx, { match });
        else writeLine(ctx, match ? "match" : "mismatch");
        return match ? EXIT.ok : EXIT.fails;
      }),
    );

  hash
    .command("new")
    .description("Read a password from stdin (one trailing newline stripped; empty is refused) and print a default-scheme (argon2id) hash.")
    .action(
      action(ctx, async () => {
        const password = stripOneNewline(await readStdin(ctx));
        // As `users create`: a hash of the empty password would let anyone in with no password at all.
        if (password === "") throw new InputError("BULWARK_ERR_USAGE", "no password on stdin (it is empty); pipe one in, e.g. printf '%s' \"$PASSWORD\" | bulwark hash new");
        const passwords = await passwordContext();
        writeLine(ctx, await passwords.hash(password));
        return EXIT.ok;
      }),
    );
}

export default { register } satisfies CommandModule;
