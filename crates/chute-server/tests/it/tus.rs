//! tus 1.0 at `/files/` through a real server: discovery, an upload in
//! two PATCHes that completes with a receipt, and refusals.

use crate::{run, test_config};

fn client() -> reqwest::Client {
    chute_server::webhooks::http_client(std::time::Duration::from_secs(60)).unwrap()
}

#[tokio::test]
async fn options_create_patch_head_and_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let server = run(test_config(dir.path()), dir).await;
    let base = format!("http://{}", server.app);
    let http = client();

    let opts = http
        .request(reqwest::Method::OPTIONS, format!("{base}/files/"))
        .send()
        .await
        .unwrap();
    assert_eq!(opts.status(), 204);
    assert_eq!(opts.headers()["tus-version"], "1.0.0");
    assert!(
        opts.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("concatenation")
    );

    // Without Tus-Resumable: 412 and the version we speak.
    let r = http
        .post(format!("{base}/files/"))
        .header("upload-length", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(r.headers()["tus-version"], "1.0.0");

    let data: Vec<u8> = (0..6 * 1024 * 1024 + 99).map(|i| (i % 253) as u8).collect();
    let r = http
        .post(format!("{base}/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", data.len().to_string())
        .header("upload-metadata", "filename YS5iaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let url = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let patch = |at: usize, bytes: Vec<u8>, checksum: Option<&str>| {
        let mut req = http
            .patch(&url)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", at.to_string())
            .body(bytes);
        if let Some(c) = checksum {
            req = req.header("upload-checksum", c);
        }
        req.send()
    };
    // A wrong checksum keeps nothing.
    let r = patch(
        0,
        data[..1000].to_vec(),
        Some("sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 460);
    let r = patch(0, data[..5_000_000].to_vec(), None).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], "5000000");
    assert!(r.headers().get("chute-receipt").is_none());
    let r = patch(1, data[1..].to_vec(), None).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["upload-offset"], "5000000");
    let r = patch(5_000_000, data[5_000_000..].to_vec(), None).await.unwrap();
    assert_eq!(r.status(), 204);
    let receipt = r.headers()["chute-receipt"].to_str().unwrap().to_owned();
    let head = http
        .head(&url)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["upload-offset"], data.len().to_string().as_str());
    assert_eq!(head.headers()["chute-receipt"], receipt.as_str());

    let r = http
        .delete(&url)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let head = http
        .head(&url)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    server.stop().await;
}
