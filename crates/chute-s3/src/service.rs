//! [`EmbeddedS3`]: the composition root of the endpoint. One request flows
//! CORS preflight → browser POST Object → s3s (auth, routing, [`ChuteS3`])
//! → CORS headers on the response. The result is a cloneable tower and
//! hyper service with `Error = Infallible`, ready for hyper-util's server.

use crate::auth::ConfigAuth;
use crate::ops::ChuteS3;
use crate::{EmbeddedS3Config, S3Context, cors};
use chute_store::fs::FsStore;
use futures::future::BoxFuture;
use http::{HeaderValue, StatusCode};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::Incoming;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::{S3Service, S3ServiceBuilder};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_http::timeout::TimeoutBody;

pub use crate::error::s3_error_response;

/// The embedded S3-compatible endpoint over a filesystem store.
#[derive(Debug, Clone)]
pub struct EmbeddedS3 {
    ctx: S3Context,
}

impl EmbeddedS3 {
    /// The endpoint over `store` with `config`.
    pub fn new(store: FsStore, config: EmbeddedS3Config) -> Self {
        Self {
            ctx: S3Context {
                store,
                config: Arc::new(config),
            },
        }
    }

    /// What every handler shares (the store and settings).
    pub fn context(&self) -> &S3Context {
        &self.ctx
    }

    /// The request handler, as a cloneable tower/hyper service.
    pub fn into_service(self) -> EmbeddedS3Service {
        let mut builder = S3ServiceBuilder::new(ChuteS3::new(self.ctx.clone()));
        builder.set_auth(ConfigAuth::new(Arc::clone(&self.ctx.config)));
        builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3s_limits()))));
        // Path-style addressing only: virtual hosts need a configured domain.
        EmbeddedS3Service {
            inner: Arc::new(Inner {
                ctx: self.ctx,
                s3: builder.build(),
            }),
        }
    }
}

/// The endpoint's request handler; clone it per connection.
#[derive(Clone)]
pub struct EmbeddedS3Service {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: S3Context,
    s3: S3Service,
}

/// s3s's limits. Browser POST Object never reaches s3s (the streaming
/// route takes every multipart POST to a bucket), so its own POST handling,
/// which buffers the file in memory, gets no room at all as a backstop.
fn s3s_limits() -> S3Config {
    let mut config = S3Config::default();
    config.post_object_max_file_size = 0;
    config.form_max_field_size = 1024;
    config.form_max_fields_size = 4096;
    config.form_max_parts = 8;
    config
}

impl std::fmt::Debug for EmbeddedS3Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedS3Service").finish_non_exhaustive()
    }
}

type Request = http::Request<Incoming>;
type Response = http::Response<s3s::Body>;
/// A request body that fails after `body_idle_timeout` without data
/// (boxed: `TimeoutBody` holds a `Sleep` and is not `Unpin`), or an
/// empty one as hyper gave it.
type TimedBody = Either<Incoming, Pin<Box<TimeoutBody<Incoming>>>>;

impl EmbeddedS3Service {
    /// Answers one request; never fails (errors are S3 XML responses).
    pub async fn handle(&self, req: Request) -> Response {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        let ctx = &self.inner.ctx;
        // A body that sends nothing for the idle timeout fails with
        // `TimeoutError`, which aborts the upload (`error::is_body_timeout`
        // makes it `RequestTimeout`); otherwise a client that stops
        // mid-body would hold the task, a temp file and a writer forever.
        // A request without a body keeps hyper's own (its exact size
        // hint of 0 is what s3s falls back on without a Content-Length).
        let idle = ctx.config.body_idle_timeout;
        let req = req.map(|body| {
            if body.is_end_stream() {
                Either::Left(body)
            } else {
                Either::Right(Box::pin(TimeoutBody::new(idle, body)))
            }
        });
        if cors::is_preflight(req.method(), req.headers()) {
            return cors::preflight(&ctx.store, req.uri(), req.headers(), &request_id).await;
        }
        let origin = req
            .headers()
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let method = req.method().clone();
        let bucket = cors::path_bucket(req.uri());

        // Browser POST Object takes Chute's streaming route (post_object/)
        // before s3s, which would buffer the whole form in memory.
        let mut resp = if let Some(problem) = crate::auth::presigned_expiry_problem(req.uri().query()) {
            s3_error_response(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                problem,
                req.uri().path(),
                &request_id,
            )
        } else if crate::post_object::is_post_object(req.method(), req.uri(), req.headers()) {
            crate::post_object::handle_post_object(ctx.clone(), req, &request_id).await
        } else {
            self.call_s3s(req, &request_id).await
        };

        let headers = resp.headers_mut();
        if !headers.contains_key("x-amz-request-id")
            && let Ok(v) = HeaderValue::from_str(&request_id)
        {
            headers.insert("x-amz-request-id", v);
        }
        if let (Some(origin), Some(bucket)) = (origin, bucket) {
            cors::apply_actual(&ctx.store, &bucket, &origin, &method, resp.headers_mut()).await;
        }
        resp
    }

    async fn call_s3s(&self, req: http::Request<TimedBody>, request_id: &str) -> Response {
        let path = req.uri().path().to_owned();
        match self.inner.s3.call(req.map(s3s::Body::http_body)).await {
            Ok(resp) => resp,
            Err(err) => {
                tracing::error!(?err, "s3s failed to answer");
                s3_error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                    &path,
                    request_id,
                )
            }
        }
    }
}

impl tower::Service<Request> for EmbeddedS3Service {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl hyper::service::Service<Request> for EmbeddedS3Service {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn call(&self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}
