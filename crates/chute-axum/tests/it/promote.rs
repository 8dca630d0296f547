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
