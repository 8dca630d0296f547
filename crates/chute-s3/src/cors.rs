//! Per-bucket CORS as S3 does it: the configuration document stored as JSON
//! in the bucket's `cors` config slot, rule matching (origins with one `*`,
//! methods, requested headers case-insensitively), preflight answers, and
//! the `Access-Control-*` headers added to actual responses (errors too, so
//! browsers can read them). The S3 operations that edit the document live
//! in [`crate::ops`]; wiring into the request flow in [`crate::service`].

use crate::error::s3_error_response;
use chute_core::BucketName;
use chute_store::StoreResult;
use chute_store::fs::FsStore;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

/// The bucket config slot holding the CORS document.
pub const CORS_CONFIG: &str = "cors";

/// The methods S3 allows in CORS rules.
pub const ALLOWED_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// A bucket's CORS configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CorsConfig {
    /// The rules, first match wins.
    pub rules: Vec<CorsRule>,
}

/// One CORS rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CorsRule {
    /// Origins allowed, each with at most one `*`.
    pub allowed_origins: Vec<String>,
    /// Methods allowed (GET, PUT, POST, DELETE, HEAD).
    pub allowed_methods: Vec<String>,
    /// Request headers allowed in preflights, each with at most one `*`.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
    /// An optional rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Whether `value` matches `pattern`, which may hold one `*` matching any
/// run of characters; ASCII case-insensitive when `fold` is set.
fn wildcard_match(pattern: &str, value: &str, fold: bool) -> bool {
    let eq = |a: &str, b: &str| if fold { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.is_char_boundary(prefix.len())
                && value.is_char_boundary(value.len() - suffix.len())
                && eq(&value[..prefix.len()], prefix)
                && eq(&value[value.len() - suffix.len()..], suffix)
        }
    }
}

impl CorsRule {
    /// Whether the rule allows `origin`.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|p| wildcard_match(p, origin, false))
    }

    /// Whether the rule allows `method`.
    pub fn allows_method(&self, method: &str) -> bool {
        self.allowed_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method))
    }

    /// Whether every requested header is allowed.
    pub fn allows_headers<'a>(&self, mut requested: impl Iterator<Item = &'a str>) -> bool {
        requested.all(|h| self.allowed_headers.iter().any(|p| wildcard_match(p, h, true)))
    }

    /// The `Access-Control-Allow-Origin` value: `*` for a rule allowing any origin.
    fn allow_origin_value<'a>(&self, origin: &'a str) -> &'a str {
        if self.allowed_origins.iter().any(|o| o == "*") {
            "*"
        } else {
            origin
        }
    }
}

impl CorsConfig {
    /// The first rule allowing `origin` and `method`.
    pub fn find(&self, origin: &str, method: &str) -> Option<&CorsRule> {
        self.rules
            .iter()
            .find(|r| r.allows_origin(origin) && r.allows_method(method))
    }

    /// Checks what S3 checks on PutBucketCors; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.rules.is_empty() || self.rules.len() > 100 {
            return Err("A CORS configuration must have between 1 and 100 rules.".into());
        }
        for rule in &self.rules {
            if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
                return Err("Every CORS rule needs an AllowedOrigin and an AllowedMethod.".into());
            }
            if let Some(m) = rule
                .allowed_methods
                .iter()
                .find(|m| !ALLOWED_METHODS.contains(&m.as_str()))
            {
                return Err(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
            if let Some(o) = rule.allowed_origins.iter().find(|o| o.matches('*').count() > 1) {
                return Err(format!(
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                ));
            }
            if let Some(h) = rule.allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
                return Err(format!(
                    "AllowedHeader \"{h}\" can not have more than one wildcard."
                ));
            }
        }
        Ok(())
    }
}

/// The bucket's CORS configuration, if it has one.
pub async fn load_cors(store: &FsStore, bucket: &BucketName) -> StoreResult<Option<CorsConfig>> {
    let Some(raw) = store.get_bucket_config(bucket, CORS_CONFIG).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| chute_store::StoreError::Corrupt(format!("CORS config of {}: {e}", bucket.as_str())))
}

/// Stores (or with `None` removes) the bucket's CORS configuration.
pub async fn save_cors(store: &FsStore, bucket: &BucketName, config: Option<&CorsConfig>) -> StoreResult<()> {
    let raw = config
        .map(serde_json::to_vec)
        .transpose()
        .map_err(|e| chute_store::StoreError::Corrupt(format!("CORS config: {e}")))?;
    store.put_bucket_config(bucket, CORS_CONFIG, raw).await
}

/// The rule installed in development mode: `origins` may use the bucket from
/// a browser with any header, reading ETags and checksums.
pub fn default_rule(origins: &[String]) -> CorsRule {
    let mut expose = vec!["ETag".to_owned()];
    expose.extend(
        chute_core::ChecksumAlgorithm::ALL
            .iter()
            .map(|a| a.header_name().to_owned()),
    );
    expose.push("x-amz-version-id".to_owned());
    CorsRule {
        allowed_origins: origins.to_vec(),
        allowed_methods: ["GET", "PUT", "POST", "HEAD", "DELETE"]
            .map(String::from)
            .to_vec(),
        allowed_headers: vec!["*".to_owned()],
        expose_headers: expose,
        max_age_seconds: Some(3000),
        id: Some("chute-development".to_owned()),
    }
}

/// Installs [`default_rule`] for `origins` unless the bucket already has a
/// CORS configuration (an operator's own configuration always wins).
pub async fn ensure_default_cors(
    store: &FsStore,
    bucket: &BucketName,
    origins: &[String],
) -> StoreResult<()> {
    if store.get_bucket_config(bucket, CORS_CONFIG).await?.is_some() {
        return Ok(());
    }
    let config = CorsConfig {
        rules: vec![default_rule(origins)],
    };
    save_cors(store, bucket, Some(&config)).await
}

/// The bucket a path-style request addresses, if any.
pub(crate) fn path_bucket(uri: &http::Uri) -> Option<BucketName> {
    let path = uri.path().strip_prefix('/')?;
    let first = path.split('/').next()?;
    BucketName::parse(first).ok()
}

/// Whether the request is a CORS preflight.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Adds each of `tokens` to the response's `Vary` unless an existing value
/// already names it (or is `*`); names compare case-insensitively.
fn add_vary(headers: &mut HeaderMap, tokens: &[&str]) {
    let present: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    if present.iter().any(|t| t == "*") {
        return;
    }
    let missing: Vec<&str> = tokens
        .iter()
        .copied()
        .filter(|t| !present.iter().any(|p| p.eq_ignore_ascii_case(t)))
        .collect();
    if missing.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&missing.join(", ")) {
        headers.append(header::VARY, v);
    }
}

/// What a preflight answer varies by.
const PREFLIGHT_VARY: [&str; 3] = [
    "Origin",
    "Access-Control-Request-Headers",
    "Access-Control-Request-Method",
];

/// Answers a preflight: 200 with the allow headers when a rule matches,
/// else 403 `AccessForbidden`, as S3 does.
pub(crate) async fn preflight(
    store: &FsStore,
    uri: &http::Uri,
    headers: &HeaderMap,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
    };
    let origin = header_str(header::ORIGIN);
    let method = header_str(header::ACCESS_CONTROL_REQUEST_METHOD);
    let requested: Vec<&str> = header_str(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let config = match path_bucket(uri) {
        Some(bucket) => load_cors(store, &bucket).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read CORS config");
            None
        }),
        None => None,
    };
    let rule = config.as_ref().and_then(|c| {
        c.rules.iter().find(|r| {
            r.allows_origin(origin) && r.allows_method(method) && r.allows_headers(requested.iter().copied())
        })
    });
    let Some(rule) = rule else {
        let mut resp = s3_error_response(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            uri.path(),
            request_id,
        );
        // With a configuration, another origin or request may be allowed:
        // caches must not reuse this refusal for it.
        if config.is_some() {
            add_vary(resp.headers_mut(), &PREFLIGHT_VARY);
        }
        return resp;
    };
    let mut resp = http::Response::new(s3s::Body::empty());
    let h = resp.headers_mut();
    let allow_origin = rule.allow_origin_value(origin);
    insert(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    if allow_origin != "*" {
        insert(h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    insert(
        h,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        &rule.allowed_methods.join(", "),
    );
    if !requested.is_empty() {
        insert(h, header::ACCESS_CONTROL_ALLOW_HEADERS, &requested.join(", "));
    }
    if !rule.expose_headers.is_empty() {
        insert(
            h,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        insert(h, header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
    }
    add_vary(h, &PREFLIGHT_VARY);
    insert(h, header::HeaderName::from_static("x-amz-request-id"), request_id);
    resp
}

/// Adds `Access-Control-Allow-Origin` and `-Expose-Headers` to the
/// response of an actual request whose origin and method a rule allows,
/// and `Vary: Origin` to every response for a bucket with a CORS
/// configuration, matched or not: otherwise a shared cache may store an
/// answer without the allow headers and serve it to an allowed origin.
pub(crate) async fn apply_actual(
    store: &FsStore,
    bucket: &BucketName,
    origin: &str,
    method: &Method,
    headers: &mut HeaderMap,
) {
    let config = match load_cors(store, bucket).await {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(error = %e, "no CORS config readable");
            return;
        }
    };
    add_vary(headers, &["Origin"]);
    let Some(rule) = config.find(origin, method.as_str()) else {
        return;
    };
    let allow_origin = rule.allow_origin_value(origin);
    insert(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    if allow_origin != "*" {
        insert(headers, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    insert(
        headers,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        insert(
            headers,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        insert(headers, header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_s3() {
        assert!(wildcard_match("*", "https://a.example", false));
        assert!(wildcard_match(
            "https://*.example.com",
            "https://app.example.com",
            false
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "http://app.example.com",
            false
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.com",
            false
        ));
        assert!(wildcard_match("x-amz-*", "X-Amz-Date", true));
        assert!(!wildcard_match("https://a.example", "https://A.example", false));
    }

    #[test]
    fn vary_tokens_are_not_duplicated() {
        let mut h = HeaderMap::new();
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding, origin"));
        add_vary(&mut h, &PREFLIGHT_VARY);
        let all: Vec<_> = h.get_all(header::VARY).iter().collect();
        assert_eq!(
            all,
            [
                "Accept-Encoding, origin",
                "Access-Control-Request-Headers, Access-Control-Request-Method"
            ]
        );
        add_vary(&mut h, &["Origin"]);
        assert_eq!(h.get_all(header::VARY).iter().count(), 2);
        let mut star = HeaderMap::new();
        star.insert(header::VARY, HeaderValue::from_static("*"));
        add_vary(&mut star, &["Origin"]);
        assert_eq!(star.get_all(header::VARY).iter().count(), 1);
    }

    #[test]
    fn rules_match_origin_method_headers() {
        let rule = default_rule(&["http://localhost:8080".into()]);
        let config = CorsConfig { rules: vec![rule] };
        assert!(config.find("http://localhost:8080", "PUT").is_some());
        assert!(config.find("http://evil.example", "PUT").is_none());
        assert!(config.find("http://localhost:8080", "PATCH").is_none());
        let narrow = CorsRule {
            allowed_origins: vec!["*".into()],
            allowed_methods: vec!["GET".into()],
            allowed_headers: vec!["content-type".into()],
            ..CorsRule::default()
        };
        assert!(narrow.allows_headers(["Content-Type"].into_iter()));
        assert!(!narrow.allows_headers(["Content-Type", "x-amz-date"].into_iter()));
        assert!(config.validate().is_ok());
        let bad = CorsConfig {
            rules: vec![CorsRule {
                allowed_methods: vec!["PATCH".into()],
                ..narrow
            }],
        };
        assert!(bad.validate().is_err());
    }
}
