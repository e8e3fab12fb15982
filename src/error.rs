//! `ApiError`: every way a request can fail, rendered as the JSON error of the
//! contract (`{"error": {"code", "message", "request_id"}}`).
//!
//! Handlers return `Result<_, ApiError>`; extractor rejections and AWS SDK
//! errors convert into it. What a client sees never names an internal: SDK
//! failures are logged as a short summary (service error code, HTTP status or
//! connection failure) and answered with a fixed message.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

tokio::task_local! {
    /// The Lambda request id of the invocation being served, so that an error
    /// body carries the same id as the logs.
    pub static REQUEST_ID: String;
}

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// A request that could not be served, and why.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong: a parameter, the cursor, the task id or the body.
    #[error("{0}")]
    BadRequest(String),
    /// The request carries no verified identity where one is needed
    /// (`REQUIRE_CALLER`, `GET /tasks`).
    #[error("{0}")]
    Unauthorized(String),
    /// No such route or no such task.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method; axum adds the `Allow` header.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the state of a resource: an `Idempotency-Key`
    /// whose first request is still being handled (with `Retry-After`), or a
    /// task that has already ended.
    #[error("{message}")]
    Conflict {
        message: String,
        /// Whether a retry may succeed later (then with `Retry-After`).
        retry: bool,
    },
    /// The body is over [`MAX_BODY_BYTES`].
    #[error("Request body is larger than {} bytes", MAX_BODY_BYTES)]
    PayloadTooLarge,
    /// A body that is not JSON by its `Content-Type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An `Idempotency-Key` sent again with another body.
    #[error("This Idempotency-Key was used with another request body")]
    IdempotencyKeyReused,
    /// The caller started as many tasks this minute as it may
    /// (`TASKS_PER_MINUTE_PER_CALLER`): retry after `retry_after_s` seconds,
    /// the next minute.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_s: u64 },
    /// A dependency (DynamoDB, Lambda) is unreachable, throttled or missing a
    /// table. The string is for the logs only.
    #[error("Service temporarily unavailable, retry later")]
    Unavailable(String),
    /// Anything else. The string is for the logs only.
    #[error("Internal error")]
    Internal(String),
}

impl ApiError {
    /// Maps an AWS SDK failure: what a retry may cure is `Unavailable`
    /// (connection, timeout, throttling, 5xx, a missing table), the rest is
    /// `Internal`.
    pub fn from_sdk<E: ProvideErrorMetadata>(
        operation: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self {
        let summary = format!("{operation}: {}", sdk_summary(err));
        let retryable = match err {
            SdkError::ServiceError(e) => {
                e.raw().status().is_server_error()
                    || RETRYABLE_CODES.contains(&e.err().code().unwrap_or_default())
            }
            SdkError::ConstructionFailure(_) => false,
            _ => true,
        };
        if retryable {
            Self::Unavailable(summary)
        } else {
            Self::Internal(summary)
        }
    }

    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
            }
            Self::Conflict { .. } => (StatusCode::CONFLICT, ErrorCode::Conflict),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
            ),
            Self::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests)
            }
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
            ),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for people and for programs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable kind of error.
    pub code: ErrorCode,
    /// What went wrong, for a person; never internals.
    pub message: String,
    /// The Lambda request id, the one the function's logs carry.
    pub request_id: String,
}

/// The kinds of error, one per status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    TooManyRequests,
    ServiceUnavailable,
    Internal,
}

/// 400: a query parameter, the cursor, the task id or the body is not valid.
#[derive(ToResponse)]
#[response(
    description = "The request is not valid: a query parameter, the cursor, the task id or the body"
)]
#[response(example = json!({"error": {"code": "bad_request", "message": "limit must be an integer from 1 to 1000", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct BadRequestResponse(pub ErrorBody);

/// 401: no verified identity.
#[derive(ToResponse)]
#[response(
    description = "The request carries no verified identity (a token the API's authorizer accepted): `REQUIRE_CALLER` is on, or the route lists the caller's own tasks",
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
#[response(example = json!({"error": {"code": "unauthorized", "message": "This API needs a verified caller: send a token its authorizer accepts", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct UnauthorizedResponse(pub ErrorBody);

/// 429: the caller's tasks per minute are used up.
#[derive(ToResponse)]
#[response(
    description = "The caller started as many tasks this minute as `TASKS_PER_MINUTE_PER_CALLER` allows; nothing was started",
    headers(("Retry-After" = u32, description = "Seconds to the next UTC minute, when the caller may start tasks again"))
)]
#[response(example = json!({"error": {"code": "too_many_requests", "message": "At most 60 tasks per minute per caller: retry in 12 s", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct TooManyRequestsResponse(pub ErrorBody);

/// 404: no such task.
#[derive(ToResponse)]
#[response(description = "No such task")]
#[response(example = json!({"error": {"code": "not_found", "message": "No task 0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct NotFoundResponse(pub ErrorBody);

/// 413: body over 64 KiB.
#[derive(ToResponse)]
#[response(description = "The request body is larger than 64 KiB")]
#[response(example = json!({"error": {"code": "payload_too_large", "message": "Request body is larger than 65536 bytes", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct PayloadTooLargeResponse(pub ErrorBody);

/// 409: the key's first request is still being handled, or the task has ended.
#[derive(ToResponse)]
#[response(
    description = "An Idempotency-Key whose first request is still being handled (retry after `Retry-After`), or a task that has already ended",
    headers(("Retry-After" = inline(RetryAfterSeconds), description = "Seconds to wait before retrying (an Idempotency-Key in use)"))
)]
#[response(example = json!({"error": {"code": "conflict", "message": "Task 0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c has already ended (succeeded)", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct ConflictResponse(pub ErrorBody);

/// 415: a body that is not JSON.
#[derive(ToResponse)]
#[response(description = "A body whose Content-Type is not application/json (or a +json type)")]
#[response(example = json!({"error": {"code": "unsupported_media_type", "message": "Content-Type must be application/json", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct UnsupportedMediaTypeResponse(pub ErrorBody);

/// 422: an Idempotency-Key reused with another body.
#[derive(ToResponse)]
#[response(description = "The Idempotency-Key was already used with another request body")]
#[response(example = json!({"error": {"code": "idempotency_key_reused", "message": "This Idempotency-Key was used with another request body", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct IdempotencyKeyReusedResponse(pub ErrorBody);

/// 503: a dependency is unreachable, throttled or missing a table.
#[derive(ToResponse)]
#[response(
    description = "DynamoDB or Lambda is unreachable, throttled or missing a table: retry later",
    headers(("Retry-After" = inline(RetryAfterSeconds), description = "Seconds to wait before retrying"))
)]
#[response(example = json!({"error": {"code": "service_unavailable", "message": "Service temporarily unavailable, retry later", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct UnavailableResponse(pub ErrorBody);

/// 500: anything else; says nothing of internals.
#[derive(ToResponse)]
#[response(description = "An unexpected error; the message says nothing of internals")]
#[response(example = json!({"error": {"code": "internal", "message": "Internal error", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}))]
pub struct InternalResponse(pub ErrorBody);

/// Service error codes that mean "try again later" rather than "you are wrong".
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ResourceNotFoundException",
    "TooManyRequestsException",
    "ServiceException",
    "ServiceUnavailable",
    "InternalServerError",
    "ResourceNotReadyException",
    "ResourceConflictException",
    "EC2ThrottledException",
];

/// One line on what went wrong with an SDK call: never the request, never credentials.
pub fn sdk_summary<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> String {
    match err {
        SdkError::ConstructionFailure(_) => "request could not be built".to_owned(),
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(e) if e.is_timeout() => "connection timed out".to_owned(),
        SdkError::DispatchFailure(e) if e.is_io() => "connection failed".to_owned(),
        SdkError::DispatchFailure(_) => "request could not be sent".to_owned(),
        SdkError::ResponseError(e) => {
            format!("unreadable response (HTTP {})", e.raw().status().as_u16())
        }
        SdkError::ServiceError(e) => format!(
            "{} (HTTP {})",
            e.err().code().unwrap_or("unknown error"),
            e.raw().status().as_u16()
        ),
        _ => "unknown SDK error".to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Unavailable(detail) => {
                tracing::warn!(status = status.as_u16(), detail, "dependency unavailable")
            }
            Self::Internal(detail) => {
                tracing::error!(status = status.as_u16(), detail, "internal error")
            }
            _ => {
                tracing::info!(status = status.as_u16(), code = ?code, message = %self, "request rejected")
            }
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                request_id: REQUEST_ID.try_with(Clone::clone).unwrap_or_default(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(self, Self::Unauthorized(_)) {
            // RFC 9110: a 401 names the scheme it takes.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyRequests { retry_after_s, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE
            || matches!(self, Self::Conflict { retry: true, .. })
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(format!("Invalid query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(format!("Invalid path: {}", rejection.body_text()))
    }
}

/// `Retry-After` as the API sends it: whole seconds, at least 1.
pub struct RetryAfterSeconds;

impl utoipa::PartialSchema for RetryAfterSeconds {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for RetryAfterSeconds {}
