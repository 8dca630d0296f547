//! chute-core integration tests: Chute's signing checked against a real
//! peer, boto3, run as a `python3` subprocess with a frozen clock. These
//! tests fail (never skip) when python3 or boto3 is missing.

// Running boto3 with fixed credentials, region, endpoint and clock.
mod boto3;
// generate_presigned_url (get_object, put_object, upload_part) vs presign_url.
mod presigned_url;
// generate_presigned_post vs PostPolicyBuilder, and verify_post_form on boto3's forms.
mod presigned_post;
