//! Promotion and reads from a verified receipt.

use super::*;
use futures::TryStreamExt as _;

#[tokio::test]
async fn promote_then_read_and_download() {
    let t = start().await;
    let app = app(&t.chute);
    let g = grant(&t.chute, "alice");
    let receipt = upload(&app, &g, "notes.txt", "text/plain", b"hello world").await;
    let (status, body) = call(&app, form("/promote", &[("receipt", &receipt)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("docs/alice/") && key.ends_with(".txt"), "{key}");
    // Idempotent: the same key again.
    let (status, again) = call(&app, form("/promote", &[("receipt", &receipt)])).await;
    assert_eq!((status, &again["key"]), (StatusCode::OK, &body["key"]));

    let got = t.chute.read(&key).await.unwrap();
    let bytes: Vec<u8> = got.body.map_ok(|b| b.to_vec()).try_concat().await.unwrap();
    assert_eq!(bytes, b"hello world");
    let res = t.chute.download(&key, true).await.unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/plain");
    assert!(
        res.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello world");
    // The temporary object is gone after promotion.
    let tmp = t
        .chute
        .verifier()
        .verify("r", &receipt, &Constraints::new())
        .unwrap();
    assert!(matches!(
        t.chute.read(tmp.key()).await,
        Err(chute_axum::ChuteError::Store(
            chute_store::StoreError::NoSuchKey { .. }
        ))
    ));
    let url = t.chute.url(&key, std::time::Duration::from_secs(60)).unwrap();
    assert!(
        url.starts_with(&format!("http://{}/", t.chute.s3_addr().unwrap())),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="));
}

#[tokio::test]
async fn promotion_outside_the_grant_is_refused() {
    let t = start().await;
    let app = app(&t.chute);
    // Granted below avatars/alice; /promote asks for docs/alice.
    let g = t
        .chute
        .mint(&t.chute.grant().subject("alice").prefix("avatars/alice"))
        .unwrap();
    let receipt = upload(&app, &g, "a.txt", "text/plain", b"a").await;
    let (status, body) = call(&app, form("/promote", &[("receipt", &receipt)])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_not_allowed")),
        "{body}"
    );
    let missing = t
        .chute
        .download("docs/none.txt", false)
        .await
        .unwrap_err()
        .into_response();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn derivatives_of_a_promoted_image() {
    let t = start().await;
    let app = app(&t.chute);
    let g = t
        .chute
        .mint(
            &t.chute
                .grant()
                .subject("alice")
                .prefix("docs/alice")
                .derivative("thumb", "8x8 crop"),
        )
        .unwrap();
    let png = small_png(32, 16);
    let receipt = upload(&app, &g, "me.png", "image/png", &png).await;
    let verified = t
        .chute
        .verifier()
        .verify("r", &receipt, &Constraints::new())
        .unwrap();
    let key = verified.derivatives()["thumb"].clone();
    let (status, body) = call(&app, form("/promote", &[("receipt", &receipt)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = t
        .chute
        .derivative(&verified, "thumb", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.key, key);
    assert_eq!((entry.width, entry.height), (Some(8), Some(8)), "{entry:?}");
    let got = t.chute.read(&key).await.unwrap();
    assert_eq!(got.meta.size, entry.size.unwrap());
    // A text upload under the same grant gets none.
    let txt = upload(&app, &g, "a.txt", "text/plain", b"a").await;
    let txt = t.chute.verifier().verify("r", &txt, &Constraints::new()).unwrap();
    let none = t
        .chute
        .derivative(&txt, "thumb", std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert!(none.is_none());
}

/// A real `width`x`height` RGB PNG (stored blocks, no compression).
fn small_png(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0);
        for x in 0..width {
            raw.extend_from_slice(&[(x * 8) as u8, (y * 8) as u8, 128]);
        }
    }
    // zlib: header, one stored block, Adler-32.
    let mut z = vec![0x78, 0x01, 0x01];
    let len = u16::try_from(raw.len()).unwrap();
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// An upload whose type can run script (HTML here; SVG and XML alike) is
/// never served inline on the app's origin, and nothing served runs
/// script: `Content-Security-Policy: sandbox`.
#[tokio::test]
async fn active_content_downloads_as_an_attachment() {
    let t = start().await;
    let app = app(&t.chute);
    // The test grant names no types, so HTML gets in.
    let html = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>";
    let receipt = upload(&app, &grant(&t.chute, "alice"), "page.html", "text/html", html).await;
    let (status, body) = call(&app, form("/promote", &[("receipt", &receipt)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let res = t
        .chute
        .download(body["key"].as_str().unwrap(), false)
        .await
        .unwrap();
    let disposition = res.headers().get(header::CONTENT_DISPOSITION);
    assert!(
        disposition.is_some_and(|d| d.to_str().unwrap().starts_with("attachment")),
        "{disposition:?}"
    );
    assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], "sandbox");

    // A plain text file still shows inline, sandboxed.
    let receipt = upload(&app, &grant(&t.chute, "alice"), "a.txt", "text/plain", b"hi").await;
    let (_, body) = call(&app, form("/promote", &[("receipt", &receipt)])).await;
    let res = t
        .chute
        .download(body["key"].as_str().unwrap(), false)
        .await
        .unwrap();
    assert!(res.headers().get(header::CONTENT_DISPOSITION).is_none());
    assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], "sandbox");
}

#[tokio::test]
async fn deleted_objects_are_gone() {
    let t = start().await;
    let app = app(&t.chute);
    let receipt = upload(&app, &grant(&t.chute, "alice"), "a.txt", "text/plain", b"a").await;
    let (_, body) = call(&app, form("/promote", &[("receipt", &receipt)])).await;
    let key = body["key"].as_str().unwrap();
    t.chute.delete(key).await.unwrap();
    assert!(matches!(
        t.chute.read(key).await,
        Err(chute_axum::ChuteError::Store(
            chute_store::StoreError::NoSuchKey { .. }
        ))
    ));
    // As in S3, deleting what is not there succeeds; a bad key does not.
    t.chute.delete(key).await.unwrap();
    assert!(matches!(
        t.chute.delete("../etc/passwd").await,
        Err(chute_axum::ChuteError::Key(_))
    ));
}
