//! `GET /chute.js`: the upload widget (`widget/chute.js` at the workspace
//! root), embedded in the binary so `chute serve` needs no files beside it.
//! It is plain JavaScript checked by `tsc --checkJs`; nothing builds it.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The widget's source, as served.
pub const SOURCE: &str = include_str!("../../../widget/chute.js");

/// The route serving [`SOURCE`].
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/chute.js", get(script))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Short: a new binary's widget reaches pages within minutes.
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Pages on other origins import it as a module, which is a CORS
            // fetch; the code is public.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        SOURCE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn serves_the_module_as_javascript() {
        let router: Router = routes();
        let res = router
            .oneshot(Request::get("/chute.js").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(
            res.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, SOURCE.as_bytes());
        assert!(SOURCE.contains("export function upgrade("));
    }
}
