//! A serverless answer to FastAPI's async/await example, for AWS Lambda.
//!
//! [`app`] is the HTTP API as an axum `Router`. [`Function`] is what Lambda
//! runs: it hands HTTP events to the router and runs the function's own task
//! events (see [`tasks`]). Only the event's request context tells the two
//! apart: a non-HTTP (pass-through) event may be a task; an HTTP request, on
//! any path and with any body, never is.

pub mod config;
pub mod docs;
pub mod error;
pub mod tasks;
pub mod users;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use axum::Extension;
use axum::Router;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::IntoResponse;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::error::{ApiError, MAX_BODY_BYTES, REQUEST_ID};
use crate::tasks::TaskError;

/// What every handler shares: the configuration and the AWS clients, built
/// once at init.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Config,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub lambda: aws_sdk_lambda::Client,
}

impl AppState {
    /// Builds the AWS clients once, from the shared AWS configuration.
    pub fn new(config: Config, aws: &SdkConfig) -> Self {
        Self {
            config,
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb_config(aws).build()),
            lambda: aws_sdk_lambda::Client::from_conf(lambda_config(aws).build()),
        }
    }
}

/// Bounds on every AWS call. Each must end well inside API Gateway's 30 s
/// integration timeout, so a slow or hung dependency answers 503 rather than a
/// gateway timeout: 1 s to connect, 2 s per attempt, 3 attempts with jittered
/// backoff, 6 s in all. DynamoDB answers in milliseconds when healthy, and an
/// `Event` invoke only enqueues.
fn call_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

fn call_retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// The HTTPS client of every AWS call: the SDK's own (hyper 1, rustls) with
/// ring as the crypto provider, where the SDK's default feature would bring
/// aws-lc-rs and a larger binary (see Cargo.toml).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The shared AWS configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL_*`), its credential providers calling through
/// [`https_client`].
pub async fn load_aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// DynamoDB client settings: the shared AWS configuration within the call bounds.
pub fn dynamodb_config(aws: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(aws)
        .timeout_config(call_timeouts())
        .retry_config(call_retries())
}

/// Lambda client settings (the self-invocation), within the same bounds.
pub fn lambda_config(aws: &SdkConfig) -> aws_sdk_lambda::config::Builder {
    aws_sdk_lambda::config::Builder::from(aws)
        .timeout_config(call_timeouts())
        .retry_config(call_retries())
}

/// The routes of the contract, each with its OpenAPI description.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(users::list_users))
        .routes(routes!(tasks::start_default_task, tasks::start_task))
        .routes(routes!(tasks::get_task))
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

/// The Lambda function: every event goes through [`Function::handle`].
#[derive(Clone)]
pub struct Function {
    state: AppState,
    router: Router,
}

impl Function {
    /// Builds the function around its state.
    pub fn new(state: AppState) -> Self {
        let router = app(state.clone());
        Self { state, router }
    }

    /// Serves one event: an HTTP request through the router, a task event
    /// through [`tasks::run_task_event`]. An HTTP request always gets an HTTP
    /// answer; a task event that fails returns the error to Lambda.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, TaskError> {
        let context = request.lambda_context_ref();
        let request_id = context.map(|c| c.request_id.clone()).unwrap_or_default();
        let deadline_ms = context.map_or(0, |c| c.deadline);

        if matches!(
            request.request_context_ref(),
            Some(RequestContext::PassThrough)
        ) {
            let outcome = tasks::run_task_event(&self.state, request.body(), deadline_ms).await?;
            return Ok(into_lambda_response(axum::Json(outcome).into_response()).await);
        }

        let response = REQUEST_ID
            .scope(request_id, async {
                if request.body().len() > MAX_BODY_BYTES {
                    return ApiError::PayloadTooLarge.into_response();
                }
                let request = without_stage_prefix(request);
                match self.router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(infallible) => match infallible {},
                }
            })
            .await;
        Ok(into_lambda_response(response).await)
    }
}

/// axum's streaming body becomes the buffered body Lambda returns: text where
/// it is UTF-8 (JSON always is), base64 binary otherwise.
async fn into_lambda_response(response: axum::response::Response) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) if bytes.is_empty() => Body::Empty,
        Ok(bytes) => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(err) => Body::Binary(err.into_bytes()),
        },
        Err(_) => Body::Empty,
    };
    Response::from_parts(parts, body)
}

/// API Gateway REST APIs (and HTTP APIs on a named stage) put the stage in
/// front of the path (`/Prod/users`); the routes are the same on every stage.
fn without_stage_prefix(mut request: Request) -> Request {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|stage| stage != "$default") else {
        return request;
    };
    let uri = request.uri();
    let prefix = format!("/{stage}");
    let Some(rest) = uri.path().strip_prefix(&prefix) else {
        return request;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return request;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    if let Ok(path_and_query) = path_and_query.parse() {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}
