//! Legacy Signature Version 2, only as S3 POST forms use it
//! (`AWSAccessKeyId`, `signature` = base64 HMAC-SHA1 of the base64 policy),
//! so Plupload-era uploaders keep working. Header and query SigV2 are not
//! supported anywhere in Chute.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha1::Sha1;

/// Base64 HMAC-SHA1 of the base64 policy under `secret_key`: the SigV2 POST signature.
pub fn post_signature(secret_key: &str, policy_base64: &str) -> String {
    B64.encode(hmac_sha1(secret_key, policy_base64))
}

fn hmac_sha1(secret_key: &str, policy_base64: &str) -> [u8; 20] {
    // new_from_slice only fails for fixed-size keys; HMAC takes any length.
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(policy_base64.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whether `signature` is the SigV2 POST signature of `policy_base64`,
/// compared in constant time as the exact base64 string.
pub fn verify_post_signature(secret_key: &str, policy_base64: &str, signature: &str) -> bool {
    let expected = post_signature(secret_key, policy_base64);
    crate::sigv4::constant_time_eq(signature.as_bytes(), expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_hmac_sha1() {
        // python3 -c "import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b'secret',b'eyJ9',hashlib.sha1).digest()))"
        assert_eq!(post_signature("secret", "eyJ9"), "nmIRzb4eKJU+a8tuS+H5Eo4wYBI=");
    }

    #[test]
    fn verify_accepts_own_and_rejects_tampered() {
        let sig = post_signature("secret", "cG9saWN5");
        assert!(verify_post_signature("secret", "cG9saWN5", &sig));
        assert!(!verify_post_signature("secret", "cG9saWN6", &sig));
        assert!(!verify_post_signature("other", "cG9saWN5", &sig));
        assert!(!verify_post_signature("secret", "cG9saWN5", "not base64!"));
    }
}
