// Public API of the bucket-exposure check (`bulwark check bucket`).
export { checkBucket, summaryLines, type BucketCheckResult } from "./check.ts";
export { evaluateBucketAccess, type BucketAccess, type BucketInputs, type CallerAccess, type ClassAccess } from "./evaluate.ts";
export { parseBucketPolicy, type BucketPolicy, type PolicyStatement } from "./policy-parse.ts";
export { parseBucketACL, parsePublicAccessBlock, type BucketACL, type PublicAccessBlock } from "./acl-parse.ts";
export { readBoundedFile } from "./read-input.ts";
export { BucketInputError } from "./errors.ts";
