//! The extractors: good receipts in, every kind of bad one refused with
//! its status and code.

use super::*;
use chute_axum::RejectionFormat;
use chute_core::{Keyring, ReceiptClaims, TokenKey};
use time::OffsetDateTime;

#[tokio::test]
async fn good_receipts_pass_from_forms_and_json() {
    let t = start().await;
    let app = app(&t.chute);
    let g = grant(&t.chute, "alice");
    let receipt = upload(&app, &g, "notes.txt", "text/plain", b"hello").await;
    let (status, body) = call(&app, form("/any", &[("receipt", &receipt), ("title", "x")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["size"], 5);
    assert_eq!(body["sub"], "alice");
    assert!(body["key"].as_str().unwrap().starts_with("tmp/"));
    let (status, body) = call(&app, json_post("/any", &json!({"receipt": receipt}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "text/plain");
}

#[tokio::test]
async fn several_receipts_in_one_field() {
    let t = start().await;
    let app = app(&t.chute);
    let g = grant(&t.chute, "alice");
    let a = upload(&app, &g, "a.txt", "text/plain", b"a").await;
    let b = upload(&app, &g, "b.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n").await;
    let (status, body) = call(&app, form("/docs", &[("docs", &a), ("docs", &b)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(body[1]["type"], "application/pdf");
    let (status, body) = call(&app, json_post("/docs", &json!({"docs": [a, b]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // One bad receipt refuses them all.
    let (status, body) = call(&app, form("/docs", &[("docs", &a), ("docs", "x.y.z")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // In JSON too: an item that is no string is not skipped.
    for bad in [json!([a, 5]), json!([a, {"receipt": b}]), json!([a, [b]])] {
        let (status, body) = call(&app, json_post("/docs", &json!({ "docs": bad }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = call(&app, json_post("/any", &json!({"receipt": {"token": a}}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_form")),
        "{body}"
    );
}

#[tokio::test]
async fn tampered_foreign_and_missing_receipts_are_refused() {
    let t = start().await;
    let app = app(&t.chute);
    let g = grant(&t.chute, "alice");
    let receipt = upload(&app, &g, "notes.txt", "text/plain", b"hello").await;

    // A claim changed (a bigger size) keeps the old signature.
    let mut parts: Vec<String> = receipt.split('.').map(str::to_owned).collect();
    let claims = base64_decode(&parts[1]);
    let mut claims: Value = serde_json::from_slice(&claims).unwrap();
    claims["key"] = json!("avatars/bob/stolen.png");
    parts[1] = base64_encode(claims.to_string().as_bytes());
    let tampered = parts.join(".");
    // An upload token is signed by the same key but is no receipt either.
    let mut create = json_post("/api/uploads", &json!({"filename": "x.txt", "size": 1}));
    create
        .headers_mut()
        .insert(header::AUTHORIZATION, format!("Bearer {g}").parse().unwrap());
    let (status, created) = call(&app, create).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let upload_token = created["token"].as_str().unwrap().to_owned();
    let cases = [
        (tampered.as_str(), "token_bad_signature"),
        ("not-a-token", "token_malformed"),
        // A grant is signed by the same key but is no receipt.
        (g.as_str(), "token_wrong_audience"),
        (upload_token.as_str(), "token_wrong_audience"),
    ];
    for (token, code) in cases {
        let (status, body) = call(&app, form("/any", &[("receipt", token)])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{token}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // Signed with another secret (same key id).
    let other = Keyring::new(
        TokenKey::parse("t1:ffffffffffffffffffffffffffffffffff").unwrap(),
        vec![],
    );
    let verified = t
        .chute
        .verifier()
        .verify("receipt", &receipt, &Constraints::new())
        .unwrap();
    let forged = other.sign(&verified.claims).unwrap();
    let (status, body) = call(&app, form("/any", &[("receipt", &forged)])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("token_bad_signature"))
    );

    let (status, body) = call(&app, form("/any", &[("title", "no receipt")])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_receipt"))
    );
    let (status, body) = call(
        &app,
        form("/any", &[("receipt", &receipt), ("receipt", &receipt)]),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("too_many_receipts"))
    );
    let req = Request::post("/any")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(receipt.clone()))
        .unwrap();
    let (status, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let huge = "a".repeat(chute_axum::extract::MAX_BODY + 1);
    let (status, body) = call(&app, form("/any", &[("receipt", &huge)])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
    // The same for a JSON body and a multipart form.
    let (status, _) = call(&app, json_post("/any", &json!({"receipt": huge}))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn expired_receipts_are_refused() {
    let t = start().await;
    let app = app(&t.chute);
    let receipt = upload(&app, &grant(&t.chute, "alice"), "a.txt", "text/plain", b"a").await;
    let verifier = t.chute.verifier();
    let claims: ReceiptClaims = verifier
        .verify("receipt", &receipt, &Constraints::new())
        .unwrap()
        .claims;
    let later = OffsetDateTime::from_unix_timestamp(claims.exp).unwrap();
    let err = verifier
        .verify_at("receipt", &receipt, &Constraints::new(), later)
        .unwrap_err();
    assert_eq!(
        (err.status, err.code.as_ref()),
        (StatusCode::BAD_REQUEST, "token_expired")
    );
}

#[tokio::test]
async fn constraints_refuse_with_their_status() {
    let t = start().await;
    let app = app(&t.chute);
    let g = grant(&t.chute, "alice");
    let pdf = upload(&app, &g, "cv.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n").await;
    let mut big = png();
    big.resize(2048, 0);
    let png = upload(&app, &g, "me.png", "image/png", &png()).await;
    let big = upload(&app, &g, "big.png", "image/png", &big).await;

    let (status, body) = call(&app, form("/avatar", &[("avatar", &png)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "image/png");
    let (status, body) = call(&app, form("/avatar", &[("avatar", &pdf)])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("type_not_allowed"))
    );
    let (status, body) = call(&app, form("/avatar", &[("avatar", &big)])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    // The policy's field, not the default one.
    let (status, body) = call(&app, form("/avatar", &[("receipt", &png)])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_receipt"))
    );

    // The session user must be the grant's subject.
    let (status, body) = call(&app, form("/profile", &[("user", "alice"), ("avatar", &png)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&app, form("/profile", &[("user", "mallory"), ("avatar", &png)])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("wrong_subject"))
    );
    let (status, body) = call(&app, form("/profile", &[("user", "alice")])).await;
    assert_eq!((status, &body["avatar"]), (StatusCode::OK, &Value::Null));

    // Docs must be granted below docs/: a grant for avatars/ is refused.
    let avatars = t
        .chute
        .mint(&t.chute.grant().subject("alice").prefix("avatars/alice"))
        .unwrap();
    let txt = upload(&app, &avatars, "a.txt", "text/plain", b"a").await;
    let (status, body) = call(&app, form("/docs", &[("docs", &txt)])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_not_allowed"))
    );
}

#[tokio::test]
async fn rejections_can_be_plain_text_or_the_apps_own() {
    let t = start().await;
    let app = app(&t.chute);
    let (status, body) = call(&app, form("/custom", &[("receipt", "x")])).await;
    assert_eq!(
        (status, body),
        (StatusCode::IM_A_TEAPOT, json!("custom: token_malformed"))
    );

    let verifier = t
        .chute
        .verifier()
        .rejection_format(RejectionFormat::PlainText)
        .field("upload");
    let plain = Router::new()
        .route("/any", post(|r: Receipt| async move { r.key().to_owned() }))
        .with_state(verifier);
    let (status, body) = call(&plain, form("/any", &[("receipt", "x")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!("the form has no receipt in field \"upload\"; upload the file first")
    );
    let (status, body) = call(&plain, form("/any", &[("upload", "x")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.as_str()
            .unwrap()
            .starts_with("the receipt in field \"upload\" is not valid"),
        "{body}"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[tokio::test]
async fn multipart_forms_carry_receipts_but_not_files() {
    let t = start().await;
    let app = app(&t.chute);
    let receipt = upload(&app, &grant(&t.chute, "alice"), "a.txt", "text/plain", b"a").await;
    let multipart = |parts: &str| {
        Request::post("/any")
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
            .body(Body::from(parts.replace('\n', "\r\n")))
            .unwrap()
    };
    let text = format!(
        "--XyZ\nContent-Disposition: form-data; name=\"title\"\n\nhi\n--XyZ\n\
         Content-Disposition: form-data; name=\"receipt\"\n\n{receipt}\n--XyZ--\n"
    );
    let (status, body) = call(&app, multipart(&text)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["size"], 1);
    let file = "--XyZ\nContent-Disposition: form-data; name=\"receipt\"; filename=\"a.txt\"\n\
                Content-Type: text/plain\n\nbytes\n--XyZ--\n";
    let (status, body) = call(&app, multipart(file)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("file_in_form"))
    );
}
