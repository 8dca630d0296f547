//! Chute's routes inside the app's router, and grant minting.

use super::*;

#[tokio::test]
async fn the_upload_api_and_the_widget_answer_inside_the_app() {
    let t = start().await;
    let app = app(&t.chute);
    let g = grant(&t.chute, "alice");
    let req = json_post(
        "/api/uploads",
        &json!({"filename": "a.txt", "size": 5, "type": "text/plain"}),
    );
    let (status, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no grant: {body}");
    let mut req = json_post(
        "/api/uploads",
        &json!({"filename": "a.txt", "size": 5, "type": "text/plain"}),
    );
    req.headers_mut()
        .insert(header::AUTHORIZATION, format!("Bearer {g}").parse().unwrap());
    let (status, body) = call(&app, req).await;
    assert!(status.is_success(), "{status} {body}");
    // The browser posts the bytes to the embedded store Chute serves.
    let s3 = format!("http://{}", t.chute.s3_addr().unwrap());
    assert!(body["post"]["url"].as_str().unwrap().starts_with(&s3), "{body}");
    let (status, body) = call(&app, Request::get("/chute.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().unwrap().contains("export function upgrade"));
    // The app's own routes are untouched; Chute serves no page at /.
    let (status, _) = call(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The store answers on its own listener.
    let conn = tokio::net::TcpStream::connect(t.chute.s3_addr().unwrap()).await;
    assert!(conn.is_ok());
    t.chute.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(t.chute.s3_addr().unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn minted_grants_carry_their_limits() {
    let t = start().await;
    let app = app(&t.chute);
    let g = t
        .chute
        .mint(
            &t.chute
                .grant()
                .subject("alice")
                .types(["image/*"])
                .max_size(100)
                .max_files(1),
        )
        .unwrap();
    let create = |name: &str, size: u64, ty: &str| {
        let mut req = json_post(
            "/api/uploads",
            &json!({"filename": name, "size": size, "type": ty}),
        );
        req.headers_mut()
            .insert(header::AUTHORIZATION, format!("Bearer {g}").parse().unwrap());
        req
    };
    let (status, body) = call(&app, create("a.pdf", 10, "application/pdf")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("type_not_allowed"))
    );
    let (status, body) = call(&app, create("a.png", 1000, "image/png")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    let (status, body) = call(&app, create("a.png", 10, "image/png")).await;
    assert!(status.is_success(), "{body}");
}

/// Two grants minted alike within one second (two tabs, a quick reload)
/// are two grants: each lets its own file in under `max_files(1)`.
#[tokio::test]
async fn grants_minted_alike_count_files_apart() {
    let t = start().await;
    let app = app(&t.chute);
    let builder = t.chute.grant().subject("alice").prefix("docs/alice").max_files(1);
    let first = t.chute.mint(&builder).unwrap();
    let second = t.chute.mint(&builder).unwrap();
    assert_ne!(first, second);
    upload(&app, &first, "a.txt", "text/plain", b"a").await;
    upload(&app, &second, "b.txt", "text/plain", b"b").await;
    // An id the app chose is kept, and counts across mints.
    let named = builder.id("profile-42");
    let token = t.chute.mint(&named).unwrap();
    let keys = chute_core::Keyring::new(chute_core::TokenKey::parse(SECRET).unwrap(), vec![]);
    let claims: chute_core::GrantClaims = keys
        .verify(
            &token,
            chute_core::token::GRANT_AUDIENCE,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    assert_eq!(claims.jti.as_deref(), Some("profile-42"));
}

/// Dropping the last `Chute` (no `shutdown`) stops the S3 listener too:
/// its port is free again, nothing keeps serving in the background.
#[tokio::test]
async fn dropping_the_last_chute_frees_the_s3_port() {
    let t = start().await;
    let addr = t.chute.s3_addr().unwrap();
    let copy = t.chute.clone();
    drop(t.chute);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_ok(),
        "a clone keeps it up"
    );
    drop(copy);
    // The listener's task sees the stop signal close on its next poll.
    let mut freed = false;
    for _ in 0..100 {
        if tokio::net::TcpListener::bind(addr).await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(freed, "{addr} is still bound after the last Chute was dropped");
}
