//! A fault-injecting HTTP proxy between the function and the local DynamoDB,
//! on loopback, for tests/lifecycle.rs and tests/chaos.rs (each includes it
//! with `#[path]`).
//!
//! Every DynamoDB call is one `POST /` whose `X-Amz-Target` names the operation
//! and whose JSON body names the item, so a [`Rule`] can pick its victims: the
//! finish writes of one task, or any call at random. A fault can keep the call
//! from DynamoDB (throttled, a 500), let it land and answer a 500 anyway (as
//! DynamoDB may when it cannot tell whether the write applied), slow it on the
//! way in or out, or let it land and never answer (the SDK's attempt timeout
//! then cuts it, and its retry meets its own write). The proxy keeps a
//! [`Call`] of each, with what DynamoDB answered: the tests count the writes
//! that really landed, and read the X-Ray trace header the SDK forwards (its
//! recursion-detection interceptor copies the invocation's
//! `_X_AMZN_TRACE_ID`) to tell which invocation made a call.
// Each test that includes this file uses a part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// What the proxy does with one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded, and its answer passed back.
    Pass,
    /// Not forwarded: 400 `ThrottlingException` (the SDK retries it).
    Throttle,
    /// Not forwarded: 500 `InternalServerError`.
    ServerError,
    /// Forwarded (a write lands), then answered 500 `InternalServerError`.
    ServerErrorAfterWrite,
    /// Held this long, then forwarded: it lands late.
    SlowRequest(Duration),
    /// Forwarded at once, its answer held this long.
    SlowAnswer(Duration),
    /// Forwarded (a write lands); no answer ever comes back.
    LoseAnswer,
    /// Held on its way in until a call of this operation that came after it
    /// has been answered (at most 10 s), then forwarded: it lands after that
    /// call, whatever the timing of the SDK's retries.
    HoldUntilAnswered(&'static str),
}

/// A call as a [`Rule`] sees it, before it is forwarded.
pub struct Seen<'a> {
    /// `PutItem`, `UpdateItem`, `GetItem`…
    pub operation: &'a str,
    /// The JSON body.
    pub body: &'a Value,
}

/// Picks the fault of each call.
pub type Rule = Box<dyn Fn(&Seen<'_>) -> Fault + Send + Sync>;

/// One call through the proxy.
#[derive(Clone, Debug)]
pub struct Call {
    /// When it arrived, epoch milliseconds.
    pub at_ms: u64,
    pub operation: String,
    /// The task id (or `idempotency-key#…` record id) of its `Key` or `Item`.
    pub item_id: Option<String>,
    /// Its `UpdateExpression`, if any.
    pub update: Option<String>,
    /// Its `ExpressionAttributeValues` (`Null` if none).
    pub values: Value,
    /// A `PutItem`'s `Item` (`Null` for other calls).
    pub item: Value,
    /// The `X-Amzn-Trace-Id` it carried.
    pub trace_header: Option<String>,
    pub fault: Fault,
    /// When it was passed on to DynamoDB (after any hold), epoch milliseconds.
    pub forwarded_ms: Option<u64>,
    /// DynamoDB's status, when the call was forwarded and answered.
    pub upstream_status: Option<u16>,
    /// When DynamoDB answered it, epoch milliseconds: a write that landed
    /// did so by then.
    pub upstream_ms: Option<u64>,
}

impl Call {
    /// Whether DynamoDB applied it (a write that landed, whatever the client saw).
    pub fn landed(&self) -> bool {
        self.upstream_status == Some(200)
    }
}

struct State {
    upstream: String,
    rule: Rule,
    calls: Mutex<Vec<Call>>,
    /// Exchanges with DynamoDB under way.
    in_flight: std::sync::atomic::AtomicUsize,
}

/// The running proxy; it stops when dropped.
pub struct FaultProxy {
    url: String,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, rule: Rule) -> Self {
        let state = Arc::new(State {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            rule,
            calls: Mutex::new(Vec::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let router = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, state, server }
    }

    /// `http://127.0.0.1:port`, for `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every call so far, in the order they arrived.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state.calls).clone()
    }

    /// Waits (at most `patience`) until no call is on its way to DynamoDB:
    /// a held one, whose caller may be gone, lands before the records are read.
    pub async fn settle(&self, patience: Duration) {
        let deadline = std::time::Instant::now() + patience;
        while self
            .state
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn item_id(body: &Value) -> Option<String> {
    ["Key", "Item"]
        .iter()
        .find_map(|part| body[part]["task_id"]["S"].as_str())
        .map(str::to_owned)
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let operation = header("x-amz-target")
        .and_then(|target| target.rsplit('.').next().map(str::to_owned))
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = (state.rule)(&Seen {
        operation: &operation,
        body: &json,
    });
    let index = {
        let mut calls = lock(&state.calls);
        calls.push(Call {
            at_ms: epoch_millis(),
            operation: operation.clone(),
            item_id: item_id(&json),
            update: json["UpdateExpression"].as_str().map(str::to_owned),
            values: json["ExpressionAttributeValues"].clone(),
            item: json["Item"].clone(),
            trace_header: header("x-amzn-trace-id"),
            fault,
            forwarded_ms: None,
            upstream_status: None,
            upstream_ms: None,
        });
        calls.len() - 1
    };
    match fault {
        Fault::Throttle => {
            return dynamodb_error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            );
        }
        Fault::ServerError => {
            return dynamodb_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Internal server error",
            );
        }
        _ => {}
    }
    // A task of its own: a request on its way goes on, and its landing is
    // recorded, even when its caller hangs up (its process was killed, or its
    // attempt timed out) meanwhile.
    let hold = match fault {
        Fault::SlowRequest(delay) => delay,
        _ => Duration::ZERO,
    };
    let (path, headers) = (parts.uri.to_string(), parts.headers.clone());
    let exchange = state.clone();
    state
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let forwarded = tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        if let Fault::HoldUntilAnswered(operation) = fault {
            let answered = || {
                lock(&exchange.calls)[index + 1..]
                    .iter()
                    .any(|call| call.operation == operation && call.upstream_ms.is_some())
            };
            let give_up = epoch_millis() + 10_000;
            while !answered() && epoch_millis() < give_up {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        lock(&exchange.calls)[index].forwarded_ms = Some(epoch_millis());
        let forwarded = forward(&exchange.upstream, &path, &headers, &body).await;
        let mut calls = lock(&exchange.calls);
        calls[index].upstream_status = forwarded.as_ref().ok().map(|(status, ..)| *status);
        calls[index].upstream_ms = Some(epoch_millis());
        drop(calls);
        exchange
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        forwarded
    })
    .await
    .unwrap_or_else(|_| Err(std::io::Error::other("the exchange was cancelled")));
    match fault {
        Fault::ServerErrorAfterWrite => {
            return dynamodb_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Internal server error",
            );
        }
        Fault::LoseAnswer => {
            // The SDK's attempt timeout ends the wait long before this.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Fault::SlowAnswer(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    match forwarded {
        Ok((status, headers, body)) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().append(name, value);
                }
            }
            response
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// DynamoDB's error answer (awsJson1_0).
fn dynamodb_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        json!({
            "__type": format!("com.amazonaws.dynamodb.v20120810#{error_type}"),
            "message": message,
        })
        .to_string(),
    )
        .into_response()
}

/// One HTTP/1.1 exchange with `upstream` on a connection of its own
/// (`Connection: close`, read to the end): the status, the headers to pass
/// back, and the body.
async fn forward(
    upstream: &str,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> std::io::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(upstream).await?;
    let mut head = format!("POST {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        let name = name.as_str();
        if matches!(name, "connection" | "content-length" | "transfer-encoding") {
            continue;
        }
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(invalid)?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut rest = answer[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    let mut passed = Vec::new();
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        match name.as_str() {
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" | "content-length" | "keep-alive" => {}
            _ => passed.push((name, value)),
        }
    }
    if chunked {
        rest = dechunk(&rest).ok_or_else(invalid)?;
    }
    Ok((status, passed, rest))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}
