//! Pure building blocks of Chute, with no I/O: validated object keys and
//! bucket names, filename sanitising, S3 checksums, SigV4 signing and
//! presigning, S3 POST policies (build, sign, parse, verify), and the
//! grant, upload and receipt tokens (HS256 JWTs with rotating key ids).
//!
//! Everything that crosses a trust boundary is parsed here once into a
//! typed value ([`ObjectKey`], [`BucketName`], [`post_policy::PostPolicy`]);
//! deeper code never re-validates raw strings. Storage, HTTP and
//! configuration live in the other crates.

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bucket;
pub mod checksum;
pub mod derivative;
pub mod filename;
pub mod grant;
pub mod key;
pub mod post_policy;
pub mod receipt;
pub mod sigv2;
pub mod sigv4;
pub mod token;

pub use bucket::{BucketName, BucketNameError};
pub use checksum::{Checksum, ChecksumAlgorithm, ChecksumError, ChecksumHasher, Hasher};
pub use derivative::{DerivativeLimits, DerivativeSpec, DeriveOn, FitMode, OutputFormat};
pub use filename::sanitize_filename;
pub use grant::{Grant, GrantClaims, GrantViolation, KeyTemplate, TemplateVars};
pub use key::{KeyError, ObjectKey};
pub use post_policy::{
    PostForm, PostPolicy, PostPolicyBuilder, PostPolicyError, PresignedPost, VerifiedPost, parse_policy,
    verify_post_form,
};
pub use receipt::ReceiptClaims;
pub use sigv4::{Credentials, PresignRequest, SignError, SigningKeyCache, presign_url};
pub use token::{Keyring, TokenError, TokenKey};
