// `bulwark hash identify|verify|new`: the password-hash table from the command line, no database.
// Exit codes (DESIGN.md): 0 match/ok, 1 mismatch, 2 unknown, malformed or out-of-bounds hash, or no usable password
// on stdin (empty, not UTF-8, holding a NUL, over the size limit, or longer than the hash's scheme is ever checked for).
import type { Command } from "commander";
import type { CliContext, CommandModule } from "../context.ts";
import { InputError } from "../../lib/errors.ts";
import { EXIT } from "../exit-codes.ts";
import { action, group, readPassword, writeJSON, writeLine } from "../run.ts";

// Loaded lazily: argon2/bcrypt native bindings are not needed for the rest of the CLI.
// New hashes take the configured argon2id parameters (BULWARK_ARGON2_*), as `users create` and the server do.
async function passwordContext() {
  const [{ createPasswordContext }, { systemRandom }, { loadArgon2Config }] = await Promise.all([
    import("../../accounts/passwords/index.ts"),
    import("../../lib/random.ts"),
    import("../../app/config.ts"),
  ]);
  return createPasswordContext({ random: systemRandom, argon2: loadArgon2Config(process.env) });
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
    .description("Read a password from stdin (one trailing newline stripped; empty is refused) and check it against HASH: exit 0 match, 1 mismatch.")
    .argument("<hash>", "the stored hash (quote it: it contains $)")
    .option("--json", "print { match } as JSON")
    .action(
      action(ctx, async (stored: string, opts: { json?: boolean }) => {
        const passwords = await passwordContext();
        // Refuse an unsupported hash before waiting for a password.
        const scheme = passwords.identify(stored);
        // The checks of `hash new`: "mismatch" would say a password was compared, and none (or none storable) was.
        const password = await readPassword(ctx, { maxBytes: passwords.limits.maxPasswordBytes, ifEmpty: "pipe one in, e.g. printf '%s' \"$PASSWORD\" | bulwark hash verify HASH" });
        // Longer than this scheme is ever checked for (its loop costs rounds × length): verify would answer "no match"
        // without comparing, which here would read as a real mismatch.
        const bound = passwords.maxPasswordBytesFor(stored);
        const bytes = Buffer.byteLength(password, "utf8");
        if (bytes > bound) {
          throw new InputError("BULWARK_ERR_PASSWORD_TOO_LONG", `the password is ${bytes} bytes, and ${scheme} hashes are checked only up to ${bound} bytes ` +
            "(a longer one would cost seconds of CPU per try; a login answers such a password \"no match\" without comparing): nothing was compared");
        }
        const match = await passwords.verify(password, stored);
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
        const passwords = await passwordContext();
        // As `users create`: a hash of the empty password would let anyone in with no password at all.
        const password = await readPassword(ctx, { maxBytes: passwords.limits.maxPasswordBytes, ifEmpty: "pipe one in, e.g. printf '%s' \"$PASSWORD\" | bulwark hash new" });
        writeLine(ctx, await passwords.hash(password));
        return EXIT.ok;
      }),
    );
}

export default { register } satisfies CommandModule;
