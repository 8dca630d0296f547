use crate::harness::{Req, Server, xml_value, xml_values};

async fn fill(s: &Server) {
    for k in ["a/1", "a/2", "b/1", "c", "d", "e", "f/x/y"] {
        s.put("bk1", k, "x").await;
    }
}

#[tokio::test]
async fn list_v2_paginates_with_delimiter() {
    let s = Server::with_bucket("bk1").await;
    fill(&s).await;
    let mut seen_keys = Vec::new();
    let mut seen_prefixes = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut req = Req::new("GET", "/bk1")
            .query("list-type", "2")
            .query("delimiter", "/")
            .query("max-keys", "2");
        if let Some(t) = &token {
            req = req.query("continuation-token", t);
        }
        let r = s.send(req).await;
        r.expect(200, None);
        let text = r.text();
        seen_keys.extend(xml_values(&text, "Key"));
        seen_prefixes.extend(xml_values(&text, "Prefix").into_iter().filter(|p| !p.is_empty()));
        assert!(xml_value(&text, "KeyCount").unwrap().parse::<u32>().unwrap() <= 2);
        match xml_value(&text, "NextContinuationToken") {
            Some(t) => {
                assert_eq!(xml_value(&text, "IsTruncated").as_deref(), Some("true"));
                token = Some(t);
            }
            None => break,
        }
    }
    assert_eq!(seen_keys, vec!["c", "d", "e"]);
    assert_eq!(seen_prefixes, vec!["a/", "b/", "f/"]);

    let r = s
        .send(
            Req::new("GET", "/bk1")
                .query("list-type", "2")
                .query("prefix", "a/")
                .query("start-after", "a/1"),
        )
        .await;
    assert_eq!(xml_values(&r.text(), "Key"), vec!["a/2"]);
    s.send(
        Req::new("GET", "/bk1")
            .query("list-type", "2")
            .query("continuation-token", "!!!"),
    )
    .await
    .expect(400, Some("InvalidArgument"));
}

#[tokio::test]
async fn list_v2_url_encoding() {
    let s = Server::with_bucket("bk1").await;
    s.put("bk1", "a b+c", "x").await;
    let r = s
        .send(
            Req::new("GET", "/bk1")
                .query("list-type", "2")
                .query("encoding-type", "url"),
        )
        .await;
    r.expect(200, None);
    assert_eq!(xml_values(&r.text(), "Key"), vec!["a%20b%2Bc"]);
}

#[tokio::test]
async fn list_v1_markers() {
    let s = Server::with_bucket("bk1").await;
    fill(&s).await;
    let r = s.send(Req::new("GET", "/bk1").query("max-keys", "3")).await;
    r.expect(200, None);
    let text = r.text();
    assert_eq!(xml_values(&text, "Key"), vec!["a/1", "a/2", "b/1"]);
    let next = xml_value(&text, "NextMarker").unwrap();
    let r = s.send(Req::new("GET", "/bk1").query("marker", &next)).await;
    assert_eq!(xml_values(&r.text(), "Key"), vec!["c", "d", "e", "f/x/y"]);
    assert_eq!(xml_value(&r.text(), "IsTruncated").as_deref(), Some("false"));
}

#[tokio::test]
async fn list_versions_of_unversioned_bucket() {
    let s = Server::with_bucket("bk1").await;
    s.put("bk1", "one", "1").await;
    s.put("bk1", "two", "2").await;
    let r = s.send(Req::new("GET", "/bk1").query("versions", "")).await;
    r.expect(200, None);
    let text = r.text();
    assert_eq!(xml_values(&text, "Key"), vec!["one", "two"]);
    assert_eq!(xml_values(&text, "VersionId"), vec!["null", "null"]);
    assert_eq!(xml_values(&text, "IsLatest"), vec!["true", "true"]);
}
