//! The page at `/` (the demo in development, a short page in production)
//! and the development-only object links behind its thumbnails.

use chute_server::RawConfig;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00,
    0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xdf, 0xc0, 0x00, 0x00, 0x04, 0x01,
    0x01, 0x80, 0xc5, 0x2a, 0x18, 0x5d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];

async fn start(production: bool) -> crate::Running {
    let dir = tempfile::tempdir().unwrap();
    let config = if production {
        chute_server::Config::try_from(RawConfig {
            mode: Some("production".into()),
            listen: Some("127.0.0.1:0".into()),
            s3_listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().to_owned()),
            s3_access_key: Some(crate::ACCESS_KEY.into()),
            s3_secret_key: Some(crate::SECRET_KEY.into()),
            grant_secret: Some("a-production-grant-secret-of-32-bytes!".into()),
            ..RawConfig::default()
        })
        .expect("production config is valid")
    } else {
        crate::test_config(dir.path())
    };
    crate::run(config, dir).await
}

fn client() -> Client {
    chute_server::webhooks::http_client(Duration::from_secs(30)).unwrap()
}

async fn get_text(url: &str) -> (StatusCode, String) {
    let res = client().get(url).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Uploads the PNG with the development open grant; its receipt.
async fn upload_png(app: SocketAddr) -> String {
    let http = client();
    let created = http
        .post(format!("http://{app}/api/uploads"))
        .header("content-type", "application/json")
        .body(
            json!({"filename": "dot.png", "size": PNG.len(), "type": "image/png", "method": "put"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let created: Value = serde_json::from_str(&created.text().await.unwrap()).unwrap();
    let put = &created["put"];
    let mut request = http.put(put["url"].as_str().expect("a PUT URL"));
    for (name, value) in put["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    let res = request.body(PNG).send().await.unwrap();
    assert!(res.status().is_success(), "PUT: {}", res.status());
    let id = created["id"].as_str().unwrap();
    let token = created["token"].as_str().unwrap();
    let done = http
        .post(format!("http://{app}/api/uploads/{id}/complete"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let done: Value = serde_json::from_str(&done.text().await.unwrap()).unwrap();
    done["receipt"].as_str().expect("a receipt").to_owned()
}

fn link_url(app: SocketAddr, receipt: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("http://{app}/api/objects/link")).unwrap();
    url.query_pairs_mut().append_pair("receipt", receipt);
    url.into()
}

#[tokio::test]
async fn development_serves_the_demo_page_production_does_not() {
    let dev = start(false).await;
    let (status, page) = get_text(&format!("http://{}/", dev.app)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"<script type="module" src="/chute.js"></script>"#),
        "{page}"
    );
    assert!(page.contains("<form") && page.contains(r#"data-chute="/api/uploads""#));
    assert!(page.contains(r#"id="drop""#) && page.contains(r#"aria-live="polite""#));
    assert!(page.contains("bucket <code>uploads</code>"));
    assert!(!page.contains("{{"), "every placeholder is filled");
    dev.stop().await;

    let prod = start(true).await;
    let (status, page) = get_text(&format!("http://{}/", prod.app)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Chute is running"), "{page}");
    assert!(!page.contains("data-chute") && !page.contains("<form"), "{page}");
    prod.stop().await;
}

#[tokio::test]
async fn a_receipt_gets_a_link_that_fetches_its_object() {
    let dev = start(false).await;
    let receipt = upload_png(dev.app).await;

    let (status, body) = get_text(&link_url(dev.app, &receipt)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let link: Value = serde_json::from_str(&body).unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(link["expires_at"].is_string());
    let object = client().get(url).send().await.unwrap();
    assert_eq!(object.status(), StatusCode::OK);
    assert_eq!(object.bytes().await.unwrap().as_ref(), PNG);

    // A receipt with one claim changed no longer verifies.
    let mut parts: Vec<String> = receipt.split('.').map(str::to_owned).collect();
    let payload = String::from_utf8(base64url_decode(&parts[1])).unwrap();
    let forged = payload.replace("dot.png", "dot.PNG");
    assert_ne!(forged, payload);
    parts[1] = base64url_encode(forged.as_bytes());
    let (status, body) = get_text(&link_url(dev.app, &parts.join("."))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = get_text(&format!("http://{}/api/objects/link", dev.app)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    dev.stop().await;
}

#[tokio::test]
async fn production_serves_no_links() {
    let prod = start(true).await;
    let (status, body) = get_text(&link_url(prod.app, "any")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "not_found");
    prod.stop().await;
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_decode(s: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = B64URL.iter().position(|&b| b == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64URL[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
