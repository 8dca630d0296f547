use bytes::Bytes;
use chute_core::sigv4::{Credentials, HeaderSignRequest, sha256_hex, sign_headers};
use chute_s3::{EmbeddedS3, EmbeddedS3Config};
use chute_store::fs::FsStore;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use tempfile::TempDir;
use time::OffsetDateTime;

pub const ACCESS: &str = "chuteaccess";
pub const SECRET: &str = "chutesecret-0123456789";
pub const REGION: &str = "us-east-1";

/// A running endpoint and its data directory.
pub struct Server {
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub store: FsStore,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and, for errors, the S3 error code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) {
        assert_eq!(self.status, status, "body: {}", self.text());
        if let Some(code) = code {
            assert!(
                self.text().contains(&format!("<Code>{code}</Code>")),
                "body: {}",
                self.text()
            );
        }
    }
}

/// One request to send.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: &'static str,
    /// Decoded path used for signing, e.g. `/bucket/a b`.
    pub path: String,
    /// The raw path sent, when it differs from the encoded `path`.
    pub raw_path: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Sign with these credentials (default: the configured pair); `None`
    /// inside `Some` sends the request anonymously.
    pub creds: Option<Option<Credentials>>,
    /// Payload hash to sign instead of the body's SHA-256.
    pub payload: Option<String>,
}

impl Req {
    pub fn new(method: &'static str, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            ..Self::default()
        }
    }

    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn raw_path(mut self, raw: &str) -> Self {
        self.raw_path = Some(raw.to_owned());
        self
    }

    pub fn anonymous(mut self) -> Self {
        self.creds = Some(None);
        self
    }

    pub fn creds(mut self, access: &str, secret: &str) -> Self {
        self.creds = Some(Some(Credentials {
            access_key: access.to_owned(),
            secret_key: secret.to_owned(),
        }));
        self
    }
}

/// AWS's URI encoding (unreserved characters stay; `/` stays in paths).
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn default_creds() -> Credentials {
    Credentials {
        access_key: ACCESS.to_owned(),
        secret_key: SECRET.to_owned(),
    }
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A started server whose settings `configure` adjusts first.
    pub async fn start_with(configure: impl FnOnce(&mut EmbeddedS3Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path().join("data")).await.unwrap();
        let mut config = EmbeddedS3Config {
            region: REGION.to_owned(),
            credentials: vec![
                default_creds(),
                Credentials {
                    access_key: "secondkey".to_owned(),
                    secret_key: "secondsecret".to_owned(),
                },
            ],
            max_post_object_size: 5 * 1024 * 1024 * 1024,
            max_post_form_fields_bytes: 20 * 1024,
            body_idle_timeout: std::time::Duration::from_secs(60),
        };
        configure(&mut config);
        let service = EmbeddedS3::new(store.clone(), config).into_service();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, dir, store }
    }

    /// A started server with bucket `b` created.
    pub async fn with_bucket(bucket: &str) -> Self {
        Self::with_bucket_and(bucket, |_| {}).await
    }

    /// [`Server::with_bucket`] with settings adjusted by `configure`.
    pub async fn with_bucket_and(bucket: &str, configure: impl FnOnce(&mut EmbeddedS3Config)) -> Self {
        let s = Self::start_with(configure).await;
        s.send(Req::new("PUT", &format!("/{bucket}")))
            .await
            .expect(200, None);
        s
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn send(&self, req: Req) -> Resp {
        let host = self.addr.to_string();
        let mut headers = req.headers.clone();
        headers.push(("host".to_owned(), host.clone()));
        let creds = req.creds.clone().unwrap_or_else(|| Some(default_creds()));
        if let Some(creds) = creds {
            let payload = req.payload.clone().unwrap_or_else(|| sha256_hex(&req.body));
            let signed = sign_headers(
                &HeaderSignRequest {
                    method: req.method,
                    path: &req.path,
                    query: &req.query,
                    headers: &headers,
                    payload_sha256: &payload,
                    region: REGION,
                    service: "s3",
                    now: OffsetDateTime::now_utc(),
                },
                &creds,
            )
            .unwrap();
            headers.extend(signed);
        }
        let path = req.raw_path.clone().unwrap_or_else(|| encode(&req.path, true));
        let query = req
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k, false), encode(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        self.raw(req.method, &uri, &headers, req.body).await
    }

    /// Sends exactly this request line, headers and body.
    pub async fn raw(&self, method: &str, uri: &str, headers: &[(String, String)], body: Bytes) -> Resp {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut builder = http::Request::builder().method(method).uri(uri);
        let mut has_host = false;
        for (k, v) in headers {
            has_host |= k.eq_ignore_ascii_case("host");
            builder = builder.header(k.as_str(), v.as_str());
        }
        if !has_host {
            builder = builder.header("host", self.addr.to_string());
        }
        let resp = sender
            .send_request(builder.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// PUT an object with the default credentials, asserting success.
    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<Bytes>) -> Resp {
        let r = self
            .send(Req::new("PUT", &format!("/{bucket}/{key}")).body(body))
            .await;
        r.expect(200, None);
        r
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Resp {
        self.send(Req::new("GET", &format!("/{bucket}/{key}"))).await
    }

    /// Every file path under the tempdir.
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, out);
                }
                out.push(p);
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

/// Base64 of bytes.
pub fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The text between the first `<tag>` and `</tag>`.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// Every text between `<tag>` and `</tag>`.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_owned());
        rest = &after[j + close.len()..];
    }
    out
}
