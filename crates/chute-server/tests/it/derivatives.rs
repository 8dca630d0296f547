//! Image derivatives through a real server over the fs store: the grant
//! names them, the receipt lists them, `GET /api/objects/{receipt}/
//! derivatives` reports them, and the presigned URLs serve real images of
//! the right size. Hostile images fail their derivatives, never the upload.

use crate::images;
use chute_core::{BucketName, Keyring, ObjectKey, TokenKey};
use chute_server::{Config, RawConfig};
use chute_store::fs::FsStore;
use chute_store::{MultipartStore, Store};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const GRANT_KEY: &str = "test1:grant-secret-for-tests-0123456789abcdef";

struct Env {
    running: crate::Running,
    data: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A development server (open grant with a `thumb`) that also takes JWT grants.
async fn start(tune: impl FnOnce(&mut RawConfig)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut raw = RawConfig {
        listen: Some("127.0.0.1:0".into()),
        s3_listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data.clone()),
        s3_access_key: Some(crate::ACCESS_KEY.into()),
        s3_secret_key: Some(crate::SECRET_KEY.into()),
        shutdown_grace_seconds: Some(10),
        grant_secret: Some(GRANT_KEY.into()),
        open_grants: Some(true),
        image_workers: Some(2),
        ..RawConfig::default()
    };
    tune(&mut raw);
    let running = crate::run(Config::try_from(raw).unwrap(), tempfile::tempdir().unwrap()).await;
    Env {
        running,
        data,
        http: {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::new()
        },
        _dir: dir,
    }
}

fn grant(claims: Value) -> String {
    let keys = Keyring::new(TokenKey::parse(GRANT_KEY).unwrap(), vec![]);
    let mut claims = claims;
    claims["aud"] = "chute".into();
    claims["exp"] = (time::OffsetDateTime::now_utc().unix_timestamp() + 600).into();
    keys.sign(&claims).unwrap()
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.app)
    }

    /// `PUT /api/stream/{name}`: the status and JSON answer.
    async fn put(&self, name: &str, content_type: &str, body: Vec<u8>, grant: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .put(self.url(&format!("/api/stream/{name}")))
            .header("content-type", content_type)
            .body(body);
        if let Some(g) = grant {
            req = req.bearer_auth(g);
        }
        let res = req.send().await.unwrap();
        (
            res.status().as_u16(),
            serde_json::from_slice(&res.bytes().await.unwrap()).unwrap(),
        )
    }

    /// Uploads and returns the file's entry (receipt and object).
    async fn upload(&self, name: &str, content_type: &str, body: Vec<u8>, grant: Option<&str>) -> Value {
        let (status, answer) = self.put(name, content_type, body, grant).await;
        assert_eq!(status, 201, "{answer}");
        answer["files"][0].clone()
    }

    async fn status(&self, receipt: &str) -> Value {
        let res = self
            .http
            .get(self.url(&format!("/api/objects/{receipt}/derivatives")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
    }

    /// Polls the status until nothing is pending.
    async fn settled(&self, receipt: &str) -> Value {
        for _ in 0..600 {
            let s = self.status(receipt).await;
            let pending = s["derivatives"]
                .as_object()
                .unwrap()
                .values()
                .any(|d| d["status"] == "pending");
            if !pending {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("derivatives still pending after 30 s");
    }

    /// Fetches a ready derivative through its URL and decodes it.
    async fn fetch(&self, d: &Value) -> image::DynamicImage {
        let res = self.http.get(d["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], d["type"].as_str().unwrap());
        let bytes = res.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, d["size"].as_u64().unwrap());
        image::load_from_memory(&bytes).unwrap()
    }

    async fn bucket(&self) -> impl MultipartStore {
        let store = FsStore::open(&self.data).await.unwrap();
        store
            .bucket(&BucketName::parse("uploads").unwrap())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_grant_names_derivatives_and_the_receipt_and_route_report_them() {
    let env = start(|_| {}).await;
    let token = grant(json!({"derivatives": {
        "thumb": "200x200 crop",
        "medium": "1200x1200 fit webp",
        "small": "300x300 fit q60",
    }}));
    // Stored 1600x1200, EXIF orientation 6: shown as 1200x1600.
    let photo = images::jpeg_of(&images::photo(1600, 1200), Some(6));
    let file = env
        .upload("photo.jpg", "image/jpeg", photo.clone(), Some(&token))
        .await;
    let upload_id = file["object"]["jti"].as_str().unwrap();
    let listed = &file["object"]["derivatives"];
    assert_eq!(listed["thumb"], format!("derivatives/{upload_id}/thumb.jpg"));
    assert_eq!(listed["medium"], format!("derivatives/{upload_id}/medium.webp"));
    let receipt = file["receipt"].as_str().unwrap();

    let status = env.settled(receipt).await;
    assert_eq!(status["upload_id"], upload_id);
    assert_eq!(status["derive_on"], "complete");
    let d = &status["derivatives"];
    for (name, w, h, ty) in [
        ("thumb", 200, 200, "image/jpeg"),
        ("medium", 900, 1200, "image/webp"),
        ("small", 225, 300, "image/jpeg"),
    ] {
        assert_eq!(d[name]["status"], "ready", "{name}: {}", d[name]);
        assert_eq!(
            (d[name]["width"].as_u64(), d[name]["height"].as_u64()),
            (Some(w), Some(h)),
            "{name}"
        );
        assert_eq!(d[name]["type"], ty);
        assert_eq!(d[name]["key"], listed[name]);
        let img = env.fetch(&d[name]).await;
        assert_eq!((img.width(), img.height()), (w as u32, h as u32), "{name}");
    }
    // The original is untouched.
    let key = ObjectKey::parse(file["object"]["key"].as_str().unwrap()).unwrap();
    assert_eq!(
        env.bucket().await.head(&key).await.unwrap().size,
        photo.len() as u64
    );
    env.running.stop().await;
}

#[tokio::test]
async fn bad_specs_are_refused_when_the_grant_is_resolved() {
    let env = start(|raw| raw.image_max_output_dimension = Some(1000)).await;
    for (derivatives, why) in [
        (json!({"thumb": "0x200 crop"}), "outside 1-1000"),
        (json!({"big": "2000x2000 fit"}), "outside 1-1000"),
        (json!({"Thumb!": "20x20 fit"}), "names are"),
        (json!({"thumb": "20x20 squash"}), "neither crop nor fit"),
        (
            json!({"a":"1x1 fit","b":"1x1 fit","c":"1x1 fit","d":"1x1 fit","e":"1x1 fit",
                   "f":"1x1 fit","g":"1x1 fit","h":"1x1 fit","i":"1x1 fit"}),
            "at most 8",
        ),
    ] {
        let token = grant(json!({ "derivatives": derivatives }));
        let (status, answer) = env
            .put("a.jpg", "image/jpeg", images::jpeg(10, 10), Some(&token))
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "bad_derivative");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
    }
    env.running.stop().await;
}

#[tokio::test]
async fn every_format_gets_the_open_grants_thumb() {
    let env = start(|_| {}).await;
    for (name, ty, bytes) in [
        ("a.png", "image/png", images::png_rgba(300, 200)),
        ("a.webp", "image/webp", images::webp(300, 200)),
        ("a.gif", "image/gif", images::gif(300, 200)),
        (
            "a.jpg",
            "image/jpeg",
            images::jpeg_of(&images::halves(300, 200), Some(3)),
        ),
    ] {
        let file = env.upload(name, ty, bytes, None).await;
        let status = env.settled(file["receipt"].as_str().unwrap()).await;
        let thumb = &status["derivatives"]["thumb"];
        assert_eq!(thumb["status"], "ready", "{name}: {thumb}");
        let img = env.fetch(thumb).await;
        assert_eq!((img.width(), img.height()), (200, 200), "{name}");
        if name == "a.jpg" {
            // Orientation 3 turned it: blue (the stored right half) now left.
            let p = img.to_rgb8().get_pixel(20, 100).0;
            assert!(p[2] > 200 && p[0] < 60, "{p:?}");
        }
    }
    env.running.stop().await;
}

#[tokio::test]
async fn hostile_images_fail_their_derivatives_and_keep_the_upload() {
    let env = start(|_| {}).await;
    for (name, bytes, why) in [
        ("bomb.png", images::bomb_png(30_000), "30000x30000"),
        ("cut.jpg", images::truncated_jpeg(), "cannot decode"),
    ] {
        let ty = if name.ends_with("png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        let file = env.upload(name, ty, bytes.clone(), None).await;
        let status = env.settled(file["receipt"].as_str().unwrap()).await;
        let thumb = &status["derivatives"]["thumb"];
        assert_eq!(thumb["status"], "failed", "{name}");
        assert!(thumb["error"].as_str().unwrap().contains(why), "{name}: {thumb}");
        assert!(thumb.get("url").is_none());
        let key = ObjectKey::parse(file["object"]["key"].as_str().unwrap()).unwrap();
        let bucket = env.bucket().await;
        assert_eq!(
            bucket.head(&key).await.unwrap().size,
            bytes.len() as u64,
            "{name} kept"
        );
        let derived = ObjectKey::parse(thumb["key"].as_str().unwrap()).unwrap();
        assert!(
            bucket.head(&derived).await.is_err(),
            "no derivative stored for {name}"
        );
    }
    // HTML named .jpg: declared as a JPEG, sniffing refuses it...
    let (status, answer) = env.put("page.jpg", "image/jpeg", images::html(), None).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "type_mismatch");
    // ...declared as HTML, it is stored, and not an image: no derivatives.
    let file = env.upload("page.jpg", "text/html", images::html(), None).await;
    assert!(file["object"].get("derivatives").is_none(), "{file}");
    let status = env.status(file["receipt"].as_str().unwrap()).await;
    assert_eq!(status["derivatives"], json!({}));
    env.running.stop().await;
}

#[tokio::test]
async fn promote_grants_derive_on_promotion_and_the_receipt_still_finds_them() {
    let env = start(|_| {}).await;
    let token = grant(json!({"derivatives": {"thumb": "100x100 crop"}, "derive_on": "promote"}));
    let file = env
        .upload("p.jpg", "image/jpeg", images::jpeg(400, 300), Some(&token))
        .await;
    let receipt = file["receipt"].as_str().unwrap();
    // That completion starts nothing is checked without timing in
    // derivatives::tests::promote_grants_start_nothing_on_completion.
    let status = env.status(receipt).await;
    assert_eq!(status["derive_on"], "promote");
    assert_eq!(
        status["derivatives"]["thumb"]["status"], "pending",
        "waits for promotion"
    );
    let res = env
        .http
        .post(env.url("/api/objects/promote"))
        .header("content-type", "application/json")
        .body(json!({ "receipt": receipt }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let status = env.settled(receipt).await;
    let thumb = &status["derivatives"]["thumb"];
    assert_eq!(thumb["status"], "ready", "{thumb}");
    assert_eq!(
        (thumb["width"].as_u64(), thumb["height"].as_u64()),
        (Some(100), Some(100))
    );
    env.fetch(thumb).await;
    env.running.stop().await;
}

#[tokio::test]
async fn complete_grants_survive_a_promotion_racing_the_job() {
    let env = start(|_| {}).await;
    let token = grant(json!({"derivatives": {"thumb": "100x100 crop"}}));
    let file = env
        .upload("r.jpg", "image/jpeg", images::jpeg(2000, 1500), Some(&token))
        .await;
    let receipt = file["receipt"].as_str().unwrap();
    // Promote at once: the temporary object goes away under the job.
    let res = env
        .http
        .post(env.url("/api/objects/promote"))
        .header("content-type", "application/json")
        .body(json!({ "receipt": receipt }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let status = env.settled(receipt).await;
    assert_eq!(status["derivatives"]["thumb"]["status"], "ready", "{status}");
    env.running.stop().await;
}

#[tokio::test]
async fn pending_work_of_a_dead_process_is_requeued_when_asked_for() {
    let env = start(|_| {}).await;
    let file = env
        .upload("d.jpg", "image/jpeg", images::jpeg(400, 300), None)
        .await;
    let receipt = file["receipt"].as_str().unwrap();
    let upload_id = file["object"]["jti"].as_str().unwrap();
    let done = env.settled(receipt).await;
    // As a crash mid-job leaves it: the manifest pending, long ago, and
    // no derivative stored.
    let bucket = env.bucket().await;
    let thumb_key = ObjectKey::parse(done["derivatives"]["thumb"]["key"].as_str().unwrap()).unwrap();
    bucket.delete(&thumb_key).await.unwrap();
    let manifest_key = ObjectKey::parse(&format!(".chute/derivatives/{upload_id}.json")).unwrap();
    let manifest = json!({
        "upload_id": upload_id,
        "source": file["object"]["key"],
        "updated": 0,
        "derivatives": {"thumb": {
            "spec": "200x200 crop", "key": thumb_key.as_str(), "type": "image/jpeg", "status": "pending"
        }},
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    let stream: chute_store::ByteStream =
        Box::pin(futures::stream::once(async move { Ok(bytes::Bytes::from(body)) }));
    bucket
        .put(&manifest_key, stream, Default::default())
        .await
        .unwrap();
    let first = env.status(receipt).await;
    assert_eq!(first["derivatives"]["thumb"]["status"], "pending");
    let again = env.settled(receipt).await;
    assert_eq!(again["derivatives"]["thumb"]["status"], "ready", "{again}");
    assert!(bucket.head(&thumb_key).await.is_ok(), "made again");
    env.running.stop().await;
}

#[tokio::test]
async fn the_reaper_keeps_promoted_derivatives_and_removes_abandoned_ones() {
    let env = start(|_| {}).await;
    let kept = env
        .upload("kept.jpg", "image/jpeg", images::jpeg(300, 200), None)
        .await;
    let abandoned = env
        .upload("gone.jpg", "image/jpeg", images::jpeg(300, 200), None)
        .await;
    let kept_thumb =
        env.settled(kept["receipt"].as_str().unwrap()).await["derivatives"]["thumb"]["key"].clone();
    let gone_thumb =
        env.settled(abandoned["receipt"].as_str().unwrap()).await["derivatives"]["thumb"]["key"].clone();
    let res = env
        .http
        .post(env.url("/api/objects/promote"))
        .header("content-type", "application/json")
        .body(json!({ "receipt": kept["receipt"] }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let config = Config::try_from(RawConfig {
        data_dir: Some(env.data.clone()),
        s3_access_key: Some(crate::ACCESS_KEY.into()),
        s3_secret_key: Some(crate::SECRET_KEY.into()),
        ..RawConfig::default()
    })
    .unwrap();
    let lifecycle = chute_server::open_lifecycle(&config, chute_server::hooks::Hooks::new())
        .await
        .unwrap();
    let options = chute_server::reaper::ReapOptions::default();
    let now = time::OffsetDateTime::now_utc();
    let fresh = chute_server::reaper::reap_with(&lifecycle, now, &options)
        .await
        .unwrap();
    assert_eq!(fresh.derivative_manifests, 0, "{fresh}");
    // Past upload_ttl + receipt_ttl (a day each by default).
    let later = now + Duration::from_secs(2 * 86_400 + 60);
    let report = chute_server::reaper::reap_with(&lifecycle, later, &options)
        .await
        .unwrap();
    assert_eq!(
        (report.derivative_manifests, report.derivatives_deleted),
        (2, 1),
        "{report}"
    );
    let bucket = env.bucket().await;
    let key = |v: &Value| ObjectKey::parse(v.as_str().unwrap()).unwrap();
    assert!(
        bucket.head(&key(&kept_thumb)).await.is_ok(),
        "a promoted upload keeps its derivatives"
    );
    assert!(
        bucket.head(&key(&gone_thumb)).await.is_err(),
        "an abandoned one loses them"
    );
    env.running.stop().await;
}

#[tokio::test]
async fn promotion_targets_under_derivatives_are_refused() {
    let env = start(|_| {}).await;
    // A grant whose prefix covers Chute's derivative keys: promoting into
    // them would overwrite another upload's thumbnail, and the reaper
    // deletes everything under an unpromoted upload's derivatives/<id>/.
    let token = grant(json!({"prefix": "derivatives"}));
    let file = env
        .upload("x.jpg", "image/jpeg", images::jpeg(64, 48), Some(&token))
        .await;
    let res = env
        .http
        .post(env.url("/api/objects/promote"))
        .header("content-type", "application/json")
        .body(json!({ "receipt": file["receipt"], "template": "derivatives/other/thumb.jpg" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "key_not_allowed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("derivatives/"),
        "{body}"
    );
    let bucket = env.bucket().await;
    let target = ObjectKey::parse("derivatives/other/thumb.jpg").unwrap();
    assert!(bucket.head(&target).await.is_err(), "nothing written there");
    env.running.stop().await;
}

#[tokio::test]
async fn work_beyond_a_full_queue_waits_for_a_place_without_anyone_polling() {
    // One place in all: uploads that complete together overflow it.
    let env = start(|raw| {
        raw.image_workers = Some(1);
        raw.image_queue = Some(0);
    })
    .await;
    // Opened before the uploads: opening an fs store sweeps its temporary
    // files, which would race the server's writes.
    let bucket = env.bucket().await;
    let uploads = futures::future::join_all(
        ["q0.png", "q1.png", "q2.png", "q3.png"]
            .map(|name| env.upload(name, "image/png", images::png_rgba(1600, 1200), None)),
    )
    .await;
    // No status route call: nobody polls.
    for file in &uploads {
        let id = file["object"]["jti"].as_str().unwrap();
        let thumb = ObjectKey::parse(&format!("derivatives/{id}/thumb.jpg")).unwrap();
        let mut made = false;
        for _ in 0..600 {
            if bucket.head(&thumb).await.is_ok() {
                made = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !made {
            let status = env.status(file["receipt"].as_str().unwrap()).await;
            panic!("{thumb} not made within 30 s: {status}");
        }
    }
    env.running.stop().await;
}

#[tokio::test]
async fn sources_over_image_max_source_mib_fail_without_being_read() {
    let env = start(|raw| raw.image_max_source_mib = Some(1)).await;
    // A small valid JPEG padded past 1 MiB (decoders ignore what follows
    // the end-of-image marker).
    let mut body = images::jpeg(64, 48);
    body.resize(body.len() + 1024 * 1024, 0);
    let file = env.upload("big.jpg", "image/jpeg", body, None).await;
    let status = env.settled(file["receipt"].as_str().unwrap()).await;
    let thumb = &status["derivatives"]["thumb"];
    assert_eq!(thumb["status"], "failed", "{thumb}");
    assert!(
        thumb["error"].as_str().unwrap().contains("image_max_source_mib"),
        "{thumb}"
    );
    env.running.stop().await;
}
