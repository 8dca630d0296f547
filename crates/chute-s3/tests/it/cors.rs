use crate::harness::{Req, Server, xml_values};

const CONFIG: &str = "<CORSConfiguration><CORSRule><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod><AllowedHeader>content-type</AllowedHeader><AllowedHeader>x-amz-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>";

fn preflight(origin: &str, method: &str, headers: &str) -> Vec<(String, String)> {
    vec![
        ("origin".to_owned(), origin.to_owned()),
        ("access-control-request-method".to_owned(), method.to_owned()),
        ("access-control-request-headers".to_owned(), headers.to_owned()),
    ]
}

#[tokio::test]
async fn cors_configuration_and_preflight() {
    let s = Server::with_bucket("bk1").await;
    s.send(Req::new("GET", "/bk1").query("cors", ""))
        .await
        .expect(404, Some("NoSuchCORSConfiguration"));
    let r = s
        .raw(
            "OPTIONS",
            "/bk1/k",
            &preflight("https://app.example.com", "PUT", "content-type"),
            Default::default(),
        )
        .await;
    r.expect(403, Some("AccessForbidden"));

    let md5 = {
        use md5::Digest as _;
        crate::harness::b64(&md5::Md5::digest(CONFIG.as_bytes()))
    };
    s.send(
        Req::new("PUT", "/bk1")
            .query("cors", "")
            .header("content-md5", &md5)
            .body(CONFIG),
    )
    .await
    .expect(200, None);
    let g = s.send(Req::new("GET", "/bk1").query("cors", "")).await;
    g.expect(200, None);
    assert_eq!(xml_values(&g.text(), "AllowedMethod"), vec!["PUT", "GET"]);

    let r = s
        .raw(
            "OPTIONS",
            "/bk1/k",
            &preflight("https://app.example.com", "PUT", "Content-Type, X-Amz-Date"),
            Default::default(),
        )
        .await;
    r.expect(200, None);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(r.header("access-control-allow-methods").unwrap().contains("PUT"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert!(r.header("vary").unwrap().contains("Origin"));
    // Wrong origin, method or header: denied.
    for (o, m, h) in [
        ("https://evil.test", "PUT", "content-type"),
        ("https://app.example.com", "DELETE", "content-type"),
        ("https://app.example.com", "PUT", "authorization-extra"),
    ] {
        s.raw("OPTIONS", "/bk1/k", &preflight(o, m, h), Default::default())
            .await
            .expect(403, Some("AccessForbidden"));
    }

    // Actual requests: headers on success and on errors.
    let r = s
        .send(
            Req::new("PUT", "/bk1/k")
                .header("origin", "https://app.example.com")
                .body("x"),
        )
        .await;
    r.expect(200, None);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("ETag"));
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
    let r = s
        .send(Req::new("GET", "/bk1/missing").header("origin", "https://app.example.com"))
        .await;
    r.expect(404, Some("NoSuchKey"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = s
        .send(Req::new("GET", "/bk1/k").header("origin", "https://evil.test"))
        .await;
    r.expect(200, None);
    assert_eq!(r.header("access-control-allow-origin"), None);

    s.send(Req::new("DELETE", "/bk1").query("cors", ""))
        .await
        .expect(204, None);
    s.send(Req::new("GET", "/bk1").query("cors", ""))
        .await
        .expect(404, Some("NoSuchCORSConfiguration"));
}

#[tokio::test]
async fn default_cors_is_installed_once() {
    let s = Server::with_bucket("bk1").await;
    let bucket = chute_core::BucketName::parse("bk1").unwrap();
    chute_s3::cors::ensure_default_cors(&s.store, &bucket, &["http://localhost:8080".to_owned()])
        .await
        .unwrap();
    let r = s
        .raw(
            "OPTIONS",
            "/bk1/k",
            &preflight("http://localhost:8080", "PUT", "x-amz-date, content-type"),
            Default::default(),
        )
        .await;
    r.expect(200, None);
    // An existing configuration is kept.
    chute_s3::cors::ensure_default_cors(&s.store, &bucket, &["http://other".to_owned()])
        .await
        .unwrap();
    s.raw(
        "OPTIONS",
        "/bk1/k",
        &preflight("http://other", "PUT", ""),
        Default::default(),
    )
    .await
    .expect(403, Some("AccessForbidden"));
}

/// How many times `token` appears among the response's `Vary` values.
fn vary_count(r: &crate::harness::Resp, token: &str) -> usize {
    r.headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|t| t.trim().eq_ignore_ascii_case(token))
        .count()
}

#[tokio::test]
async fn vary_origin_whether_or_not_a_rule_matches() {
    let s = Server::with_bucket("bk1").await;
    s.put("bk1", "k", "x").await;
    // No CORS configuration: nothing depends on Origin.
    let r = s
        .send(Req::new("GET", "/bk1/k").header("origin", "https://app.example.com"))
        .await;
    r.expect(200, None);
    assert_eq!(r.header("access-control-allow-origin"), None);

    s.send(Req::new("PUT", "/bk1").query("cors", "").body(CONFIG))
        .await
        .expect(200, None);
    // A matching origin: the allow headers and exactly one Vary: Origin.
    let r = s
        .send(Req::new("GET", "/bk1/k").header("origin", "https://app.example.com"))
        .await;
    r.expect(200, None);
    assert!(r.header("access-control-allow-origin").is_some());
    assert_eq!(vary_count(&r, "origin"), 1, "{:?}", r.headers);
    // An origin no rule allows, or a method no rule allows: no allow
    // headers, but the response still varies by Origin, so a shared cache
    // never hands this answer to an allowed origin.
    for (method, origin) in [
        ("GET", "https://evil.test"),
        ("DELETE", "https://app.example.com"),
    ] {
        let r = s.send(Req::new(method, "/bk1/k").header("origin", origin)).await;
        assert_eq!(r.header("access-control-allow-origin"), None);
        assert_eq!(vary_count(&r, "origin"), 1, "{method} {origin}: {:?}", r.headers);
    }
    // Errors too.
    let r = s
        .send(Req::new("GET", "/bk1/missing").header("origin", "https://evil.test"))
        .await;
    r.expect(404, Some("NoSuchKey"));
    assert_eq!(vary_count(&r, "origin"), 1, "{:?}", r.headers);
    // A refused preflight for a bucket with a configuration varies as the
    // allowed one does.
    let r = s
        .raw(
            "OPTIONS",
            "/bk1/k",
            &preflight("https://evil.test", "PUT", "content-type"),
            Default::default(),
        )
        .await;
    r.expect(403, Some("AccessForbidden"));
    assert_eq!(vary_count(&r, "origin"), 1, "{:?}", r.headers);
    assert_eq!(
        vary_count(&r, "access-control-request-method"),
        1,
        "{:?}",
        r.headers
    );
}
