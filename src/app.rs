//! The HTTP API as an axum `Router`: the routes of the contract, each with its
//! OpenAPI description, JSON errors for unknown paths and methods, and CORS.
//!
//! A new route is a handler with a `#[utoipa::path]` in its domain module, one
//! line in [`router`] and one in [`documented`], then `make openapi` (which
//! writes the document the binary serves, `src/openapi.json`). tests/docs.rs
//! fails while the two lists or the file disagree. The router is plain axum so
//! that utoipa stays out of the bootstrap (see [`crate::docs`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Router};
use lambda_http::request::RequestContext;
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Caller;
use crate::docs;
use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;
use crate::tasks;
use crate::users;

/// The routes of the contract.
fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(users::list_users))
        .route(
            "/async",
            get(tasks::http::start_default_task).post(tasks::http::start_task),
        )
        .route("/tasks", get(tasks::list::list_tasks))
        .route(
            "/tasks/{task_id}",
            get(tasks::http::get_task).delete(tasks::http::cancel_task),
        )
        .route("/openapi.json", get(docs::openapi_json))
        .route("/docs", get(docs::docs_page))
}

/// The same routes, each with its OpenAPI description: what the document is
/// generated from.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(users::list_users))
        .routes(routes!(
            tasks::http::start_default_task,
            tasks::http::start_task
        ))
        .routes(routes!(tasks::list::list_tasks))
        .routes(routes!(tasks::http::get_task, tasks::http::cancel_task))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs_page))
}

/// The OpenAPI document of [`Api`], generated from the handlers' annotations
/// (`make openapi` writes it to `src/openapi.json`, which `/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().into_openapi()
}

/// The HTTP API: the routes of the contract, JSON errors for unknown paths
/// and methods, and CORS for the configured origins; around them, the two
/// checks that come before routing ([`Api::call`]).
#[derive(Clone)]
pub struct Api {
    router: Router,
    require_caller: bool,
}

impl Api {
    /// Builds the router once, around the function's state.
    pub fn new(state: AppState) -> Self {
        let require_caller = state.config.require_caller;
        let api = router()
            .fallback(|method: Method, uri: Uri| async move {
                ApiError::NotFound(format!("No route for {method} {}", uri.path()))
            })
            .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
                ApiError::MethodNotAllowed(format!(
                    "Method {method} is not allowed on {}",
                    uri.path()
                ))
            });
        // With no origin configured, no CORS layer at all: no CORS header (not
        // even its `Vary`) and no work on any request.
        let api = match cors_layer(&state.config.cors_allowed_origins) {
            // Route layers see only requests whose path is a route: an OPTIONS on
            // any other path is the fallback's 404.
            Some(cors) => api.route_layer(PreflightOnly { cors }),
            None => api,
        };
        // Outermost, so even CORS's own answers are counted by their route.
        let router = api.layer(metrics::MarkRouteLayer).with_state(state);
        Self {
            router,
            require_caller,
        }
    }

    /// Serves one request. In order: `REQUIRE_CALLER=true` refuses an
    /// anonymous one on every path but [`OPEN_PATHS`] and CORS preflights (a
    /// 401, so that a route or Function URL left open by mistake is closed by
    /// the function itself, and an unknown path is a 401 before it is a 404),
    /// `HEAD` on a route whose `GET` is unsafe is a 405, then the router; and
    /// no 405 of such a route lists `HEAD` in its `Allow`, which the router
    /// itself sets. Plain checks around the router rather than layers of it:
    /// a layer costs every request its allocations and its polls.
    pub async fn call<B>(&self, request: axum::http::Request<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if self.require_caller {
            let caller = Caller::of(request.extensions().get::<RequestContext>());
            if caller.is_anonymous() && !is_preflight(&request) && !is_open(&request) {
                return ApiError::Unauthorized(
                    "This API needs a verified caller: send a token its authorizer accepts"
                        .to_owned(),
                )
                .into_response();
            }
        }
        let unsafe_get = GET_IS_UNSAFE.contains(&request.uri().path());
        if unsafe_get && request.method() == Method::HEAD {
            let mut response = ApiError::MethodNotAllowed(format!(
                "Method HEAD is not allowed on {}",
                request.uri().path()
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET,POST"));
            return response;
        }
        let mut response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        };
        if unsafe_get {
            without_head_in_allow(&mut response);
        }
        response
    }
}

/// What `REQUIRE_CALLER=true` leaves open to anonymous requests: the API's
/// own description, and CORS preflights (a browser sends no credentials in
/// one).
const OPEN_PATHS: &[&str] = &["/docs", "/openapi.json"];

/// Whether `request` is a path [`OPEN_PATHS`] leaves open.
fn is_open<B>(request: &axum::http::Request<B>) -> bool {
    OPEN_PATHS.contains(&request.uri().path())
}

/// A CORS preflight: an `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
fn is_preflight<B>(request: &axum::http::Request<B>) -> bool {
    let headers = request.headers();
    request.method() == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Browsers on the configured origins may call the API (and get a preflight
/// answer); with none configured, none.
fn cors_layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().cloned())
    };
    let cors = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static(tasks::idempotency::HEADER),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(Duration::from_secs(3600));
    Some(cors)
}

/// Routes whose `GET` starts something, so that `HEAD` (which axum would serve
/// with the `GET` handler) must not: an uptime checker or a link preview would
/// start a billed task.
const GET_IS_UNSAFE: &[&str] = &["/async"];

/// `response`'s `Allow` (a 405's) without `HEAD`.
fn without_head_in_allow(response: &mut Response) {
    let Some(allow) = response.headers().get(header::ALLOW) else {
        return;
    };
    let methods: Vec<&str> = allow
        .to_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|method| !method.eq_ignore_ascii_case("HEAD"))
        .collect();
    if let Ok(allow) = HeaderValue::from_str(&methods.join(",")) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
}

/// An `OPTIONS` is a CORS preflight only when it carries `Origin` and
/// `Access-Control-Request-Method` (CORS is configured, or this layer would
/// not be there); any other is the route's 405. tower-http's CORS layer
/// answers *every* `OPTIONS` as a preflight (200, empty), so only a real
/// preflight reaches it; any other `OPTIONS` goes straight to the route.
#[derive(Clone)]
struct PreflightOnly {
    cors: CorsLayer,
}

impl<S: Clone> Layer<S> for PreflightOnly {
    type Service = PreflightOnlyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PreflightOnlyService {
            cors: self.cors.layer(inner.clone()),
            inner,
        }
    }
}

#[derive(Clone)]
struct PreflightOnlyService<S> {
    cors: Cors<S>,
    inner: S,
}

impl<S> Service<Request> for PreflightOnlyService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    // Each call goes to a clone through `oneshot`, which waits for readiness.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == Method::OPTIONS && !is_preflight(&request) {
            Box::pin(self.inner.clone().oneshot(request))
        } else {
            Box::pin(self.cors.clone().oneshot(request))
        }
    }
}
