//! The API describes itself, as FastAPI apps do: `GET /openapi.json` is the
//! OpenAPI 3.1 document generated from the handlers' annotations and types,
//! and `GET /docs` is Swagger UI for it. Lambda has no files to serve, so the
//! page carries Swagger UI's script and style inline, compiled into the binary
//! (swagger-ui-dist 5.35.0 from npm, Apache-2.0: see `src/docs/`).

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::OpenApi;

use crate::error::{
    BadRequestResponse, ConflictResponse, ErrorBody, ErrorCode, ErrorDetail,
    IdempotencyKeyReusedResponse, InternalResponse, NotFoundResponse, PayloadTooLargeResponse,
    UnavailableResponse, UnsupportedMediaTypeResponse,
};

/// The document's fixed parts; the paths come from the router (see [`crate::app`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "async-api",
        description = "Users from DynamoDB, and background tasks that run in their own Lambda invocation.",
        license(name = "MIT"),
    ),
    components(
        schemas(ErrorBody, ErrorDetail, ErrorCode),
        responses(
            BadRequestResponse,
            NotFoundResponse,
            ConflictResponse,
            PayloadTooLargeResponse,
            UnsupportedMediaTypeResponse,
            IdempotencyKeyReusedResponse,
            UnavailableResponse,
            InternalResponse
        ),
    ),
    tags(
        (name = "users", description = "The users table"),
        (name = "tasks", description = "Background tasks: start one, follow it, cancel it"),
        (name = "docs", description = "This API's own description"),
    )
)]
pub struct ApiDoc;

/// The generated document, serialized once at init.
#[derive(Clone)]
pub struct OpenApiJson(pub Arc<str>);

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    responses((status = 200, description = "This OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
pub async fn openapi_json(
    Extension(OpenApiJson(json)): Extension<OpenApiJson>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
}

/// `GET /docs`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    responses((status = 200, description = "Swagger UI for `/openapi.json`", body = String, content_type = "text/html"))
)]
pub async fn docs_page() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        Html(DOCS_PAGE),
    )
}

/// The whole page, assembled at compile time. `openapi.json` is relative, so the
/// page works under a stage prefix (`/Prod/docs`) too.
const DOCS_PAGE: &str = concat!(
    r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>async-api: API docs</title>
<style>"#,
    include_str!("docs/swagger-ui.css"),
    r#"</style>
</head>
<body>
<div id="swagger-ui"></div>
<script>"#,
    include_str!("docs/swagger-ui-bundle.js"),
    r##"</script>
<script>
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
</script>
</body>
</html>
"##
);
