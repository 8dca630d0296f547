//! Grants: what one client may upload. However a grant arrives (a JWT the
//! app signed, an authorization webhook's JSON answer, a Rust callback),
//! it becomes one [`Grant`], and every upload path checks files against it
//! with the same methods.
//!
//! A grant never names the temporary key (Chute picks `tmp/<id>/<name>`);
//! it names where the object may be *promoted* to: a key prefix, or a key
//! template such as `avatars/{user}/{uuid}{ext}` filled from the grant's
//! metadata and the upload ([`KeyTemplate`]).

use crate::derivative::{DerivativeLimits, DerivativeSpec, DeriveOn};
use crate::key::{KeyError, ObjectKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a client may upload. All limits are optional; an empty grant
/// allows anything (development mode's open grant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// An id for the grant (`jti` of a JWT): uploads under one id count
    /// against `max_files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Who the grant was issued to (`sub`), passed into receipts and hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Promotion targets must start with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Promotion targets are this template, expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The largest file in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// The smallest file in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// Allowed media types; `image/*` and `*/*` patterns work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Allowed file name extensions (`.png` or `png`, any case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    /// How many uploads the grant allows in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u32>,
    /// Free-form values passed into receipts and key templates (`{user}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// When the grant stops allowing new uploads (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// How long an upload under this grant may stay unfinished, in seconds
    /// (capped by the server's `upload_ttl_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_ttl: Option<u64>,
    /// Image derivatives to make of the upload: name (`thumb`) -> spec
    /// (`200x200 crop`); see [`crate::derivative`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub derivatives: BTreeMap<String, String>,
    /// When the derivatives are made: on completion (default) or promotion.
    #[serde(default, skip_serializing_if = "DeriveOn::is_default")]
    pub derive_on: DeriveOn,
}

/// A grant as an app signs it: the [`Grant`] fields plus the JWT claims.
/// `jti` becomes [`Grant::id`], `sub` [`Grant::subject`], `exp`
/// [`Grant::expires_at`].
///
/// Unknown claims are refused: a misspelt limit (`max_szie`) must fail
/// loudly rather than grant an upload without that limit. `iss` is the one
/// registered claim Chute does not use but accepts, since JWT libraries
/// and identity providers add it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaims {
    /// Audience; Chute expects [`crate::token::GRANT_AUDIENCE`] unless configured.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issuer; accepted and not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Grant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// See [`Grant::prefix`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// See [`Grant::template`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// See [`Grant::max_size`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// See [`Grant::min_size`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// See [`Grant::types`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// See [`Grant::extensions`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    /// See [`Grant::max_files`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u32>,
    /// See [`Grant::metadata`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// See [`Grant::upload_ttl`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_ttl: Option<u64>,
    /// See [`Grant::derivatives`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub derivatives: BTreeMap<String, String>,
    /// See [`Grant::derive_on`].
    #[serde(default, skip_serializing_if = "DeriveOn::is_default")]
    pub derive_on: DeriveOn,
}

impl From<GrantClaims> for Grant {
    fn from(c: GrantClaims) -> Self {
        Self {
            id: c.jti,
            subject: c.sub,
            prefix: c.prefix,
            template: c.template,
            max_size: c.max_size,
            min_size: c.min_size,
            types: c.types,
            extensions: c.extensions,
            max_files: c.max_files,
            metadata: c.metadata,
            expires_at: Some(c.exp),
            upload_ttl: c.upload_ttl,
            derivatives: c.derivatives,
            derive_on: c.derive_on,
        }
    }
}

/// Why a file breaks a grant. Messages are safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantViolation {
    /// Larger than `max_size`.
    #[error("file is {size} bytes; this grant allows at most {max}")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Smaller than `min_size`.
    #[error("file is {size} bytes; this grant needs at least {min}")]
    TooSmall {
        /// The file's size.
        size: u64,
        /// The limit.
        min: u64,
    },
    /// Media type not in `types`.
    #[error("type {0:?} is not allowed by this grant")]
    TypeNotAllowed(String),
    /// Extension not in `extensions`.
    #[error("file name extension of {0:?} is not allowed by this grant")]
    ExtensionNotAllowed(String),
    /// The grant's `expires_at` has passed.
    #[error("grant expired")]
    Expired,
    /// A promotion target outside `prefix`/`template`.
    #[error("key {0:?} is outside what this grant allows")]
    KeyNotAllowed(String),
    /// A template that does not expand to a valid key.
    #[error("key template: {0}")]
    Template(String),
    /// A derivative with a bad name or spec, or too many of them.
    #[error("{0}")]
    Derivative(String),
}

impl GrantViolation {
    /// A stable snake_case code for JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::TooSmall { .. } => "too_small",
            Self::TypeNotAllowed(_) => "type_not_allowed",
            Self::ExtensionNotAllowed(_) => "extension_not_allowed",
            Self::Expired => "grant_expired",
            Self::KeyNotAllowed(_) => "key_not_allowed",
            Self::Template(_) => "bad_template",
            Self::Derivative(_) => "bad_derivative",
        }
    }
}

impl Grant {
    /// Checks a size against `min_size` and `max_size`.
    pub fn check_size(&self, size: u64) -> Result<(), GrantViolation> {
        if let Some(max) = self.max_size
            && size > max
        {
            return Err(GrantViolation::TooLarge { size, max });
        }
        if let Some(min) = self.min_size
            && size < min
        {
            return Err(GrantViolation::TooSmall { size, min });
        }
        Ok(())
    }

    /// Checks a media type (parameters such as `; charset=` ignored)
    /// against `types`.
    pub fn check_type(&self, media_type: &str) -> Result<(), GrantViolation> {
        if self.types.is_empty() || self.types.iter().any(|p| type_matches(p, media_type)) {
            Ok(())
        } else {
            Err(GrantViolation::TypeNotAllowed(media_type.to_owned()))
        }
    }

    /// Checks a file name's extension against `extensions`.
    pub fn check_filename(&self, filename: &str) -> Result<(), GrantViolation> {
        if self.extensions.is_empty() {
            return Ok(());
        }
        let ext = extension(filename).to_ascii_lowercase();
        let ok = self.extensions.iter().any(|allowed| {
            let allowed = allowed.strip_prefix('.').unwrap_or(allowed);
            !ext.is_empty() && ext[1..] == allowed.to_ascii_lowercase()
        });
        if ok {
            Ok(())
        } else {
            Err(GrantViolation::ExtensionNotAllowed(filename.to_owned()))
        }
    }

    /// Checks that the grant has not expired at `now` (Unix seconds).
    pub fn check_live(&self, now: i64) -> Result<(), GrantViolation> {
        match self.expires_at {
            Some(exp) if exp <= now => Err(GrantViolation::Expired),
            _ => Ok(()),
        }
    }

    /// Parses and checks the grant's derivatives against `limits`.
    pub fn check_derivatives(
        &self,
        limits: &DerivativeLimits,
    ) -> Result<BTreeMap<String, DerivativeSpec>, GrantViolation> {
        crate::derivative::parse_all(&self.derivatives, limits)
            .map_err(|e| GrantViolation::Derivative(e.to_string()))
    }

    /// Checks a whole file: name, declared type and size.
    pub fn check_file(&self, filename: &str, media_type: &str, size: u64) -> Result<(), GrantViolation> {
        self.check_filename(filename)?;
        self.check_type(media_type)?;
        self.check_size(size)
    }

    /// Where an upload may be promoted. The grant decides, never the
    /// client alone: with a `template`, the requested template (if any)
    /// must be that one; with a `prefix`, a requested template may name
    /// any key below it (whole segments: prefix `users/42` allows
    /// `users/42/...`, not `users/420`); with neither, only
    /// `default_template` (the server's) is used, and a requested template
    /// must equal it.
    pub fn promotion_key(
        &self,
        requested: Option<&str>,
        default_template: &str,
        vars: &TemplateVars<'_>,
    ) -> Result<ObjectKey, GrantViolation> {
        let own = match (&self.template, &self.prefix) {
            (Some(own), _) => Some(own.as_str()),
            (None, Some(_)) => None,
            (None, None) => Some(default_template),
        };
        if let (Some(req), Some(own)) = (requested, own)
            && req != own
        {
            return Err(GrantViolation::KeyNotAllowed(req.to_owned()));
        }
        let template = requested.or(own).unwrap_or(default_template);
        let key = KeyTemplate::parse(template)?.expand(vars, &self.metadata)?;
        if let Some(prefix) = &self.prefix {
            let dir = if prefix.ends_with('/') {
                prefix.clone()
            } else {
                format!("{prefix}/")
            };
            if !key.as_str().starts_with(&dir) {
                return Err(GrantViolation::KeyNotAllowed(key.as_str().to_owned()));
            }
        }
        Ok(key)
    }
}

/// The extension of a file name with its dot (`.png`), or `""`.
pub fn extension(filename: &str) -> &str {
    match filename.rfind('.') {
        Some(dot) if dot > 0 && filename.len() - dot <= 16 => &filename[dot..],
        _ => "",
    }
}

fn type_matches(pattern: &str, media_type: &str) -> bool {
    let media = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let pattern = pattern.trim().to_ascii_lowercase();
    // SVG is a script-carrying document with no magic number; a wildcard
    // such as `image/*` does not let it in, only `image/svg+xml` named.
    let wildcard = pattern == "*/*" || pattern == "*" || pattern.ends_with("/*");
    if wildcard && media == "image/svg+xml" {
        return false;
    }
    if pattern == "*/*" || pattern == "*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(major) => media.split_once('/').is_some_and(|(m, _)| m == major),
        None => media == pattern,
    }
}

/// The values a [`KeyTemplate`] fills in besides the grant's metadata.
#[derive(Debug, Clone)]
pub struct TemplateVars<'a> {
    /// The upload id (`{id}`).
    pub upload_id: &'a str,
    /// A UUID derived from the upload (`{uuid}`), stable across retries.
    pub uuid: &'a str,
    /// The sanitised original file name (`{filename}`; `{stem}` and `{ext}`
    /// derive from it unless `ext` is set).
    pub filename: &'a str,
    /// The extension with its dot chosen from the detected type (`{ext}`);
    /// falls back to the file name's.
    pub ext: Option<&'a str>,
    /// The grant's subject (`{sub}`).
    pub subject: Option<&'a str>,
    /// The upload date as `YYYY/MM/DD` (`{date}`).
    pub date: &'a str,
}

/// A promotion key template: literal text and `{name}` placeholders.
/// Placeholders are `id`, `uuid`, `filename`, `stem`, `ext`, `sub`, `date`
/// or any key of the grant's metadata. Every value but `date` and `ext`
/// is percent-encoded into one key segment (`encode_segment`), so no
/// value can add a `/`; a value of `.` or `..` makes the key invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

impl KeyTemplate {
    /// Parses a template; `{{` and `}}` are literal braces.
    pub fn parse(template: &str) -> Result<Self, GrantViolation> {
        let bad = |why: &str| GrantViolation::Template(format!("{template:?}: {why}"));
        if template.is_empty() || template.len() > 512 {
            return Err(bad("must be 1-512 bytes"));
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '-' => name.push(c),
                            Some(_) => return Err(bad("placeholder names are letters, digits, _ and -")),
                            None => return Err(bad("unclosed {")),
                        }
                    }
                    if name.is_empty() {
                        return Err(bad("empty placeholder"));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(name));
                }
                '}' => return Err(bad("unmatched }")),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self { pieces })
    }

    /// Fills the placeholders and parses the result as an [`ObjectKey`].
    pub fn expand(
        &self,
        vars: &TemplateVars<'_>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<ObjectKey, GrantViolation> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(name) => out.push_str(&self.value(name, vars, metadata)?),
            }
        }
        ObjectKey::parse(&out).map_err(|e: KeyError| GrantViolation::Template(format!("{out:?}: {e}")))
    }

    fn value(
        &self,
        name: &str,
        vars: &TemplateVars<'_>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, GrantViolation> {
        let file_ext = extension(vars.filename);
        let raw = match name {
            "id" => vars.upload_id.to_owned(),
            "uuid" => vars.uuid.to_owned(),
            "filename" => vars.filename.to_owned(),
            "stem" => vars.filename[..vars.filename.len() - file_ext.len()].to_owned(),
            "ext" => return Ok(sanitize_ext(vars.ext.unwrap_or(file_ext))),
            "date" => return Ok(vars.date.to_owned()),
            "sub" => vars
                .subject
                .ok_or_else(|| GrantViolation::Template("{sub}: the grant has no subject".into()))?
                .to_owned(),
            other => metadata
                .get(other)
                .ok_or_else(|| GrantViolation::Template(format!("{{{other}}}: no such value in the grant")))?
                .clone(),
        };
        if raw.is_empty() {
            return Err(GrantViolation::Template(format!("{{{name}}} is empty")));
        }
        Ok(encode_segment(&raw))
    }
}

/// A template value as one key segment: letters, digits, `-`, `_`, `.`
/// and `~` stay, every other byte (`/` included) becomes `%XX`, so two
/// different values never collapse into one and none adds a segment.
fn encode_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sanitize_ext(ext: &str) -> String {
    let body: String = ext
        .trim_start_matches('.')
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(15)
        .collect::<String>()
        .to_ascii_lowercase();
    if body.is_empty() {
        String::new()
    } else {
        format!(".{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars<'static> {
        TemplateVars {
            upload_id: "01abc",
            uuid: "6f1c6a0e-5d6b-4d6f-9a4e-0e1f2a3b4c5d",
            filename: "My_Photo.JPG",
            ext: Some(".jpg"),
            subject: Some("user-7"),
            date: "2026/11/21",
        }
    }

    #[test]
    fn a_misspelt_grant_claim_is_refused_not_ignored() {
        // `max_szie` silently granting no size limit would be a hole.
        let ring = crate::Keyring::new(crate::TokenKey::new("k", vec![7; 32]).unwrap(), vec![]);
        let now = time::OffsetDateTime::now_utc();
        let exp = now.unix_timestamp() + 60;
        let claims = serde_json::json!({"aud": crate::token::GRANT_AUDIENCE, "exp": exp, "max_szie": 10});
        let token = ring.sign(&claims).unwrap();
        let err = ring
            .verify::<GrantClaims>(&token, crate::token::GRANT_AUDIENCE, now)
            .unwrap_err();
        assert!(err.to_string().contains("max_szie"), "{err}");
        // Registered claims a JWT library adds on its own stay accepted.
        let claims = serde_json::json!({
            "aud": crate::token::GRANT_AUDIENCE, "exp": exp, "iss": "my-app", "iat": now.unix_timestamp(),
            "nbf": now.unix_timestamp(), "jti": "g1", "sub": "u1", "max_size": 10
        });
        let token = ring.sign(&claims).unwrap();
        let grant: Grant = ring
            .verify::<GrantClaims>(&token, crate::token::GRANT_AUDIENCE, now)
            .unwrap()
            .into();
        assert_eq!(grant.max_size, Some(10));
    }

    #[test]
    fn size_type_and_extension_checks() {
        let g = Grant {
            max_size: Some(10),
            min_size: Some(2),
            types: vec!["image/*".into(), "application/pdf".into()],
            extensions: vec![".png".into(), "PDF".into()],
            ..Grant::default()
        };
        assert!(g.check_file("a.png", "image/png", 5).is_ok());
        assert!(
            g.check_file("a.PDF", "application/pdf; charset=binary", 2)
                .is_ok()
        );
        assert_eq!(
            g.check_size(11),
            Err(GrantViolation::TooLarge { size: 11, max: 10 })
        );
        assert_eq!(g.check_size(1), Err(GrantViolation::TooSmall { size: 1, min: 2 }));
        assert!(matches!(
            g.check_type("text/html"),
            Err(GrantViolation::TypeNotAllowed(_))
        ));
        assert!(matches!(
            g.check_type("imagex/png"),
            Err(GrantViolation::TypeNotAllowed(_))
        ));
        assert!(matches!(
            g.check_filename("a.png.html"),
            Err(GrantViolation::ExtensionNotAllowed(_))
        ));
        assert!(matches!(
            g.check_filename("png"),
            Err(GrantViolation::ExtensionNotAllowed(_))
        ));
        assert!(
            Grant::default()
                .check_file("x", "anything/at-all", u64::MAX)
                .is_ok()
        );
    }

    #[test]
    fn templates_expand_safely() {
        let mut meta = BTreeMap::new();
        meta.insert("user".to_owned(), "../../etc".to_owned());
        let key = KeyTemplate::parse("avatars/{user}/{uuid}{ext}")
            .unwrap()
            .expand(&vars(), &meta)
            .unwrap();
        assert_eq!(
            key.as_str(),
            "avatars/..%2F..%2Fetc/6f1c6a0e-5d6b-4d6f-9a4e-0e1f2a3b4c5d.jpg"
        );
        let key = KeyTemplate::parse("d/{date}/{stem}-{id}{{x}}")
            .unwrap()
            .expand(&vars(), &meta)
            .unwrap();
        assert_eq!(key.as_str(), "d/2026/11/21/My_Photo-01abc{x}");
        assert!(
            KeyTemplate::parse("a/{nope}")
                .unwrap()
                .expand(&vars(), &meta)
                .is_err()
        );
        assert!(KeyTemplate::parse("a/{unclosed").is_err());
        assert!(KeyTemplate::parse("a/}").is_err());
        assert!(
            KeyTemplate::parse("../{uuid}")
                .unwrap()
                .expand(&vars(), &meta)
                .is_err()
        );
        assert!(
            KeyTemplate::parse("/abs/{uuid}")
                .unwrap()
                .expand(&vars(), &meta)
                .is_err()
        );
    }

    #[test]
    fn promotion_respects_template_and_prefix() {
        let g = Grant {
            template: Some("avatars/{sub}/{uuid}{ext}".into()),
            prefix: Some("avatars/".into()),
            ..Grant::default()
        };
        let k = g.promotion_key(None, "uploads/{uuid}{ext}", &vars()).unwrap();
        assert_eq!(
            k.as_str(),
            "avatars/user-7/6f1c6a0e-5d6b-4d6f-9a4e-0e1f2a3b4c5d.jpg"
        );
        assert!(matches!(
            g.promotion_key(Some("docs/{uuid}"), "x", &vars()),
            Err(GrantViolation::KeyNotAllowed(_))
        ));
        let p = Grant {
            prefix: Some("docs/".into()),
            ..Grant::default()
        };
        assert!(p.promotion_key(Some("docs/{uuid}"), "x", &vars()).is_ok());
        assert!(matches!(
            p.promotion_key(Some("avatars/{uuid}"), "x", &vars()),
            Err(GrantViolation::KeyNotAllowed(_))
        ));
        assert!(matches!(
            p.promotion_key(Some("docs/../../{uuid}"), "x", &vars()),
            Err(GrantViolation::Template(_))
        ));
    }

    #[test]
    fn claims_become_a_grant() {
        let json = r#"{"aud":"chute","exp":100,"jti":"g1","sub":"u","max_files":2,"types":["image/*"]}"#;
        let claims: GrantClaims = serde_json::from_str(json).unwrap();
        let g = Grant::from(claims);
        assert_eq!(g.id.as_deref(), Some("g1"));
        assert_eq!(g.expires_at, Some(100));
        assert_eq!(g.check_live(100), Err(GrantViolation::Expired));
        assert!(g.check_live(99).is_ok());
    }

    #[test]
    fn derivatives_travel_from_claims_and_are_checked() {
        let json = r#"{"aud":"chute","exp":100,"derivatives":{"thumb":"200x200 crop","big":"1200x1200 fit webp"},"derive_on":"promote"}"#;
        let g = Grant::from(serde_json::from_str::<GrantClaims>(json).unwrap());
        assert_eq!(g.derive_on, DeriveOn::Promote);
        let specs = g.check_derivatives(&DerivativeLimits::default()).unwrap();
        assert_eq!(specs["thumb"].width, 200);
        // The webhook's JSON grant keeps refusing unknown fields.
        let bad = serde_json::from_str::<Grant>(r#"{"derivative":{"thumb":"1x1 fit"}}"#);
        assert!(bad.is_err());
        let ok: Grant = serde_json::from_str(r#"{"derivatives":{"thumb":"1x1 fit"}}"#).unwrap();
        assert_eq!(ok.derive_on, DeriveOn::Complete);
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"derivatives":{"thumb":"1x1 fit"}}"#
        );
        let huge = Grant {
            derivatives: BTreeMap::from([("thumb".into(), "9000x10 fit".into())]),
            ..Grant::default()
        };
        let err = huge.check_derivatives(&DerivativeLimits::default()).unwrap_err();
        assert_eq!(err.code(), "bad_derivative");
        assert!(err.to_string().contains("\"thumb\""), "{err}");
    }

    #[test]
    fn review_fixes() {
        // Template values never collapse into another user's folder.
        let mut meta = BTreeMap::new();
        meta.insert("user".to_owned(), "mallory/alice".to_owned());
        let key = KeyTemplate::parse("u/{user}/x")
            .unwrap()
            .expand(&vars(), &meta)
            .unwrap();
        assert_eq!(key.as_str(), "u/mallory%2Falice/x");
        meta.insert("user".to_owned(), "..".to_owned());
        assert!(
            KeyTemplate::parse("u/{user}/x")
                .unwrap()
                .expand(&vars(), &meta)
                .is_err()
        );
        // Without template or prefix the client cannot choose the key.
        let open = Grant::default();
        assert!(open.promotion_key(None, "uploads/{uuid}{ext}", &vars()).is_ok());
        assert!(matches!(
            open.promotion_key(Some("avatars/alice.png"), "uploads/{uuid}{ext}", &vars()),
            Err(GrantViolation::KeyNotAllowed(_))
        ));
        // Prefixes match whole segments.
        let seg = Grant {
            prefix: Some("users/42".into()),
            ..Grant::default()
        };
        assert!(seg.promotion_key(Some("users/42/{uuid}"), "x", &vars()).is_ok());
        assert!(matches!(
            seg.promotion_key(Some("users/420/{uuid}"), "x", &vars()),
            Err(GrantViolation::KeyNotAllowed(_))
        ));
        // SVG needs naming; image/* does not admit it.
        let images = Grant {
            types: vec!["image/*".into()],
            ..Grant::default()
        };
        assert!(images.check_type("image/svg+xml").is_err());
        let svg = Grant {
            types: vec!["image/svg+xml".into()],
            ..Grant::default()
        };
        assert!(svg.check_type("image/svg+xml").is_ok());
    }
}
