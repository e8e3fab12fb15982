//! The HTTP API as an axum `Router`: the routes of the contract, each with its
//! OpenAPI description, JSON errors for unknown paths and methods, and CORS.
//!
//! A new route is a handler with a `#[utoipa::path]` in its domain module and
//! one line in [`routes`]; the document and the router follow from it.

use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::docs;
use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;
use crate::tasks;
use crate::users;

/// The routes of the contract, each with its OpenAPI description.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(users::list_users))
        .routes(routes!(
            tasks::http::start_default_task,
            tasks::http::start_task
        ))
        .routes(routes!(tasks::http::get_task, tasks::http::cancel_task))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs_page))
}

/// The OpenAPI document of [`app`], generated from the same routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The HTTP API: the routes of the contract, JSON errors for unknown paths
/// and methods, and CORS for the configured origins.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = routes().split_for_parts();
    let openapi_json = openapi.to_json().unwrap_or_else(|err| {
        tracing::error!(%err, "OpenAPI document not serializable");
        "{}".to_owned()
    });
    let cors_configured = !state.config.cors_allowed_origins.is_empty();
    let api = router
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::NotFound(format!("No route for {method} {}", uri.path()))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::MethodNotAllowed(format!("Method {method} is not allowed on {}", uri.path()))
        })
        .layer(Extension(docs::OpenApiJson(openapi_json.into())))
        // Route layers see only requests whose path is a route: an OPTIONS on
        // any other path is the fallback's 404.
        .route_layer(cors_layer(&state.config.cors_allowed_origins))
        .route_layer(axum::middleware::from_fn(move |request, next| {
            preflight_only_when_cors_applies(cors_configured, request, next)
        }))
        // Outermost, so even CORS's own answers are counted by their route.
        .layer(axum::middleware::from_fn(metrics::mark_route))
        .with_state(state);
    // Around the whole router: the `Allow` of a 405 is set by the router itself.
    Router::new()
        .fallback_service(api)
        .layer(axum::middleware::from_fn(head_only_where_get_is_safe))
}

/// Browsers on the configured origins may call the API (and get a preflight
/// answer); with none configured, no CORS headers at all.
fn cors_layer(origins: &[HeaderValue]) -> CorsLayer {
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().cloned())
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static(tasks::idempotency::HEADER),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// Routes whose `GET` starts something, so that `HEAD` (which axum would serve
/// with the `GET` handler) must not: an uptime checker or a link preview would
/// start a billed task.
const GET_IS_UNSAFE: &[&str] = &["/async"];

/// `HEAD` on a route whose `GET` is unsafe is a 405, and no 405 of such a
/// route lists `HEAD` in its `Allow`.
async fn head_only_where_get_is_safe(request: Request, next: Next) -> Response {
    let unsafe_get = GET_IS_UNSAFE.contains(&request.uri().path());
    if !unsafe_get {
        return next.run(request).await;
    }
    let mut response = if request.method() == Method::HEAD {
        let mut response = ApiError::MethodNotAllowed(format!(
            "Method HEAD is not allowed on {}",
            request.uri().path()
        ))
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET,POST"));
        response
    } else {
        next.run(request).await
    };
    if let Some(allow) = response.headers().get(header::ALLOW) {
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
    response
}

/// An `OPTIONS` is a CORS preflight only when it carries `Origin` and
/// `Access-Control-Request-Method` and CORS is configured; any other is the
/// route's 405. The CORS layer answers every `OPTIONS` with
/// `Access-Control-Request-Method` itself, so that header is dropped from the
/// others before it sees them.
async fn preflight_only_when_cors_applies(
    cors_configured: bool,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::OPTIONS
        && !(cors_configured && request.headers().contains_key(header::ORIGIN))
    {
        request
            .headers_mut()
            .remove(header::ACCESS_CONTROL_REQUEST_METHOD);
    }
    next.run(request).await
}
