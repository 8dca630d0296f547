//! Compact HS256 JWTs, the one token format of Chute: grants the app signs,
//! upload tokens and receipts Chute signs. Any language verifies them with
//! its standard JWT library.
//!
//! A [`Keyring`] holds the current signing key and the retired keys still
//! accepted, each under a key id that goes into the token's `kid` header,
//! so a secret rotates without invalidating tokens in flight. Every token
//! carries an audience (`aud`) and an expiry (`exp`); verification insists
//! on both, on HS256 (no `none`, no algorithm switching) and on a known key.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};
use std::fmt;
use time::OffsetDateTime;

/// The audience of grants the app issues to browsers.
pub const GRANT_AUDIENCE: &str = "chute";
/// The audience of upload tokens (the capability for one upload).
pub const UPLOAD_AUDIENCE: &str = "chute-upload";
/// The audience of receipts (proof of one stored object).
pub const RECEIPT_AUDIENCE: &str = "chute-receipt";

/// The shortest secret accepted: 256 bits, as RFC 7518 asks of HS256 keys.
pub const MIN_SECRET_LEN: usize = 32;

/// One HMAC key and its id. `Debug` never shows the secret.
#[derive(Clone)]
pub struct TokenKey {
    kid: String,
    secret: Vec<u8>,
}

impl TokenKey {
    /// A key from its id and secret; the secret must be at least
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn new(kid: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let kid = kid.into();
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret {
                kid,
                len: secret.len(),
            });
        }
        if kid.is_empty() || kid.len() > 64 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Malformed(
                "key id must be 1-64 printable ASCII characters".into(),
            ));
        }
        Ok(Self { kid, secret })
    }

    /// Parses a configured key: `kid:secret`, or a bare secret whose key id
    /// is the first 8 hex digits of its SHA-256 (stable across restarts and
    /// instances, and reveals nothing useful).
    pub fn parse(spec: &str) -> Result<Self, TokenError> {
        // `kid:` is a key id only when it looks like one and leaves a
        // full-length secret; a passphrase with a colon in it stays whole.
        let kid_like = |k: &str| {
            !k.is_empty()
                && k.len() <= 32
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match spec.split_once(':') {
            Some((kid, secret)) if kid_like(kid) && secret.len() >= MIN_SECRET_LEN => {
                Self::new(kid, secret.as_bytes())
            }
            _ => {
                let kid = hex::encode(&Sha256::digest(spec.as_bytes())[..4]);
                Self::new(kid, spec.as_bytes())
            }
        }
    }

    /// The key id written into the `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The signing key plus the retired keys still accepted.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: TokenKey,
    retired: Vec<TokenKey>,
}

/// Why a token was refused. The messages are safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or claims of the wrong shape.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The `kid` names no key this server holds.
    #[error("token signed with unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not match.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `aud` is missing or names another audience.
    #[error("token is for another audience (expected {expected:?})")]
    WrongAudience {
        /// The audience this verifier wanted.
        expected: String,
    },
    /// Anything but HS256.
    #[error("token algorithm must be HS256")]
    WrongAlgorithm,
    /// A configured secret is too short.
    #[error("secret for key id {kid:?} is {len} bytes; at least {MIN_SECRET_LEN} are required")]
    WeakSecret {
        /// The key id.
        kid: String,
        /// The secret's length.
        len: usize,
    },
}

impl TokenError {
    /// A stable snake_case code for JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "token_malformed",
            Self::UnknownKey(_) => "token_unknown_key",
            Self::BadSignature => "token_bad_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongAudience { .. } => "token_wrong_audience",
            Self::WrongAlgorithm => "token_wrong_algorithm",
            Self::WeakSecret { .. } => "token_weak_secret",
        }
    }
}

impl Keyring {
    /// A keyring signing with `current` and also accepting `retired`.
    pub fn new(current: TokenKey, retired: Vec<TokenKey>) -> Self {
        Self { current, retired }
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> &TokenKey {
        &self.current
    }

    /// Signs `claims` (which must include `aud` and `exp`) with the current key.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&self.current.secret))
            .map_err(|e| TokenError::Malformed(e.to_string()))
    }

    /// Verifies `token` for `audience` at `now` and decodes its claims.
    /// A token without `kid` is tried against every key.
    pub fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
        now: OffsetDateTime,
    ) -> Result<C, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| header_error(token, &e))?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::WrongAlgorithm);
        }
        let keys: Vec<&TokenKey> = match &header.kid {
            Some(kid) => {
                let key = std::iter::once(&self.current)
                    .chain(&self.retired)
                    .find(|k| k.kid == *kid)
                    .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
                vec![key]
            }
            None => std::iter::once(&self.current).chain(&self.retired).collect(),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        // Time claims are checked below against the caller's clock (tests
        // freeze it), with no leeway: Chute signs both ends.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.set_audience(&[audience]);
        let mut last = TokenError::BadSignature;
        for key in keys {
            match jsonwebtoken::decode::<serde_json::Value>(
                token,
                &DecodingKey::from_secret(&key.secret),
                &validation,
            ) {
                Ok(data) => return check_times(data.claims, audience, now),
                Err(e) => {
                    last = map_error(&e, audience);
                    if last != TokenError::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// Why a header did not decode: an `alg` jsonwebtoken does not know
/// (`none`, a made-up name) is [`TokenError::WrongAlgorithm`], as HS512
/// is; anything else is malformed.
fn header_error(token: &str, e: &jsonwebtoken::errors::Error) -> TokenError {
    use base64::Engine as _;
    let alg = token
        .split('.')
        .next()
        .and_then(|h| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|header| header.get("alg").and_then(|a| a.as_str()).map(str::to_owned));
    match alg {
        Some(alg) if alg != "HS256" => TokenError::WrongAlgorithm,
        _ => TokenError::Malformed(e.to_string()),
    }
}

/// Checks `exp` and `nbf` against `now` and decodes the claims, after
/// normalising what RFC 7519 allows but the typed claim structs do not
/// take: an `aud` array (already checked to name `audience`) becomes that
/// one string, and a fractional NumericDate (`exp`, `nbf`, `iat`) is
/// rounded down to whole seconds.
fn check_times<C: DeserializeOwned>(
    mut claims: serde_json::Value,
    audience: &str,
    now: OffsetDateTime,
) -> Result<C, TokenError> {
    let now = now.unix_timestamp();
    if let Some(obj) = claims.as_object_mut() {
        if obj.get("aud").is_some_and(serde_json::Value::is_array) {
            obj.insert("aud".into(), audience.into());
        }
        for name in ["exp", "nbf", "iat"] {
            if let Some(value) = obj.get_mut(name) {
                *value = numeric_date(value).map(Into::into).ok_or_else(|| {
                    TokenError::Malformed(format!("{name} must be a number of seconds since 1970"))
                })?;
            }
        }
    }
    let exp = claims.get("exp").and_then(serde_json::Value::as_i64);
    match exp {
        Some(exp) if exp > now => {}
        Some(_) => return Err(TokenError::Expired),
        None => {
            return Err(TokenError::Malformed(
                "exp must be a number of seconds since 1970".into(),
            ));
        }
    }
    if let Some(nbf) = claims.get("nbf").and_then(serde_json::Value::as_i64)
        && nbf > now
    {
        return Err(TokenError::NotYetValid);
    }
    serde_json::from_value(claims).map_err(|e| TokenError::Malformed(e.to_string()))
}

/// A NumericDate as whole seconds: integers as they are, finite fractions
/// rounded down, anything else (strings, out-of-range floats) `None`.
fn numeric_date(value: &serde_json::Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let f = value.as_f64()?.floor();
    // 2^53: beyond it f64 seconds are not exact, and far past year 9999.
    (f.abs() < 9_007_199_254_740_992.0).then_some(f as i64)
}

fn map_error(e: &jsonwebtoken::errors::Error, audience: &str) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAudience => TokenError::WrongAudience {
            expected: audience.to_owned(),
        },
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience {
            expected: audience.to_owned(),
        },
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
        _ => TokenError::Malformed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use time::macros::datetime;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Claims {
        aud: String,
        exp: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nbf: Option<i64>,
        sub: String,
    }

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    fn key(kid: &str, fill: u8) -> TokenKey {
        TokenKey::new(kid, vec![fill; 32]).unwrap()
    }

    fn claims(aud: &str, exp_in: i64) -> Claims {
        Claims {
            aud: aud.into(),
            exp: NOW.unix_timestamp() + exp_in,
            nbf: None,
            sub: "u1".into(),
        }
    }

    #[test]
    fn round_trip_and_rotation() {
        let old = Keyring::new(key("k0", 1), vec![]);
        let ring = Keyring::new(key("k1", 2), vec![key("k0", 1)]);
        let t_old = old.sign(&claims("chute", 60)).unwrap();
        let t_new = ring.sign(&claims("chute", 60)).unwrap();
        assert_eq!(ring.verify::<Claims>(&t_old, "chute", NOW).unwrap().sub, "u1");
        assert_eq!(ring.verify::<Claims>(&t_new, "chute", NOW).unwrap().sub, "u1");
        assert_eq!(
            old.verify::<Claims>(&t_new, "chute", NOW),
            Err(TokenError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn refusals() {
        let ring = Keyring::new(key("k1", 2), vec![]);
        let t = ring.sign(&claims("chute", 60)).unwrap();
        assert_eq!(
            ring.verify::<Claims>(&t, "chute-receipt", NOW),
            Err(TokenError::WrongAudience {
                expected: "chute-receipt".into()
            })
        );
        assert_eq!(
            ring.verify::<Claims>(&t, "chute", NOW + time::Duration::seconds(60)),
            Err(TokenError::Expired)
        );
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            ring.verify::<Claims>(&tampered, "chute", NOW),
            Err(TokenError::BadSignature)
        );
        let forged = Keyring::new(key("k1", 3), vec![])
            .sign(&claims("chute", 60))
            .unwrap();
        assert_eq!(
            ring.verify::<Claims>(&forged, "chute", NOW),
            Err(TokenError::BadSignature)
        );
        assert!(matches!(
            ring.verify::<Claims>("a.b.c", "chute", NOW),
            Err(TokenError::Malformed(_))
        ));
        let mut early = claims("chute", 60);
        early.nbf = Some(NOW.unix_timestamp() + 5);
        let t = ring.sign(&early).unwrap();
        assert_eq!(
            ring.verify::<Claims>(&t, "chute", NOW),
            Err(TokenError::NotYetValid)
        );
    }

    /// Signs a raw JSON claims object (tests of claim shapes the typed
    /// structs cannot produce).
    fn sign_json(ring: &Keyring, claims: serde_json::Value) -> String {
        ring.sign(&claims).unwrap()
    }

    #[test]
    fn an_audience_array_naming_ours_is_accepted() {
        // RFC 7519 4.1.3: `aud` may be an array; PyJWT and jose write one
        // when given a list.
        let ring = Keyring::new(key("k1", 2), vec![]);
        let exp = NOW.unix_timestamp() + 60;
        let t = sign_json(
            &ring,
            serde_json::json!({"aud": ["other", "chute"], "exp": exp, "sub": "u1"}),
        );
        let c: Claims = ring.verify(&t, "chute", NOW).unwrap();
        assert_eq!(c.aud, "chute");
        let t = sign_json(
            &ring,
            serde_json::json!({"aud": ["other"], "exp": exp, "sub": "u1"}),
        );
        assert_eq!(
            ring.verify::<Claims>(&t, "chute", NOW),
            Err(TokenError::WrongAudience {
                expected: "chute".into()
            })
        );
    }

    #[test]
    fn fractional_numeric_dates_are_accepted() {
        // RFC 7519 2: a NumericDate may be non-integer (Python's
        // `time.time() + 600`).
        let ring = Keyring::new(key("k1", 2), vec![]);
        let exp = NOW.unix_timestamp() as f64 + 60.75;
        let t = sign_json(
            &ring,
            serde_json::json!({"aud": "chute", "exp": exp, "nbf": NOW.unix_timestamp() as f64 - 0.5, "sub": "u1"}),
        );
        let c: Claims = ring.verify(&t, "chute", NOW).unwrap();
        assert_eq!(c.exp, NOW.unix_timestamp() + 60);
        let t = sign_json(
            &ring,
            serde_json::json!({"aud": "chute", "exp": NOW.unix_timestamp() as f64 + 0.5, "sub": "u1"}),
        );
        assert_eq!(
            ring.verify::<Claims>(&t, "chute", NOW + time::Duration::seconds(1)),
            Err(TokenError::Expired)
        );
        for bad in [
            serde_json::json!("soon"),
            serde_json::json!(1e300),
            serde_json::json!(-1e300),
        ] {
            let t = sign_json(
                &ring,
                serde_json::json!({"aud": "chute", "exp": bad, "sub": "u1"}),
            );
            assert!(
                matches!(
                    ring.verify::<Claims>(&t, "chute", NOW),
                    Err(TokenError::Malformed(_))
                ),
                "exp {bad} must be refused as malformed"
            );
        }
    }

    #[test]
    fn alg_none_and_hs512_are_refused() {
        let ring = Keyring::new(key("k1", 2), vec![]);
        // {"alg":"none","kid":"k1"} . claims . (empty signature)
        let body = base64_url(&serde_json::to_vec(&claims("chute", 60)).unwrap());
        let none = format!("{}.{body}.", base64_url(br#"{"alg":"none","kid":"k1"}"#));
        assert_eq!(
            ring.verify::<Claims>(&none, "chute", NOW),
            Err(TokenError::WrongAlgorithm)
        );
        // An unknown name is the same refusal; a header that is not JSON
        // stays malformed.
        let odd = format!("{}.{body}.", base64_url(br#"{"alg":"XS999"}"#));
        assert_eq!(
            ring.verify::<Claims>(&odd, "chute", NOW),
            Err(TokenError::WrongAlgorithm)
        );
        let junk = format!("{}.{body}.", base64_url(b"not json"));
        assert!(matches!(
            ring.verify::<Claims>(&junk, "chute", NOW),
            Err(TokenError::Malformed(_))
        ));
        let mut header = Header::new(Algorithm::HS512);
        header.kid = Some("k1".into());
        let hs512 =
            jsonwebtoken::encode(&header, &claims("chute", 60), &EncodingKey::from_secret(&[2; 32])).unwrap();
        assert_eq!(
            ring.verify::<Claims>(&hs512, "chute", NOW),
            Err(TokenError::WrongAlgorithm)
        );
    }

    #[test]
    fn missing_audience_is_refused() {
        #[derive(Serialize)]
        struct NoAud {
            exp: i64,
        }
        let ring = Keyring::new(key("k1", 2), vec![]);
        let t = ring
            .sign(&NoAud {
                exp: NOW.unix_timestamp() + 60,
            })
            .unwrap();
        assert!(matches!(
            ring.verify::<Claims>(&t, "chute", NOW),
            Err(TokenError::WrongAudience { .. })
        ));
    }

    #[test]
    fn parse_specs_and_weak_secrets() {
        let k = TokenKey::parse("2026a:0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(k.kid(), "2026a");
        let bare = TokenKey::parse("0123456789abcdef0123456789abcdef-bare").unwrap();
        assert_eq!(bare.kid().len(), 8);
        assert!(matches!(
            TokenKey::parse("k:short"),
            Err(TokenError::WeakSecret { .. })
        ));
        assert!(!format!("{k:?}").contains("0123"));
    }

    fn base64_url(b: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn a_passphrase_with_a_colon_is_not_split() {
        let phrase = TokenKey::parse("my pass:phrase with a colon, long enough to use").unwrap();
        assert_eq!(phrase.kid().len(), 8);
        assert_eq!(
            TokenKey::parse("k1:0123456789abcdef0123456789abcdef")
                .unwrap()
                .kid(),
            "k1"
        );
    }
}
