//! `openapi.json` against the router: every documented operation is
//! served (not the router's 404/405) and answers with a documented
//! status, every route the router serves under `/api` and `/s3/` is
//! documented, and the document itself is well-formed OpenAPI 3.1.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chute_server::grants::Grants;
use chute_server::openapi::DOCUMENT;
use chute_server::{AppState, Origins};
use http_body_util::BodyExt as _;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use tower::ServiceExt as _;

/// Every route the app serves under `/api` and `/s3/`. Axum cannot list
/// its routes, so a route added to the router must be added here (and to
/// the document): the probes below find undocumented methods on
/// documented paths, this list the paths.
const SERVED: &[(&str, &str)] = &[
    ("POST", "/api/uploads"),
    ("GET", "/api/uploads/{id}"),
    ("DELETE", "/api/uploads/{id}"),
    ("POST", "/api/uploads/{id}/parts"),
    ("POST", "/api/uploads/{id}/complete"),
    ("POST", "/api/receipts/verify"),
    ("POST", "/api/objects/promote"),
    ("POST", "/api/stream"),
    ("PUT", "/api/stream/{filename}"),
    ("GET", "/api/objects/link"),
    ("GET", "/api/objects/{receipt}/derivatives"),
    ("GET", "/api/openapi.json"),
    ("GET", "/s3/params"),
    ("POST", "/s3/multipart"),
    ("GET", "/s3/multipart/{uploadId}"),
    ("DELETE", "/s3/multipart/{uploadId}"),
    ("GET", "/s3/multipart/{uploadId}/batch"),
    ("GET", "/s3/multipart/{uploadId}/{partNumber}"),
    ("POST", "/s3/multipart/{uploadId}/complete"),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A concrete path for a documented template.
fn concrete(path: &str) -> String {
    path.replace("{id}", "placeholder-id")
        .replace("{uploadId}", "placeholder-upload")
        .replace("{partNumber}", "1")
        .replace("{filename}", "placeholder.bin")
}

async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let lifecycle =
        chute_server::open_lifecycle(&crate::test_config(dir.path()), chute_server::hooks::Hooks::new())
            .await
            .unwrap();
    let state = AppState {
        lifecycle,
        // No grant source: calls needing a grant get 401, which is fine.
        grants: Arc::new(Grants::default()),
        origins: Origins::default(),
        stream: Default::default(),
    };
    (chute_server::app(state), dir)
}

async fn send(app: &axum::Router, method: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    (
        status,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

#[test]
fn the_document_is_openapi_3_1_and_names_every_route() {
    let doc = document();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let documented = operations(&doc);
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(unserved.is_empty(), "documented but not in SERVED: {unserved:?}");
}

#[test]
fn every_operation_is_complete_and_every_reference_resolves() {
    let doc = document();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let what = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{what}: operationId");
            assert!(op["summary"].is_string(), "{what}: summary");
            assert!(
                !op["responses"].as_object().unwrap().is_empty(),
                "{what}: responses"
            );
            for requirement in op["security"].as_array().expect("security is explicit") {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(scheme), "{what}: unknown scheme {scheme}");
                }
            }
            // Every `{name}` of the path is a declared path parameter.
            let declared: Vec<&str> = [&item["parameters"], &op["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for segment in path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(
                        declared.contains(&name),
                        "{what}: path parameter {name} undeclared"
                    );
                }
            }
        }
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "the document uses components");
    for r in refs {
        let pointer = r.strip_prefix('#').expect("local references only");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_router_serves_each_documented_operation_and_no_other_method() {
    let (app, _dir) = app().await;
    let doc = document();
    for (method, path) in operations(&doc) {
        let uri = concrete(&path);
        let (status, body) = send(&app, &method, &uri).await;
        let json: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{method} {uri}: {status} without a JSON body (the router's own 404/405?): {}",
                String::from_utf8_lossy(&body)
            )
        });
        let documented = doc["paths"][&path][method.to_ascii_lowercase()]["responses"]
            .get(status.as_str())
            .is_some();
        assert!(
            documented,
            "{method} {uri}: {status} is not a documented answer: {json}"
        );
        if !status.is_success() {
            assert!(json["error"]["code"].is_string(), "{method} {uri}: {json}");
        }
    }
    // Methods the document does not list for a path are not served there.
    let paths: BTreeSet<String> = operations(&doc).into_iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if doc["paths"][&path].get(method.to_ascii_lowercase()).is_some() {
                continue;
            }
            let (status, _) = send(&app, method, &concrete(&path)).await;
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is served but not documented"
            );
        }
    }
}

#[tokio::test]
async fn the_document_is_served_as_json() {
    let (app, _dir) = app().await;
    let req = Request::get("/api/openapi.json").body(Body::empty()).unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, DOCUMENT.as_bytes());
}
