//! Grant minting: [`GrantBuilder`] fills chute-core's [`GrantClaims`] (who,
//! where to, how big, which types, how many files, metadata, image
//! derivatives, how long)
//! and signs them with the grant keyring, giving the JWT the page hands to
//! the widget (`data-grant`).

use chute_core::token::GRANT_AUDIENCE;
use chute_core::{DeriveOn, GrantClaims, Keyring, TokenError};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a grant lives unless [`GrantBuilder::ttl`] says otherwise: long
/// enough to fill in a form.
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(3600);

/// A grant being built. Every limit is optional; `sign` turns it into the
/// JWT Chute checks on `POST /api/uploads`.
#[derive(Debug, Clone)]
pub struct GrantBuilder {
    claims: GrantClaims,
    ttl: Duration,
}

impl Default for GrantBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GrantBuilder {
    /// An empty grant for Chute's default audience, valid for
    /// [`DEFAULT_GRANT_TTL`].
    pub fn new() -> Self {
        Self {
            claims: GrantClaims {
                aud: GRANT_AUDIENCE.to_owned(),
                ..GrantClaims::default()
            },
            ttl: DEFAULT_GRANT_TTL,
        }
    }

    /// The audience Chute expects (its `grant_audience` setting).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.claims.aud = aud.into();
        self
    }

    /// Who the grant is for (the session user); receipts carry it.
    pub fn subject(mut self, sub: impl Into<String>) -> Self {
        self.claims.sub = Some(sub.into());
        self
    }

    /// The grant's id; uploads under one id count against `max_files`
    /// (random per signed grant unless set).
    pub fn id(mut self, jti: impl Into<String>) -> Self {
        self.claims.jti = Some(jti.into());
        self
    }

    /// Promotion targets must lie below `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.claims.prefix = Some(prefix.into());
        self
    }

    /// Promotion targets are `template` (`avatars/{user}/{uuid}{ext}`).
    pub fn template(mut self, template: impl Into<String>) -> Self {
        self.claims.template = Some(template.into());
        self
    }

    /// The largest file in bytes.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.claims.max_size = Some(bytes);
        self
    }

    /// The smallest file in bytes.
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.claims.min_size = Some(bytes);
        self
    }

    /// Allowed media types (`image/*` works).
    pub fn types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.claims.types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Allowed file name extensions.
    pub fn extensions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, extensions: I) -> Self {
        self.claims.extensions = extensions.into_iter().map(Into::into).collect();
        self
    }

    /// How many uploads the grant allows in total.
    pub fn max_files(mut self, n: u32) -> Self {
        self.claims.max_files = Some(n);
        self
    }

    /// A metadata value (receipts and key templates see it: `{user}`).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.claims.metadata.insert(key.into(), value.into());
        self
    }

    /// An image derivative to make of each upload: `name` (`thumb`) and
    /// `spec` (`200x200 crop`, `1200x1200 fit webp`, `800x800 fit jpeg q80`); receipts name
    /// its key.
    pub fn derivative(mut self, name: impl Into<String>, spec: impl Into<String>) -> Self {
        self.claims.derivatives.insert(name.into(), spec.into());
        self
    }

    /// When derivatives are made: on completion (default) or promotion.
    pub fn derive_on(mut self, when: DeriveOn) -> Self {
        self.claims.derive_on = when;
        self
    }

    /// How long the grant allows new uploads.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The claims as they would be signed at `now`.
    pub fn claims_at(&self, now: OffsetDateTime) -> GrantClaims {
        let now = now.unix_timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        GrantClaims {
            iat: Some(now),
            exp: now.saturating_add(ttl),
            ..self.claims.clone()
        }
    }

    /// The signed grant JWT, issued now. Without an [`Self::id`] each one
    /// gets a random id: Chute counts `max_files` per id, and two grants
    /// minted alike in the same second (two tabs, a reload) would
    /// otherwise be the same token and share the count.
    pub fn sign(&self, keyring: &Keyring) -> Result<String, TokenError> {
        let mut claims = self.claims_at(OffsetDateTime::now_utc());
        claims
            .jti
            .get_or_insert_with(|| uuid::Uuid::new_v4().simple().to_string());
        keyring.sign(&claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chute_core::{Grant, TokenKey};

    #[test]
    fn signed_grants_verify_as_chute_reads_them() {
        let ring = Keyring::new(TokenKey::new("g1", vec![7; 32]).unwrap(), vec![]);
        let token = GrantBuilder::new()
            .subject("alice")
            .prefix("avatars/alice")
            .types(["image/*"])
            .max_size(1 << 20)
            .max_files(1)
            .metadata("user", "alice")
            .derivative("thumb", "200x200 crop")
            .derive_on(DeriveOn::Promote)
            .ttl(Duration::from_secs(60))
            .sign(&ring)
            .unwrap();
        let claims: GrantClaims = ring
            .verify(&token, GRANT_AUDIENCE, OffsetDateTime::now_utc())
            .unwrap();
        let grant = Grant::from(claims);
        assert_eq!(grant.subject.as_deref(), Some("alice"));
        assert_eq!(grant.max_files, Some(1));
        assert_eq!(grant.metadata["user"], "alice");
        assert_eq!(grant.derivatives["thumb"], "200x200 crop");
        assert_eq!(grant.derive_on, DeriveOn::Promote);
        assert!(grant.check_type("image/png").is_ok());
        assert!(grant.check_type("application/pdf").is_err());
    }
}
