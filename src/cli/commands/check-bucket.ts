// `bulwark check bucket`: S3 bucket exposure from the policy, ACL and Block Public Access settings
// as the AWS CLI prints them (seed 004: Sentry's backups were readable by any AWS account).
import type { Command } from "commander";
import { InputError } from "../../lib/errors.ts";
import { addCheckOptions, finishCheck, type CheckOptions } from "../check-common.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { action, group } from "../run.ts";

interface BucketOptions extends CheckOptions {
  policy?: string;
  acl?: string;
  publicAccessBlock?: string;
  ownerAccount?: string;
  bucket?: string;
}

function register(program: Command, ctx: CliContext): void {
  const check = group(program, "check", "run a security check and print its findings");
  const cmd = check
    .command("bucket")
    .description("evaluate who can read or write an S3 bucket (policy, ACL, Block Public Access) as S3 does")
    .option("--policy <file>", "bucket policy: `aws s3api get-bucket-policy` output or the policy document")
    .option("--acl <file>", "`aws s3api get-bucket-acl` output")
    .option("--public-access-block <file>", "`aws s3api get-public-access-block` output")
    .option("--owner-account <id>", "the 12-digit account id that owns the bucket")
    .option("--bucket <name>", "bucket name, for Resource matching (default: taken from the policy)");
  addCheckOptions(cmd).action(
    action(ctx, async (opts: BucketOptions) => {
      if (opts.policy === undefined && opts.acl === undefined && opts.publicAccessBlock === undefined) {
        throw new InputError("BULWARK_ERR_USAGE", "check bucket needs at least one of --policy, --acl, --public-access-block");
      }
      if (opts.ownerAccount !== undefined && !/^\d{12}$/.test(opts.ownerAccount)) {
        throw new InputError("BULWARK_ERR_USAGE", `--owner-account must be a 12-digit AWS account id, got "${opts.ownerAccount.slice(0, 40)}"`);
      }
      if (opts.bucket !== undefined && !/^[A-Za-z0-9._-]{1,255}$/.test(opts.bucket)) {
        throw new InputError("BULWARK_ERR_USAGE", `--bucket must be an S3 bucket name (letters, digits, ".", "-", "_"), got "${opts.bucket.slice(0, 40)}"`);
      }
      const bucket = await import("../../checks/bucket/index.ts");
      const policy = opts.policy !== undefined ? bucket.parseBucketPolicy(await bucket.readBoundedFile(opts.policy), opts.policy) : undefined;
      const acl = opts.acl !== undefined ? bucket.parseBucketACL(await bucket.readBoundedFile(opts.acl), opts.acl) : undefined;
      const pab = opts.publicAccessBlock !== undefined
        ? bucket.parsePublicAccessBlock(await bucket.readBoundedFile(opts.publicAccessBlock), opts.publicAccessBlock)
        : undefined;
      const result = bucket.checkBucket({ policy, acl, publicAccessBlock: pab, ownerAccount: opts.ownerAccount, bucket: opts.bucket });
      return finishCheck(ctx, opts, {
        check: "bucket",
        findings: result.findings,
        extra: { access: result.summary },
        summary: bucket.summaryLines(result.access),
      });
    }),
  );
}

export default { register } satisfies CommandModule;
