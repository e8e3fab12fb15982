//! The HTTP API as an axum `Router`: the routes of the contract, each with its
//! OpenAPI description, JSON errors for unknown paths and methods, and CORS.
//!
//! A new route is a handler with a `#[utoipa::path]` in its domain module and
//! one line in [`routes`]; the document and the router follow from it.

use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::http::{HeaderValue, Method, Uri, header};
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
        .routes(routes!(tasks::http::get_task))
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
    let cors = cors_layer(&state.config.cors_allowed_origins);
    router
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::NotFound(format!("No route for {method} {}", uri.path()))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::MethodNotAllowed(format!("Method {method} is not allowed on {}", uri.path()))
        })
        .layer(Extension(docs::OpenApiJson(openapi_json.into())))
        .layer(cors)
        // Outermost, so even CORS's own answers are counted by their route.
        .layer(axum::middleware::from_fn(metrics::mark_route))
        .with_state(state)
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
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .expose_headers([header::LOCATION, header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600))
}
