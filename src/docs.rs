//! The API describes itself, as FastAPI apps do: `GET /openapi.json` is the
//! OpenAPI 3.1 document generated from the handlers' annotations and types,
//! and `GET /docs` is Swagger UI for it. The document is generated ahead of
//! time (`make openapi` writes `src/openapi.json`, and tests/docs.rs fails
//! while the file and the code disagree) and served as the binary holds it:
//! building it at init took utoipa's builders and serializers into the
//! bootstrap (0.11 MiB of the zip) and its time into every cold start.
//! Lambda has no files to serve, so the page carries Swagger UI's script and
//! style inline, compiled into the binary (swagger-ui-dist 5.35.0 from npm,
//! Apache-2.0: see `src/docs/`).

use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::OpenApi;

use crate::error::{
    ApiError, BadRequestResponse, ConflictResponse, ErrorBody, ErrorCode, ErrorDetail,
    IdempotencyKeyReusedResponse, InternalResponse, NotFoundResponse, PayloadTooLargeResponse,
    TooManyRequestsResponse, UnauthorizedResponse, UnavailableResponse,
    UnsupportedMediaTypeResponse,
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
            UnauthorizedResponse,
            NotFoundResponse,
            ConflictResponse,
            PayloadTooLargeResponse,
            UnsupportedMediaTypeResponse,
            IdempotencyKeyReusedResponse,
            TooManyRequestsResponse,
            UnavailableResponse,
            InternalResponse
        ),
    ),
    modifiers(&BearerJwt),
    security((), ("bearer" = [])),
    tags(
        (name = "users", description = "The users table"),
        (name = "tasks", description = "Background tasks: start one, follow it, cancel it"),
        (name = "docs", description = "This API's own description"),
    )
)]
pub struct ApiDoc;

/// The security scheme: a bearer JWT, which API Gateway's JWT authorizer
/// verifies when the template is given an issuer (the function itself reads
/// only what the authorizer verified). Every operation takes it or none (a
/// public deployment); the docs page's Authorize button sends it.
struct BearerJwt;

impl utoipa::Modify for BearerJwt {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from the issuer the deployment trusts (template parameters JwtIssuer and JwtAudience); without one the caller is anonymous",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, as `make openapi` generated it from [`crate::app::openapi`].
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    responses((status = 200, description = "This OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

/// `GET /docs`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    responses((status = 200, description = "Swagger UI for `/openapi.json`; gzip-encoded for a client that accepts it", body = String, content_type = "text/html",
        headers(("Content-Encoding" = String, description = "`gzip` when the request's Accept-Encoding allows it"))))
)]
pub async fn docs_page(headers: HeaderMap) -> Response {
    let cache = [
        (header::CACHE_CONTROL, "public, max-age=3600"),
        (header::VARY, "accept-encoding"),
    ];
    if accepts_gzip(&headers) {
        let gzip = [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_ENCODING, "gzip"),
        ];
        return (cache, gzip, DOCS_PAGE_GZIP).into_response();
    }
    match inflate(DOCS_PAGE_GZIP) {
        Some(page) => (cache, Html(page)).into_response(),
        None => ApiError::Internal("the docs page does not inflate".to_owned()).into_response(),
    }
}

/// The page, gzipped at build time (see build.rs): a browser accepts gzip, and
/// the 0.5 MB it makes passes even an Application Load Balancer's 1 MB limit,
/// where the 1.9 MB page would not. `openapi.json` is relative in it, so the
/// page works under a stage prefix (`/Prod/docs`) too.
const DOCS_PAGE_GZIP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/docs.html.gz"));

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The page for a client that takes no gzip: inflated on the spot (a few
/// milliseconds), which keeps one copy of it in the binary.
fn inflate(gzip: &[u8]) -> Option<String> {
    // A gzip member: a 10-byte header (no optional fields: build.rs writes
    // none), the deflate stream, an 8-byte trailer.
    let deflate = gzip.get(10..gzip.len().checked_sub(8)?)?;
    let bytes = miniz_oxide::inflate::decompress_to_vec(deflate).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepting(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_sent_only_to_a_client_that_accepts_it() {
        assert!(!accepts_gzip(&HeaderMap::new()));
        for yes in ["gzip", "gzip, deflate, br", "br;q=1.0, GZIP;q=0.5", "*"] {
            assert!(accepting(yes), "{yes}");
        }
        for no in [
            "identity",
            "br",
            "gzip;q=0",
            "deflate, gzip;q=0.0",
            "x-gzip",
        ] {
            assert!(!accepting(no), "{no}");
        }
    }

    #[test]
    fn the_page_inflates_to_swagger_ui_for_openapi_json_and_its_gzip_passes_an_alb() {
        let page = inflate(DOCS_PAGE_GZIP).expect("inflates");
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains(r#"url: "openapi.json""#));
        assert!(!page.contains("/*swagger-ui"), "both parts inlined");
        assert!(page.len() > 1_000_000, "{}", page.len());
        // Base64 in Lambda's response document, under the ALB's 1 MB.
        assert!(
            DOCS_PAGE_GZIP.len() * 4 / 3 < 900_000,
            "{}",
            DOCS_PAGE_GZIP.len()
        );
    }
}
