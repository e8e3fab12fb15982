//! The HTTP kinds of event (API Gateway HTTP and REST APIs, Function URLs, the
//! Application Load Balancer), served by the router: the body limit, the REST
//! stage prefix taken off the path, and axum's answer buffered into the
//! response Lambda returns.

use axum::http::Uri;
use axum::response::IntoResponse;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::app::Api;
use crate::error::{ApiError, MAX_BODY_BYTES, REQUEST_ID};

/// The part of the path the client called that lies before the routes: the
/// REST API stage (`/Prod`) or a custom domain's base path, empty at the root.
/// `/async` puts it in front of the `Location` it answers, so that the
/// reference leads back through the same stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BasePath(pub String);

/// How many bytes a body may take as it travels inside Lambda's JSON response
/// (where every `"` and `\` is escaped once more), with room to spare for
/// headers and the envelope: under Lambda's 6 MB for API Gateway and Function
/// URLs, under an Application Load Balancer's 1 MB for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseBudget(pub usize);

impl Default for ResponseBudget {
    fn default() -> Self {
        Self(5_000_000)
    }
}

impl ResponseBudget {
    /// The budget of the source that sent `request`.
    fn of(request: &Request) -> Self {
        match request.request_context_ref() {
            Some(RequestContext::Alb(_)) => Self(900_000),
            _ => Self::default(),
        }
    }
}

/// Serves one HTTP request. It always gets an HTTP answer, errors included,
/// and every line logged while serving it, like its error body, carries the
/// Lambda request id.
pub async fn serve(api: &Api, request: Request) -> Response<Body> {
    let request_id = request
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .unwrap_or_default();
    let response = REQUEST_ID
        .scope(request_id, async {
            if request.body().len() > MAX_BODY_BYTES {
                return ApiError::PayloadTooLarge.into_response();
            }
            let client_path = client_path(&request);
            let mut request = without_stage_prefix(request);
            let base = base_path(&client_path, request.uri().path());
            let budget = ResponseBudget::of(&request);
            request.extensions_mut().insert(BasePath(base));
            request.extensions_mut().insert(budget);
            api.call(request).await
        })
        .await;
    into_lambda_response(response).await
}

/// axum's streaming body becomes the buffered body Lambda returns, as bytes.
/// lambda_http then writes it by its headers, whatever the variant: as text
/// for a JSON or `text/*` content type (checking on the way that it is UTF-8,
/// so it is not checked here as well: a 1,000-item page read once less), as
/// base64 for any other or a `Content-Encoding`.
pub async fn into_lambda_response(response: axum::response::Response) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) if bytes.is_empty() => Body::Empty,
        // `Vec::from` takes the buffer over without a copy when the body is
        // one buffer of its own, as a JSON answer is (a 1 MB page, once).
        Ok(bytes) => Body::Binary(Vec::from(bytes)),
        Err(_) => Body::Empty,
    };
    Response::from_parts(parts, body)
}

/// The stage of a request whose path carries it in front (`/Prod/users`):
/// API Gateway REST APIs, and HTTP APIs on a named stage. `$default` is no
/// prefix.
fn stage_of(request: &Request) -> Option<&str> {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    stage.filter(|stage| *stage != "$default")
}

/// The path as the client called it. A REST API's request context keeps it
/// whole (stage or base path included), where the event's own path may lack
/// them.
fn client_path(request: &Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.path.clone(),
        _ => None,
    }
    .unwrap_or_else(|| request.uri().path().to_owned())
}

/// What lies in front of `routed` in `client`: `/Prod` for `/Prod/async` and
/// `/async`; nothing when `client` does not end with `routed`.
fn base_path(client: &str, routed: &str) -> String {
    client
        .strip_suffix(routed)
        .filter(|base| base.is_empty() || base.starts_with('/'))
        .map(|base| base.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// The routes are the same on every stage: `/Prod/users` is `/users`.
fn without_stage_prefix(mut request: Request) -> Request {
    let Some(stage) = stage_of(&request) else {
        return request;
    };
    if let Some(uri) = strip_stage(request.uri(), stage) {
        *request.uri_mut() = uri;
    }
    request
}

/// `uri` without the leading `/{stage}` segment, query kept; `None` when the
/// path does not start with that whole segment.
fn strip_stage(uri: &Uri, stage: &str) -> Option<Uri> {
    let rest = uri.path().strip_prefix('/')?.strip_prefix(stage)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(uri: &str, stage: &str) -> Option<String> {
        strip_stage(&uri.parse().unwrap(), stage).map(|uri| uri.to_string())
    }

    #[test]
    fn the_stage_segment_comes_off_the_front_of_the_path_and_the_query_stays() {
        assert_eq!(strip("/Prod/users", "Prod").as_deref(), Some("/users"));
        assert_eq!(
            strip("/Prod/users?limit=5", "Prod").as_deref(),
            Some("/users?limit=5")
        );
        assert_eq!(strip("/Prod", "Prod").as_deref(), Some("/"));
        assert_eq!(
            strip("https://api.example.com/Prod/tasks/x", "Prod").as_deref(),
            Some("https://api.example.com/tasks/x")
        );
    }

    #[test]
    fn a_path_without_the_whole_stage_segment_is_left_alone() {
        assert_eq!(strip("/users", "Prod"), None);
        assert_eq!(strip("/Production/users", "Prod"), None);
        assert_eq!(strip("/prod/users", "Prod"), None);
    }

    #[test]
    fn the_base_path_is_what_the_client_called_in_front_of_the_route() {
        assert_eq!(base_path("/async", "/async"), "");
        assert_eq!(base_path("/Prod/async", "/async"), "/Prod");
        assert_eq!(base_path("/v1/api/async", "/async"), "/v1/api");
        assert_eq!(base_path("/xasync", "/async"), "", "not a whole segment");
        assert_eq!(base_path("/other", "/async"), "");
    }
}
