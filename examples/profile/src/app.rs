//! The example's routes: sign in, the profile page (which mints one grant
//! per input), saving the form (receipts verified by chute-axum, then
//! promoted to `avatars/<user>/` and `docs/<user>/`; the avatar's
//! thumbnail is made by Chute), and the user's own files. Chute's routes (`/api/...`, `/chute.js`) are merged in.

use crate::pages::{self, ProfileView};
use crate::state::{Avatar, Memory, StoredFile};
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chute_axum::{Chute, Constraints, ReceiptForm, ReceiptRejection, ReceiptVerifier, VerifiedReceipt};
use chute_server::derivatives::manifest::Status;
use std::sync::Arc;
use std::time::Duration;

/// The session cookie's name.
const SESSION: &str = "profile_session";
/// The largest avatar.
const AVATAR_MAX: u64 = 5 << 20;
/// The largest document.
const DOCUMENT_MAX: u64 = 10 << 20;
/// Media types an avatar may have.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/webp", "image/gif"];
/// The avatar thumbnail Chute makes on completion (see chute-core's
/// `derivative` for the spec).
const THUMB: &str = "200x200 crop";
/// How long saving waits for a thumbnail still being made.
const THUMB_WAIT: Duration = Duration::from_secs(15);
/// Media types a document may have.
const DOCUMENT_TYPES: [&str; 2] = ["application/pdf", "text/plain"];

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    chute: Chute,
    memory: Arc<Memory>,
}

impl AppState {
    /// State over `chute` with empty memory.
    pub fn new(chute: Chute) -> Self {
        Self {
            chute,
            memory: Arc::new(Memory::default()),
        }
    }
}

impl FromRef<AppState> for ReceiptVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.chute.verifier()
    }
}

/// The app's router with Chute's merged in.
pub fn router(state: AppState) -> Router {
    let chute = state.chute.clone();
    Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/profile", post(save))
        .route("/media/{*key}", get(media))
        .route("/healthz", get(|| async { "ok" }))
        .route_layer(middleware::from_fn(same_origin_forms))
        .route_layer(middleware::map_response(private))
        .with_state(state)
        .merge(chute.router())
}

/// Every page and file of the app is one user's: the profile page
/// carries their grants (an hour of uploads into their folders), so no
/// cache, shared or not, may keep it.
async fn private(mut res: Response) -> Response {
    let headers = res.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(header::VARY, header::HeaderValue::from_static("Cookie"));
    res
}

/// Refuses a POST a browser sent from another origin (CSRF). The session
/// cookie's `SameSite=Lax` stops other sites, but not other origins of the
/// same site: another port of this host (the S3 listener serves users'
/// files) or a sibling subdomain. A production app adds a CSRF token
/// per session as well (see README.md).
async fn same_origin_forms(req: axum::extract::Request, next: Next) -> Response {
    if req.method().is_safe() || from_this_origin(req.headers()) {
        next.run(req).await
    } else {
        refuse(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "this form can only be sent from the app's own pages",
        )
    }
}

/// What the browser says of the request's origin: `Sec-Fetch-Site`, else
/// `Origin` against `Host`. A client sending neither is no browser, so
/// has no ambient cookie to abuse.
fn from_this_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (get("origin"), get("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// The signed-in user, from the session cookie.
struct User(String);

impl FromRequestParts<AppState> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        session_id(&parts.headers)
            .and_then(|id| state.memory.user(&id))
            .map(User)
            .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "signed_out", "sign in first"))
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION)
        .map(|(_, value)| value.to_owned())
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(user) = session_id(&headers).and_then(|id| state.memory.user(&id)) else {
        return Html(pages::sign_in()).into_response();
    };
    let profile = state.memory.profile(&user);
    let grants =
        avatar_grant(&state.chute, &user).and_then(|a| Ok((a, documents_grant(&state.chute, &user)?)));
    match grants {
        Ok((avatar_grant, documents_grant)) => Html(pages::profile(&ProfileView {
            user: &user,
            profile: &profile,
            avatar_grant: &avatar_grant,
            documents_grant: &documents_grant,
            avatar_max: AVATAR_MAX,
            document_max: DOCUMENT_MAX,
        }))
        .into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "grant", &e.to_string()),
    }
}

/// One image, promoted below `avatars/<user>`, for this page view.
fn avatar_grant(chute: &Chute, user: &str) -> Result<String, chute_axum::ChuteError> {
    chute.mint(
        &chute
            .grant()
            .subject(user)
            .prefix(format!("avatars/{user}"))
            .types(IMAGE_TYPES)
            .max_size(AVATAR_MAX)
            .max_files(1)
            .derivative("thumb", THUMB)
            .ttl(Duration::from_secs(3600)),
    )
}

/// Several PDF or text files, promoted below `docs/<user>`.
fn documents_grant(chute: &Chute, user: &str) -> Result<String, chute_axum::ChuteError> {
    chute.mint(
        &chute
            .grant()
            .subject(user)
            .prefix(format!("docs/{user}"))
            .types(DOCUMENT_TYPES)
            .extensions(["pdf", "txt"])
            .max_size(DOCUMENT_MAX)
            .max_files(20)
            .ttl(Duration::from_secs(3600)),
    )
}

#[derive(serde::Deserialize)]
struct Login {
    user: String,
}

async fn login(State(state): State<AppState>, Form(login): Form<Login>) -> Response {
    let user = login.user.trim().to_ascii_lowercase();
    let valid = !user.is_empty()
        && user.len() <= 32
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_user",
            "a user name is 1-32 of a-z, 0-9, _ and -",
        );
    }
    let id = state.memory.sign_in(&user);
    let cookie = format!("{SESSION}={id}; Path=/; HttpOnly; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// Saves the form: every receipt is verified and checked first, so a bad
/// one changes nothing; then the files are promoted and recorded (up to
/// the first that cannot be promoted, whose error is the answer).
async fn save(
    State(state): State<AppState>,
    User(user): User,
    form: Result<ReceiptForm, ReceiptRejection>,
) -> Response {
    let checked = form.and_then(|form| {
        let avatar = form.receipt(
            "avatar",
            &Constraints::new()
                .types(IMAGE_TYPES)
                .max_size(AVATAR_MAX)
                .subject(&user)
                .prefix(format!("avatars/{user}")),
        )?;
        let documents = form.receipts(
            "documents",
            &Constraints::new()
                .types(DOCUMENT_TYPES)
                .max_size(DOCUMENT_MAX)
                .subject(&user)
                .prefix(format!("docs/{user}")),
        )?;
        let name = form
            .text("display_name")
            .map(|n| n.trim().chars().take(80).collect::<String>());
        Ok((avatar, documents, name))
    });
    let (avatar, documents, name) = match checked {
        Ok(checked) => checked,
        Err(e) => return refuse(e.status, &e.code, &e.message),
    };
    // Promoted files are recorded even when a later one fails: otherwise
    // they would sit in the store, owned by nobody.
    let mut failed = None;
    let mut stored_avatar = None;
    if let Some(r) = &avatar {
        match promote(&state.chute, r, &format!("avatars/{user}")).await {
            Ok(file) => {
                stored_avatar = Some(Avatar {
                    thumb: thumbnail(&state.chute, r).await,
                    file,
                });
            }
            Err(status) => failed = Some((status, r)),
        }
    }
    let mut stored_docs = Vec::new();
    for r in &documents {
        if failed.is_some() {
            break;
        }
        match promote(&state.chute, r, &format!("docs/{user}")).await {
            Ok(stored) => stored_docs.push(stored),
            Err(status) => failed = Some((status, r)),
        }
    }
    let mut replaced = None;
    state.memory.update(&user, |p| {
        if let Some(name) = name {
            p.display_name = name;
        }
        if stored_avatar.is_some() {
            replaced = std::mem::replace(&mut p.avatar, stored_avatar);
        }
        for doc in stored_docs {
            // Submitting a receipt again promotes to the same key.
            if !p.documents.iter().any(|d| d.key == doc.key) {
                p.documents.push(doc);
            }
        }
    });
    // The old avatar belongs to nobody now (unless the same receipt was
    // sent again, which promotes to the same key).
    let current = state.memory.profile(&user).avatar;
    if let Some(old) = replaced {
        let keep = |k: &String| {
            current
                .as_ref()
                .is_some_and(|a| a.file.key == *k || a.thumb.as_ref() == Some(k))
        };
        for key in old.thumb.iter().chain([&old.file.key]).filter(|k| !keep(k)) {
            if let Err(e) = state.chute.delete(key).await {
                tracing::warn!(error = %e, key, "cannot delete the replaced avatar");
            }
        }
    }
    match failed {
        None => Redirect::to("/").into_response(),
        Some((status, r)) => refuse(
            status,
            "promotion_failed",
            &format!(
                "{} could not be saved; upload it again (the files before it were saved)",
                r.filename()
            ),
        ),
    }
}

/// The key of the avatar's thumbnail: once Chute has made it, or while it
/// is still pending after [`THUMB_WAIT`] (the original stands in until it
/// exists, see [`media`]); `None` (the page shows the original) when it
/// failed (not a decodable image) or the receipt names none.
async fn thumbnail(chute: &Chute, receipt: &VerifiedReceipt) -> Option<String> {
    match chute.derivative(receipt, "thumb", THUMB_WAIT).await {
        Ok(Some(entry)) if entry.status != Status::Failed => Some(entry.key),
        // Nothing recorded yet: the key the receipt promises.
        Ok(None) => receipt.derivatives().get("thumb").cloned(),
        Ok(Some(failed)) => {
            tracing::info!(?failed, "no thumbnail for this avatar; showing the original");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the avatar's thumbnail status");
            receipt.derivatives().get("thumb").cloned()
        }
    }
}

/// Promotes `receipt` below `below`; a refusal is the status to answer.
async fn promote(chute: &Chute, receipt: &VerifiedReceipt, below: &str) -> Result<StoredFile, StatusCode> {
    let promoted = chute
        .promote(receipt, Some(&format!("{below}/{{uuid}}{{ext}}")))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, key = receipt.key(), "promotion failed");
            e.into_response().status()
        })?;
    Ok(StoredFile {
        key: promoted.key,
        filename: receipt.filename().to_owned(),
        size: promoted.size,
        content_type: promoted.content_type,
    })
}

#[derive(serde::Deserialize)]
struct MediaQuery {
    #[serde(default)]
    download: Option<String>,
}

/// A file of the signed-in user's profile, streamed from the store.
async fn media(
    State(state): State<AppState>,
    User(user): User,
    Path(key): Path<String>,
    Query(q): Query<MediaQuery>,
) -> Response {
    let profile = state.memory.profile(&user);
    let avatar = profile
        .avatar
        .iter()
        .flat_map(|a| a.thumb.iter().chain([&a.file.key]));
    let owned = avatar
        .chain(profile.documents.iter().map(|d| &d.key))
        .any(|k| *k == key);
    if !owned {
        return refuse(StatusCode::NOT_FOUND, "not_found", "no such file in your profile");
    }
    let download = q.download.is_some();
    match state.chute.download(&key, download).await {
        Ok(res) => res,
        Err(e) => {
            let res = e.into_response();
            // A thumbnail not made yet (or lost): the original instead.
            let original = profile
                .avatar
                .as_ref()
                .filter(|a| a.thumb.as_deref() == Some(key.as_str()))
                .map(|a| a.file.key.as_str());
            match original {
                Some(original) if res.status() == StatusCode::NOT_FOUND => state
                    .chute
                    .download(original, download)
                    .await
                    .unwrap_or_else(IntoResponse::into_response),
                _ => res,
            }
        }
    }
}

/// An HTML refusal page with `status`.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Html(pages::error(status.as_u16(), code, message))).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn test_app() -> (Router, tempfile::TempDir) {
        let (state, dir) = test_state().await;
        (router(state), dir)
    }

    async fn test_state() -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let raw = chute_server::RawConfig {
            s3_listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().to_owned()),
            grant_secret: Some("t1:0123456789abcdef0123456789abcdef".into()),
            open_grants: Some(false),
            ..Default::default()
        };
        let chute = chute_axum::ChuteBuilder::from_raw(raw)
            .unwrap()
            .build()
            .await
            .unwrap();
        (AppState::new(chute), dir)
    }

    /// Uploads `bytes` as `name` (PNG or text) under `grant` through
    /// Chute's stream route; answers the receipt.
    async fn upload(app: &Router, grant: &str, name: &str, bytes: &'static [u8]) -> String {
        let req = Request::put(format!("/api/stream/{name}"))
            .header(header::AUTHORIZATION, format!("Bearer {grant}"))
            .header(
                header::CONTENT_TYPE,
                if name.ends_with(".png") {
                    "image/png"
                } else {
                    "text/plain"
                },
            )
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(Body::from(bytes))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        body["files"][0]["receipt"].as_str().unwrap().to_owned()
    }

    /// Posts the profile form `body` (urlencoded) in `session`.
    async fn save_form(app: &Router, session: &str, body: String) -> Response {
        let req = Request::post("/profile")
            .header(header::COOKIE, format!("{SESSION}={session}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        app.clone().oneshot(req).await.unwrap()
    }

    /// The profile page carries the user's grants (an hour of uploads into
    /// their folders) and their files are theirs: no cache keeps either.
    #[tokio::test]
    async fn private_pages_are_not_cached() {
        let (state, _dir) = test_state().await;
        let app = router(state.clone());
        let session = state.memory.sign_in("alice");
        let req = Request::get("/")
            .header(header::COOKIE, format!("{SESSION}={session}"))
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[header::VARY], "Cookie");
    }

    /// A thumbnail still being made when the form was saved is recorded
    /// by its key; until it exists the original stands in for it.
    #[tokio::test]
    async fn a_pending_thumbnail_shows_the_original_until_it_exists() {
        let (state, _dir) = test_state().await;
        let app = router(state.clone());
        let grant = documents_grant(&state.chute, "alice").unwrap();
        let receipt = upload(&app, &grant, "a.txt", b"original").await;
        let receipt = state
            .chute
            .verifier()
            .verify("r", &receipt, &Constraints::new())
            .unwrap();
        let file = promote(&state.chute, &receipt, "docs/alice").await.unwrap();
        let thumb = "derivatives/pending/thumb.webp".to_owned();
        state.memory.update("alice", |p| {
            p.avatar = Some(Avatar {
                file,
                thumb: Some(thumb.clone()),
            });
        });
        let session = state.memory.sign_in("alice");
        let req = Request::get(format!("/media/{thumb}"))
            .header(header::COOKIE, format!("{SESSION}={session}"))
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        assert_eq!(&body[..], b"original");
    }

    /// A new avatar replaces the old one in the store too: the old
    /// original (and its thumbnail) would otherwise stay there, owned by
    /// nobody.
    #[tokio::test]
    async fn a_replaced_avatar_is_deleted() {
        let (state, _dir) = test_state().await;
        let app = router(state.clone());
        let session = state.memory.sign_in("alice");
        let mut originals = Vec::new();
        for _ in 0..2 {
            let grant = avatar_grant(&state.chute, "alice").unwrap();
            // PNG magic without an image: the thumbnail fails fast.
            let receipt = upload(&app, &grant, "me.png", b"\x89PNG\r\n\x1a\n-not-an-image").await;
            let res = save_form(&app, &session, format!("avatar={receipt}")).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
            originals.push(state.memory.profile("alice").avatar.unwrap().file.key);
        }
        assert_ne!(originals[0], originals[1]);
        assert_eq!(
            state
                .chute
                .read(&originals[0])
                .await
                .err()
                .map(|e| e.into_response().status()),
            Some(StatusCode::NOT_FOUND)
        );
        assert!(state.chute.read(&originals[1]).await.is_ok());
    }

    /// A file that cannot be promoted (its upload is gone) does not
    /// orphan the ones promoted before it: they are recorded.
    #[tokio::test]
    async fn files_promoted_before_a_failure_are_kept() {
        let (state, _dir) = test_state().await;
        let app = router(state.clone());
        let grant = documents_grant(&state.chute, "alice").unwrap();
        let first = upload(&app, &grant, "a.txt", b"first").await;
        let second = upload(&app, &grant, "b.txt", b"second").await;
        let gone = state
            .chute
            .verifier()
            .verify("documents", &second, &Constraints::new())
            .unwrap();
        state.chute.delete(gone.key()).await.unwrap();

        let session = state.memory.sign_in("alice");
        let form = format!("display_name=Alice&documents={first}&documents={second}");
        let res = save_form(&app, &session, form).await;
        assert_eq!(res.status(), StatusCode::GONE);
        let page = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains("b.txt"), "{page}");
        let docs = state.memory.profile("alice").documents;
        assert_eq!(
            docs.iter().map(|d| d.filename.as_str()).collect::<Vec<_>>(),
            ["a.txt"]
        );
    }

    /// A sign-in POST from a page with `headers`; answers the status.
    async fn sign_in(app: &Router, headers: &[(&str, &str)]) -> StatusCode {
        let mut req = Request::post("/login")
            .header(header::HOST, "app.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Body::from("user=alice")).unwrap();
        app.clone().oneshot(req).await.unwrap().status()
    }

    /// SameSite=Lax lets any page of the same site (another port of the
    /// host, a sibling subdomain) post the forms with the user's cookie:
    /// forms only come from the app's own pages.
    #[tokio::test]
    async fn forms_from_other_origins_are_refused() {
        let (app, _dir) = test_app().await;
        for headers in [
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", "http://app.test:3001"),
            ][..],
            &[("sec-fetch-site", "cross-site")],
            &[("origin", "http://evil.test")],
            &[("origin", "null")],
        ] {
            assert_eq!(sign_in(&app, headers).await, StatusCode::FORBIDDEN, "{headers:?}");
        }
        for headers in [
            &[("sec-fetch-site", "same-origin"), ("origin", "http://app.test")][..],
            &[("origin", "http://app.test")],
            // Not a browser (curl): no ambient cookie to abuse.
            &[],
        ] {
            assert_eq!(sign_in(&app, headers).await, StatusCode::SEE_OTHER, "{headers:?}");
        }
    }
}
