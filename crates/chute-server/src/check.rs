//! `chute check --deploy`: which settings of a valid [`Config`] are unfit
//! for production (DESIGN.md §3). Validation itself (`Config::try_from`)
//! refuses settings that cannot work; this module names settings that
//! work but are unsafe: the embedded store, generated or well-known
//! credentials, no grant secret, open grants, wildcard CORS where
//! credentials are in play, and plain-http public URLs.

use crate::config::{Config, Mode};
use std::fmt;

/// Access keys and secrets published in documentation and defaults; a
/// store or server using one is open to anyone who has read the docs.
const WELL_KNOWN_KEYS: &[&str] = &[
    // AWS documentation
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AKIAI44QH8DHBEXAMPLE",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    // MinIO defaults
    "minioadmin",
    "minio123",
    // Chute's README
    "chutedev",
    "chutedevsecret",
];

/// One setting unfit for production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting's name as in the TOML file (`store` for the choice of
    /// store, which several settings make).
    pub setting: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl Problem {
    fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// Every problem `config` has for a production deployment, in a stable
/// order; empty when it is fit.
pub fn deploy_problems(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    if config.mode == Mode::Development {
        problems.push(Problem::new(
            "mode",
            "development mode (generated credentials, open grants, loopback CORS); set mode = \"production\"",
        ));
    }
    if config.uses_embedded_store() {
        problems.push(Problem::new(
            "store",
            "the embedded filesystem store is for development and tests; configure an S3 backend",
        ));
    }
    credentials(config, &mut problems);
    if config.grant_keys.is_none() {
        problems.push(Problem::new(
            "grant_secret",
            "not set: upload tokens and receipts are signed with a generated development secret; \
             set CHUTE_GRANT_SECRET (at least 32 random bytes)",
        ));
    }
    if config.open_grants {
        problems.push(Problem::new(
            "open_grants",
            "anyone can create uploads without a grant; set open_grants = false",
        ));
    }
    if config.allowed_origins.iter().any(|o| o == "*") && config.grant_webhook_url.is_some() {
        problems.push(Problem::new(
            "allowed_origins",
            "`*` with the authorization webhook, which authenticates by the browser's cookies: \
             any site could act with a user's session; list the app's origins instead",
        ));
    }
    urls(config, &mut problems);
    problems
}

fn credentials(config: &Config, problems: &mut Vec<Problem>) {
    let backend_creds = config.s3_backend.as_ref().map(|b| crate::StoreCredentials {
        access_key: b.credentials.access_key.clone(),
        secret_key: b.credentials.secret_key.clone(),
    });
    if let Some(b) = &config.s3_backend
        && b.endpoint.starts_with("http://")
    {
        problems.push(Problem::new(
            "s3_endpoint",
            format!(
                "{} is plain http: signatures and data travel in clear; use https",
                b.endpoint
            ),
        ));
    }
    let Some(creds) = config.credentials.as_ref().or(backend_creds.as_ref()) else {
        if config.uses_embedded_store() {
            problems.push(Problem::new(
                "s3_access_key",
                "development credentials are generated and printed at start; set s3_access_key \
                 and s3_secret_key",
            ));
        }
        return;
    };
    let known = |k: &str| WELL_KNOWN_KEYS.iter().any(|w| w.eq_ignore_ascii_case(k));
    if known(&creds.access_key) {
        problems.push(Problem::new(
            "s3_access_key",
            format!(
                "{:?} is a published example key; choose a random one",
                creds.access_key
            ),
        ));
    }
    if known(&creds.secret_key) {
        problems.push(Problem::new(
            "s3_secret_key",
            "is a published example secret; choose a random one",
        ));
    }
    if crate::credentials::kept(&config.data_dir)
        .is_some_and(|kept| kept.access_key == creds.access_key || kept.secret_key == creds.secret_key)
    {
        problems.push(Problem::new(
            "s3_access_key",
            format!(
                "these are the development credentials `chute serve` generated and printed (kept in {}); \
                 choose new ones",
                config.data_dir.join(crate::credentials::FILE).display()
            ),
        ));
    }
}

fn urls(config: &Config, problems: &mut Vec<Problem>) {
    match &config.public_url {
        None if config.mode == Mode::Production => problems.push(Problem::new(
            "public_url",
            "not set: say where browsers reach Chute (https://uploads.example.com)",
        )),
        Some(url) if url.starts_with("http://") => problems.push(Problem::new(
            "public_url",
            format!("{url} is plain http: tokens and receipts would cross the network in clear; use https"),
        )),
        _ => {}
    }
    if let Some(url) = &config.s3_public_url
        && url.starts_with("http://")
    {
        problems.push(Problem::new(
            "s3_public_url",
            format!(
                "{url} is plain http: uploads and presigned URLs would cross the network in clear; use https"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawConfig;

    fn production() -> RawConfig {
        RawConfig {
            mode: Some("production".into()),
            data_dir: Some("/nonexistent/chute-check".into()),
            s3_access_key: Some("AKIA7QNRJX2M4Z8WKD5T".into()),
            s3_secret_key: Some("c0Vq1fY9pX3nL7tR2kW8sJ5mB4hD6gZ0aE1uI9oQ".into()),
            grant_secret: Some("k1:3d8f0b6c2a9e4f71b5c8d0e2a4f6b8c1".into()),
            allowed_origins: Some(vec!["https://app.example.com".into()]),
            public_url: Some("https://uploads.example.com".into()),
            ..RawConfig::default()
        }
    }

    fn settings(raw: RawConfig) -> Vec<&'static str> {
        let config = Config::try_from(raw).unwrap();
        deploy_problems(&config)
            .iter()
            .map(|p| p.setting)
            .filter(|s| *s != "store")
            .collect()
    }

    #[test]
    fn a_production_config_is_clean_but_for_the_store() {
        let config = Config::try_from(production()).unwrap();
        let problems = deploy_problems(&config);
        let store = problems.iter().filter(|p| p.setting == "store").count();
        assert_eq!(store, usize::from(config.uses_embedded_store()));
        assert_eq!(settings(production()), Vec::<&str>::new(), "{problems:?}");
    }

    #[test]
    fn development_defaults_fail_on_every_count() {
        assert_eq!(
            settings(RawConfig::default()),
            ["mode", "s3_access_key", "grant_secret", "open_grants"]
        );
    }

    #[test]
    fn each_unsafe_setting_is_named() {
        let cases: Vec<(RawConfig, &[&str])> = vec![
            (
                RawConfig {
                    s3_access_key: Some("AKIAIOSFODNN7EXAMPLE".into()),
                    s3_secret_key: Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
                    ..production()
                },
                &["s3_access_key", "s3_secret_key"],
            ),
            (
                RawConfig {
                    s3_access_key: Some("minioadmin".into()),
                    s3_secret_key: Some("minioadmin".into()),
                    ..production()
                },
                &["s3_access_key", "s3_secret_key"],
            ),
            (
                RawConfig {
                    grant_secret: None,
                    ..production()
                },
                &["grant_secret"],
            ),
            (
                RawConfig {
                    open_grants: Some(true),
                    ..production()
                },
                &["open_grants"],
            ),
            (
                RawConfig {
                    allowed_origins: Some(vec!["*".into()]),
                    grant_webhook_url: Some("https://app.example.com/chute/grant".into()),
                    ..production()
                },
                &["allowed_origins"],
            ),
            (
                RawConfig {
                    public_url: Some("http://uploads.example.com".into()),
                    s3_public_url: Some("http://s3.example.com".into()),
                    ..production()
                },
                &["public_url", "s3_public_url"],
            ),
            (
                RawConfig {
                    public_url: None,
                    ..production()
                },
                &["public_url"],
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(settings(raw.clone()), expected, "{raw:?}");
        }
    }

    #[test]
    fn a_wildcard_without_cookies_is_allowed() {
        let raw = RawConfig {
            allowed_origins: Some(vec!["*".into()]),
            ..production()
        };
        assert_eq!(settings(raw), Vec::<&str>::new());
    }

    #[test]
    fn printed_development_credentials_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (creds, _) = crate::credentials::load_or_generate(dir.path()).unwrap();
        let raw = RawConfig {
            data_dir: Some(dir.path().to_owned()),
            s3_access_key: Some(creds.access_key),
            s3_secret_key: Some(creds.secret_key),
            ..production()
        };
        assert_eq!(settings(raw), ["s3_access_key"]);
    }

    #[test]
    fn an_s3_backend_is_clean_over_https_with_its_own_keys() {
        let s3 = |endpoint: &str, key: &str| {
            let config = Config::try_from(RawConfig {
                store: Some("s3".into()),
                s3_endpoint: Some(endpoint.into()),
                s3_access_key: Some(key.into()),
                ..production()
            })
            .unwrap();
            deploy_problems(&config)
                .iter()
                .map(|p| p.setting)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            s3("https://s3.eu-west-1.amazonaws.com", "AKIA7QNRJX2M4Z8WKD5T"),
            Vec::<&str>::new()
        );
        assert_eq!(
            s3("http://127.0.0.1:3900", "AKIA7QNRJX2M4Z8WKD5T"),
            vec!["s3_endpoint"]
        );
        assert_eq!(s3("https://minio.internal", "minioadmin"), vec!["s3_access_key"]);
    }

    #[test]
    fn problems_print_as_one_line_each() {
        let p = Problem::new("open_grants", "anyone can upload");
        assert_eq!(p.to_string(), "open_grants: anyone can upload");
    }
}
