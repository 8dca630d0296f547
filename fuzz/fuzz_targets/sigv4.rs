//! SigV4: the canonical forms (URI, query, headers), presigned URLs and
//! `Authorization` header signing from chute-core, and the embedded S3
//! endpoint's presigned `X-Amz-Expires` check.
//!
//! Verifying an incoming SigV4 request (parsing `Authorization` and the
//! presigned query) is s3s's, whose parsers are private: the harness
//! verifies each URL chute-core presigns the way a server would, by
//! parsing its query back and recomputing the signature from scratch.
//!
//! Invariants: canonical URIs and queries hold only unreserved bytes and
//! `%XX` escapes and decode back to the input; canonical headers are
//! sorted, unique, lowercase tokens with single-line values; a presigned
//! URL verifies, and stops verifying once any signed part changes.

#![no_main]

use chute_core::sigv4::canonical::{canonical_headers, canonical_query, canonical_uri, uri_encode};
use chute_core::sigv4::{HeaderSignRequest, PresignRequest, presign_url, sign_headers};
use chute_core::{Credentials, ObjectKey};
use chute_s3::auth::{MAX_PRESIGNED_EXPIRY_SECONDS, presigned_expiry_problem};
use hmac::{Hmac, KeyInit as _, Mac as _};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

/// The input, one item a line (so a real presigned query is a seed):
/// 1. the method (`GET`, `PUT`...; anything for header signing);
/// 2. the decoded path, e.g. `/photos/cat 1.jpg`: canonicalised, signed
///    in a header-signed request, and (without its leading `/`) the key
///    of a presigned URL;
/// 3. a raw query string (`a=b&X-Amz-Expires=3600`): checked by the S3
///    endpoint's expiry rule; its decoded pairs are canonicalised and
///    presigned;
/// 4. `<expires seconds> <now offset> <path style 0|1> <tamper 0-3>`
///    (optional numbers);
/// 5. the rest: headers, `Name: value`.
struct Input {
    method: String,
    path: String,
    key: String,
    raw_query: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    expires: u32,
    now: u32,
    path_style: bool,
    tamper: u8,
    region: String,
}

impl Input {
    fn parse(text: &str) -> Self {
        let mut lines = text.split('\n');
        let method = lines.next().unwrap_or_default().to_owned();
        let path = lines.next().unwrap_or_default().to_owned();
        let raw_query = lines.next().unwrap_or_default().to_owned();
        let numbers: Vec<u32> = lines
            .next()
            .unwrap_or_default()
            .split(' ')
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        let number = |i: usize| numbers.get(i).copied().unwrap_or(0);
        let query = if raw_query.is_empty() {
            Vec::new()
        } else {
            raw_query
                .split('&')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (
                        percent_decode_str(k).decode_utf8_lossy().into_owned(),
                        percent_decode_str(v).decode_utf8_lossy().into_owned(),
                    )
                })
                .collect()
        };
        let headers = lines
            .map(|line| {
                let (n, v) = line.split_once(':').unwrap_or((line, ""));
                (n.to_owned(), v.to_owned())
            })
            .collect();
        Self {
            key: path.strip_prefix('/').unwrap_or(&path).to_owned(),
            region: "us-east-1".to_owned(),
            method,
            path,
            raw_query,
            query,
            headers,
            expires: number(0),
            now: number(1),
            path_style: number(2) == 1,
            tamper: u8::try_from(number(3) % 4).unwrap_or(0),
        }
    }
}

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "HEAD", "DELETE"];
const BUCKETS: [&str; 3] = ["fuzzbucket", "a.b-c", "Bad_Bucket"];
const REGIONS: [&str; 3] = ["us-east-1", "garage", "eu-west-3"];

fn creds() -> Credentials {
    Credentials {
        access_key: "AKIDFUZZ".into(),
        secret_key: "fuzz/secret+key".into(),
    }
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn decode(s: &str) -> String {
    percent_decode_str(s)
        .decode_utf8()
        .expect("encoded UTF-8 decodes")
        .into_owned()
}

fn only_unreserved_or_escapes(s: &str, also: &[u8]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))) {
                    return false;
                }
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) || also.contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
}

fn check_canonical_forms(input: &Input) {
    let uri = canonical_uri(&input.path);
    assert!(only_unreserved_or_escapes(&uri, b"/"), "{uri:?}");
    if input.path.is_empty() {
        assert_eq!(uri, "/");
    } else {
        assert_eq!(uri.matches('/').count(), input.path.matches('/').count());
        let back: Vec<String> = uri.split('/').map(decode).collect();
        assert_eq!(back.join("/"), input.path);
    }

    let query = canonical_query(&input.query);
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !query.is_empty() || !input.query.is_empty() {
        let mut previous: Option<(&str, &str)> = None;
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').expect("every pair has '='");
            assert!(
                only_unreserved_or_escapes(k, b"") && only_unreserved_or_escapes(v, b""),
                "{pair:?}"
            );
            if let Some(p) = previous {
                assert!(p <= (k, v), "{query:?} is not sorted");
            }
            previous = Some((k, v));
            pairs.push((decode(k), decode(v)));
        }
    }
    let mut want = input.query.clone();
    want.sort();
    pairs.sort();
    assert_eq!(pairs, want, "{query:?}");

    if let Ok((canonical, signed)) = canonical_headers(&input.headers) {
        let names: Vec<&str> = signed
            .split(';')
            .filter(|n| !n.is_empty() || !signed.is_empty())
            .collect();
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "{signed:?} not sorted and unique"
        );
        assert_eq!(canonical.lines().count(), names.len(), "{canonical:?}");
        for (line, name) in canonical.lines().zip(&names) {
            let (n, value) = line.split_once(':').expect("name:value");
            assert_eq!(n, *name);
            assert_eq!(n, n.to_ascii_lowercase());
            assert!(
                !value.contains(['\r', '\n']) && value.trim() == value,
                "{value:?}"
            );
        }
    }
}

/// Verifies `url` as a server would: parse it, rebuild the canonical
/// request from what it carries, recompute the signature.
fn verifies(url: &str, now: OffsetDateTime, method: &str) -> bool {
    let Some((base, query)) = url.split_once('?') else {
        return false;
    };
    let Some(rest) = base.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in query.split('&') {
        let Some((k, v)) = pair.split_once('=') else {
            return false;
        };
        let (Ok(k), Ok(v)) = (
            percent_decode_str(k).decode_utf8(),
            percent_decode_str(v).decode_utf8(),
        ) else {
            return false;
        };
        params.push((k.into_owned(), v.into_owned()));
    }
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (Some(signature), Some(credential), Some(date), Some(signed_headers)) = (
        get("X-Amz-Signature"),
        get("X-Amz-Credential"),
        get("X-Amz-Date"),
        get("X-Amz-SignedHeaders"),
    ) else {
        return false;
    };
    if get("X-Amz-Algorithm").as_deref() != Some("AWS4-HMAC-SHA256") || signed_headers != "host" {
        return false;
    }
    let scope: Vec<&str> = credential.splitn(2, '/').collect();
    if scope.len() != 2 || scope[0] != creds().access_key {
        return false;
    }
    let parts: Vec<&str> = scope[1].split('/').collect();
    if parts.len() != 4 || parts[2] != "s3" || parts[3] != "aws4_request" || !date.starts_with(parts[0]) {
        return false;
    }
    let _ = now;
    let unsigned: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .cloned()
        .collect();
    let decoded_path: Vec<String> = path
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let canonical = format!(
        "{method}\n{}\n{}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD",
        canonical_uri(&decoded_path.join("/")),
        canonical_query(&unsigned)
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
        scope[1],
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac256(
        format!("AWS4{}", creds().secret_key).as_bytes(),
        parts[0].as_bytes(),
    );
    let k = hmac256(&k, parts[1].as_bytes());
    let k = hmac256(&k, b"s3");
    let k = hmac256(&k, b"aws4_request");
    hex::encode(hmac256(&k, to_sign.as_bytes())) == signature
}

fn check_presign(input: &Input) {
    let Ok(key) = ObjectKey::parse(&input.key) else {
        return;
    };
    let Some(m) = METHODS.iter().position(|m| *m == input.method) else {
        return;
    };
    let method = METHODS[m];
    let now =
        OffsetDateTime::from_unix_timestamp(1_600_000_000 + i64::from(input.now)).expect("a valid instant");
    let req = PresignRequest {
        method,
        endpoint: "http://127.0.0.1:9000",
        bucket: BUCKETS[usize::from(input.tamper) % BUCKETS.len()],
        key: &key,
        path_style: input.path_style,
        region: REGIONS[input.now as usize % REGIONS.len()],
        expires_in: std::time::Duration::from_secs(u64::from(input.expires % 700_000)),
        now,
        query: input.query.clone(),
        headers: Vec::new(),
    };
    let Ok(url) = presign_url(&req, &creds()) else {
        return;
    };
    assert!(
        verifies(&url, now, method),
        "chute-core presigned a URL that does not verify: {url}"
    );
    let (_, query) = url.split_once('?').expect("a presigned URL has a query");
    assert_eq!(presigned_expiry_problem(Some(query)), None, "{url}");

    // Tamper with one signed part: it must stop verifying.
    let tampered = match input.tamper % 4 {
        0 => url.replacen("X-Amz-Expires=", "X-Amz-Expires=1", 1),
        1 => {
            let slash = url
                .split_once('?')
                .map_or(0, |(base, _)| base.rfind('/').unwrap_or(0));
            format!("{}x{}", &url[..=slash], &url[slash + 1..])
        }
        2 => format!("{url}&extra=1").replacen("&X-Amz-Signature", "&z=1&X-Amz-Signature", 1),
        _ => url.replacen("X-Amz-Date=", "X-Amz-Date=1", 1),
    };
    if tampered != url {
        assert!(
            !verifies(&tampered, now, method),
            "tampered URL verifies: {tampered}"
        );
    }
    let other = METHODS[(m + 1) % METHODS.len()];
    assert!(!verifies(&url, now, other), "a {method} URL verifies for {other}");
}

fn check_header_signing(input: &Input) {
    let mut headers = vec![("host".to_owned(), "127.0.0.1:9000".to_owned())];
    headers.extend(input.headers.iter().cloned());
    let req = HeaderSignRequest {
        method: &input.method,
        path: &input.path,
        query: &input.query,
        headers: &headers,
        payload_sha256: "UNSIGNED-PAYLOAD",
        region: &input.region,
        service: "s3",
        now: OffsetDateTime::from_unix_timestamp(1_600_000_000 + i64::from(input.now))
            .expect("a valid instant"),
    };
    if let Ok(added) = sign_headers(&req, &creds()) {
        let auth = &added[0].1;
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDFUZZ/"),
            "{auth}"
        );
        let signature = auth.rsplit_once("Signature=").map(|(_, s)| s).unwrap_or_default();
        assert_eq!(signature.len(), 64);
        assert!(!auth.contains(['\r', '\n']) || input.region.contains(['\r', '\n']));
    }
}

fn check_expiry_rule(raw_query: &str) {
    let problem = presigned_expiry_problem(Some(raw_query));
    let expires: Vec<String> = raw_query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| {
            percent_decode_str(k)
                .decode_utf8_lossy()
                .eq_ignore_ascii_case("X-Amz-Expires")
        })
        .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
        .collect();
    if let Some(first) = expires.first() {
        let ok = first
            .parse::<u64>()
            .is_ok_and(|s| (1..=MAX_PRESIGNED_EXPIRY_SECONDS).contains(&s));
        assert_eq!(problem.is_none(), ok, "{raw_query:?}");
    } else {
        assert_eq!(problem, None);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = Input::parse(text);
    check_canonical_forms(&input);
    check_presign(&input);
    check_header_signing(&input);
    check_expiry_rule(&input.raw_query);
    let _ = uri_encode(&input.raw_query);
});
