//! `local_lambda`: Lambda's `Invoke` API on this machine, with Lambda's
//! asynchronous semantics, in front of a local function runner that serves
//! only synchronous invocations: `cargo lambda watch` (`make dev`) or `sam local
//! start-lambda` (`make sam-api`). Both answer an `Event` invocation only once
//! the function is done, so a function that enqueues work for itself (`POST
//! /async`) would wait for that work, where in Lambda it answers at once.
//!
//! Point the function's `AWS_ENDPOINT_URL_LAMBDA` here. Then:
//! - `POST /2015-03-31/functions/{name}/invocations` with
//!   `X-Amz-Invocation-Type: Event` answers 202 at once, with no body, as
//!   Lambda does; the event is queued and delivered in the background to the
//!   target as a synchronous (`RequestResponse`) invocation. A delivery fails
//!   when the target reports a function error (`X-Amz-Function-Error`, or
//!   watch's 5xx with Lambda's error body), cannot be reached, or takes longer
//!   than the function timeout plus `--grace-ms`. A failed event is delivered
//!   again with the same payload (and the same request id, as the
//!   `lambda-runtime-aws-request-id` header, which watch and SAM do not pass
//!   on: the function sees an id of theirs) after Lambda's delays, at most
//!   twice, and never past the maximum event age; then the function gets the
//!   on-failure destination's record in an SQS event, as an event source
//!   mapping with `ReportBatchItemFailures` delivers it.
//!   `tests/support/async_invoke.rs` holds that logic, shared with the tests,
//!   and says how time scales with `--function-timeout-ms`.
//! - `RequestResponse` (the default) is passed to the target and its answer
//!   back, a function error in Lambda's form (200 with `X-Amz-Function-Error`);
//!   `DryRun` answers 204.
//!
//! Usage (every flag optional; `--help` lists them):
//!
//! ```text
//! cargo run --example local_lambda -- --target http://127.0.0.1:9000 --port 9001
//! ```
//!
//! The first line on stdout is the port it listens on (useful with `--port 0`,
//! where the OS picks one); then one line per delivery, retry and destination
//! step on stderr. Ctrl-C or SIGTERM stops it; events not yet delivered are
//! lost, and said so.

#[allow(dead_code)] // The tests' emulator uses parts this program does not.
#[path = "../tests/support/async_invoke.rs"]
mod async_invoke;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_invoke::{Account, Answer, AsyncInvoker, BoxFuture, Invocation, Policy, Target};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "\
local_lambda: Lambda's Invoke API with asynchronous (Event) semantics, in front of a
synchronous invoke endpoint (cargo lambda watch, sam local start-lambda).

Options (each also read from the environment variable named in brackets):
  --address IP               where to listen [LOCAL_LAMBDA_ADDRESS] (default 127.0.0.1)
  --port N                   where to listen, 0 = any free port [LOCAL_LAMBDA_PORT] (default 0)
  --target URL               the synchronous invoke endpoint [LOCAL_LAMBDA_TARGET]
                             (default http://127.0.0.1:9000, cargo lambda watch)
  --target-function NAME     invoke NAME at the target, whatever name the caller used
  --function-name NAME       accept invocations of NAME only (others: 404, as Lambda)
  --function-timeout-ms N    the function's timeout; Lambda's delays scale with it
                             [LOCAL_LAMBDA_FUNCTION_TIMEOUT_MS] (default 90000: retries
                             after 60 s and 120 s, events expire after 3600 s)
  --max-retries N            0 to 2 (default 2)
  --max-event-age-ms N       override the scaled maximum event age
  --max-parallel N           deliveries in flight at once (default 4)
  --max-receive-count N      receives of a destination message before it is given up
                             (default 10, the failure queue's maxReceiveCount)
  --grace-ms N               on top of the timeout, for a cold start or a rebuild of the
                             target (default 10000)
  --region R, --account-id A, --queue-name Q   for the ARNs of the records
";

/// What the command line and environment ask for.
struct Options {
    address: String,
    port: u16,
    target: Endpoint,
    target_function: Option<String>,
    function_name: Option<String>,
    policy: Policy,
    grace: Duration,
    account: Account,
}

fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut address = env("LOCAL_LAMBDA_ADDRESS").unwrap_or_else(|| "127.0.0.1".to_owned());
    let mut port = env("LOCAL_LAMBDA_PORT").unwrap_or_else(|| "0".to_owned());
    let mut target =
        env("LOCAL_LAMBDA_TARGET").unwrap_or_else(|| "http://127.0.0.1:9000".to_owned());
    let mut timeout_ms =
        env("LOCAL_LAMBDA_FUNCTION_TIMEOUT_MS").unwrap_or_else(|| "90000".to_owned());
    let mut values: std::collections::HashMap<String, String> = Default::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Err(USAGE.to_owned());
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let known = [
            "--address",
            "--port",
            "--target",
            "--target-function",
            "--function-name",
            "--function-timeout-ms",
            "--max-retries",
            "--max-event-age-ms",
            "--max-parallel",
            "--max-receive-count",
            "--grace-ms",
            "--region",
            "--account-id",
            "--queue-name",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown argument {arg:?}\n\n{USAGE}"));
        }
        let value = match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        match flag.as_str() {
            "--address" => address = value,
            "--port" => port = value,
            "--target" => target = value,
            "--function-timeout-ms" => timeout_ms = value,
            _ => {
                values.insert(flag, value);
            }
        }
    }
    let number = |flag: &str, text: &str| -> Result<u64, String> {
        text.parse()
            .map_err(|_| format!("{flag} must be a whole number, not {text:?}"))
    };
    let timeout_ms = number("--function-timeout-ms", &timeout_ms)?;
    if timeout_ms == 0 {
        return Err("--function-timeout-ms must be at least 1".to_owned());
    }
    let mut policy = Policy::scaled(Duration::from_millis(timeout_ms));
    policy.max_parallel = 4;
    if let Some(retries) = values.get("--max-retries") {
        let retries = number("--max-retries", retries)?;
        if retries > 2 {
            return Err("--max-retries is 0, 1 or 2, as in Lambda".to_owned());
        }
        policy.retry_delays.truncate(retries as usize);
    }
    if let Some(age) = values.get("--max-event-age-ms") {
        policy.max_event_age = Duration::from_millis(number("--max-event-age-ms", age)?);
    }
    if let Some(parallel) = values.get("--max-parallel") {
        policy.max_parallel = number("--max-parallel", parallel)?.max(1) as usize;
    }
    if let Some(count) = values.get("--max-receive-count") {
        policy.max_receive_count = number("--max-receive-count", count)?.max(1) as u32;
    }
    let grace = match values.get("--grace-ms") {
        Some(grace) => Duration::from_millis(number("--grace-ms", grace)?),
        None => Duration::from_secs(10),
    };
    let mut account = Account::default();
    if let Some(region) = env("AWS_REGION") {
        account.region = region;
    }
    for (flag, field) in [
        ("--region", &mut account.region),
        ("--account-id", &mut account.account_id),
        ("--queue-name", &mut account.queue_name),
    ] {
        if let Some(value) = values.get(flag) {
            *field = value.clone();
        }
    }
    Ok(Options {
        address,
        port: number("--port", &port)?
            .try_into()
            .map_err(|_| "--port is at most 65535".to_owned())?,
        target: Endpoint::parse(&target)?,
        target_function: values.get("--target-function").cloned(),
        function_name: values.get("--function-name").cloned(),
        policy,
        grace,
        account,
    })
}

/// An `http://host:port` endpoint (the targets are local: no TLS).
#[derive(Clone, Debug)]
struct Endpoint {
    host: String,
    port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("the target must be an http:// URL, not {url:?}"))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(format!(
                "the target is a bare http://host:port, not {url:?}"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .map_err(|_| format!("bad port in the target {url:?}"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("no host in the target {url:?}"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// One HTTP/1.1 POST on a fresh connection.
    async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: {}:{}\r\ncontent-length: {}\r\nconnection: close\r\n",
            self.host,
            self.port,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let read = stream.read(&mut chunk).await?;
            buffer.extend_from_slice(&chunk[..read]);
            if let Some(parsed) = parse_response(&buffer, read == 0) {
                return parsed.map_err(std::io::Error::other);
            }
        }
    }
}

/// An HTTP response, read whole.
#[derive(Debug, PartialEq)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The response in `buffer` once it is complete: `None` while more is needed.
/// `eof` says the peer closed the connection, which ends a body of no stated
/// length.
fn parse_response(buffer: &[u8], eof: bool) -> Option<Result<HttpResponse, String>> {
    let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return eof.then(|| Err("the connection closed before a whole response".to_owned()));
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    let Some(status) = status else {
        return Some(Err("not an HTTP response".to_owned()));
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &buffer[head_end + 4..];
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        match dechunk(rest) {
            Some(body) => body,
            None if eof => return Some(Err("the chunked body was cut short".to_owned())),
            None => return None,
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < length {
            return eof.then(|| Err("the body was cut short".to_owned()));
        }
        rest[..length].to_vec()
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Ok(HttpResponse {
        status,
        headers,
        body,
    }))
}

/// A chunked body, once its last chunk has arrived.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if data.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn invoke_path(function_name: &str) -> String {
    format!("/2015-03-31/functions/{function_name}/invocations")
}

/// Whether a body is Lambda's `{"errorType": …, "errorMessage": …}`.
fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v["errorType"].is_string() || v["errorMessage"].is_string())
}

/// How Lambda would report what the target answered.
fn answer_of(response: &HttpResponse) -> Answer {
    if response.status == 200 {
        return match response.header("x-amz-function-error") {
            Some(function_error) => Answer::Error {
                function_error: function_error.to_owned(),
                payload: response.body.clone(),
            },
            None => Answer::Response(response.body.clone()),
        };
    }
    // cargo lambda watch answers a function error with a 500 and the error body.
    if response.status >= 500 && is_error_body(&response.body) {
        return Answer::Error {
            function_error: "Unhandled".to_owned(),
            payload: response.body.clone(),
        };
    }
    let text = String::from_utf8_lossy(&response.body);
    let excerpt: String = text.chars().take(300).collect();
    Answer::unhandled(
        "LocalLambda.TargetError",
        &format!("the target answered {}: {excerpt}", response.status),
    )
}

/// Runs each delivery as a synchronous `Invoke` of the target.
struct HttpTarget {
    endpoint: Endpoint,
    target_function: Option<String>,
    grace: Duration,
}

impl Target for HttpTarget {
    fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            let name = self
                .target_function
                .as_deref()
                .unwrap_or(invocation.function_name);
            let path = invoke_path(name);
            let headers = [
                ("x-amz-invocation-type", "RequestResponse"),
                ("content-type", "application/json"),
                ("lambda-runtime-aws-request-id", invocation.request_id),
            ];
            let request = self.endpoint.post(&path, &headers, invocation.payload);
            match tokio::time::timeout(invocation.timeout + self.grace, request).await {
                Err(_) => Answer::timed_out(invocation.request_id, invocation.timeout),
                Ok(Err(err)) => Answer::unhandled(
                    "LocalLambda.TargetUnreachable",
                    &format!("{}: {err}", self.endpoint),
                ),
                Ok(Ok(response)) => answer_of(&response),
            }
        })
    }
}

struct App {
    invoker: AsyncInvoker,
    target: Arc<HttpTarget>,
    function_name: Option<String>,
    account: Account,
}

/// One line on stderr.
fn log(line: String) {
    eprintln!("local_lambda: {line}");
}

/// Lambda's error answer: `x-amzn-ErrorType` and `{"Type", "message"}`.
fn lambda_error(status: StatusCode, error_type: &str, kind: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-errortype", error_type.to_owned())],
        axum::Json(json!({"Type": kind, "message": message})),
    )
        .into_response()
}

/// `POST /2015-03-31/functions/{name}/invocations`: Lambda's `Invoke`.
async fn invoke(
    State(app): State<Arc<App>>,
    Path(function_name): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    if app
        .function_name
        .as_ref()
        .is_some_and(|only| *only != function_name)
    {
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "User",
            &format!(
                "Function not found: {}",
                app.account
                    .function_arn(&function_name)
                    .trim_end_matches(":$LATEST")
            ),
        );
    }
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    if !payload.is_empty() && serde_json::from_slice::<serde_json::Value>(&payload).is_err() {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "User",
            "Could not parse request body into json",
        );
    }
    match invocation_type {
        "Event" => {
            let (request_id, _job) = app.invoker.submit(&function_name, payload.to_vec());
            (StatusCode::ACCEPTED, [("x-amzn-requestid", request_id)]).into_response()
        }
        "RequestResponse" => proxy(&app, &function_name, &headers, &payload).await,
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        other => lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "User",
            &format!("Unsupported invocation type {other}"),
        ),
    }
}

/// A synchronous invocation: the target's answer, in Lambda's form.
async fn proxy(app: &App, function_name: &str, headers: &HeaderMap, payload: &[u8]) -> Response {
    let name = app
        .target
        .target_function
        .as_deref()
        .unwrap_or(function_name);
    let mut forwarded = vec![
        ("x-amz-invocation-type", "RequestResponse"),
        ("content-type", "application/json"),
    ];
    for name in ["x-amz-client-context", "x-amz-log-type", "x-amzn-trace-id"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            forwarded.push((name, value));
        }
    }
    let response = match app
        .target
        .endpoint
        .post(&invoke_path(name), &forwarded, payload)
        .await
    {
        Ok(response) => response,
        Err(err) => {
            log(format!(
                "RequestResponse {function_name}: target unreachable: {err}"
            ));
            return lambda_error(
                StatusCode::BAD_GATEWAY,
                "ServiceException",
                "Service",
                &format!("the target {} is unreachable: {err}", app.target.endpoint),
            );
        }
    };
    let request_id = response
        .header("x-amzn-requestid")
        .or(response.header("lambda-runtime-aws-request-id"))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let mut out = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-amzn-requestid", &request_id);
    set("content-type", "application/json");
    let (status, body) = match answer_of(&response) {
        Answer::Response(body) => {
            set("x-amz-executed-version", "$LATEST");
            (StatusCode::OK, body)
        }
        Answer::Error {
            function_error,
            payload,
        } if response.status == 200 || is_error_body(&response.body) => {
            set("x-amz-executed-version", "$LATEST");
            set("x-amz-function-error", &function_error);
            (StatusCode::OK, payload)
        }
        // Anything else from the target (its own 4xx, a 5xx of no function) goes through as is.
        Answer::Error { .. } => (
            StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY),
            response.body.clone(),
        ),
    };
    if let Some(logs) = response.header("x-amz-log-result") {
        set("x-amz-log-result", logs);
    }
    (status, out, body).into_response()
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/2015-03-31/functions/{function_name}/invocations",
            post(invoke),
        )
        // Lambda's own limits apply (6 MB), not axum's 2 MB default.
        .layer(DefaultBodyLimit::max(7 * 1024 * 1024))
        .with_state(app)
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}

#[tokio::main]
async fn main() {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(if message == USAGE { 0 } else { 2 });
        }
    };
    let address: SocketAddr = match format!("{}:{}", options.address, options.port).parse() {
        Ok(address) => address,
        Err(_) => {
            eprintln!("--address must be an IP address, not {:?}", options.address);
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("local_lambda: cannot listen on {address}: {err}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().expect("the listener's address");
    println!("{}", bound.port());
    // The caller reads the port before anything else.
    let _ = std::io::stdout().flush();

    let target = Arc::new(HttpTarget {
        endpoint: options.target.clone(),
        target_function: options.target_function.clone(),
        grace: options.grace,
    });
    let policy = options.policy.clone();
    let invoker = AsyncInvoker::new(options.policy, options.account.clone(), target.clone(), log);
    log(format!(
        "Invoke API on http://{bound}, delivering to {} (function timeout {:.1}s: retries after {}; events expire after {:.0}s; {} in parallel)",
        options.target,
        policy.function_timeout.as_secs_f64(),
        if policy.retry_delays.is_empty() {
            "none".to_owned()
        } else {
            policy
                .retry_delays
                .iter()
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" and ")
        },
        policy.max_event_age.as_secs_f64(),
        policy.max_parallel,
    ));
    let app = Arc::new(App {
        invoker: invoker.clone(),
        target,
        function_name: options.function_name,
        account: options.account,
    });
    let server = axum::serve(listener, router(app));
    tokio::select! {
        result = server => {
            if let Err(err) = result {
                log(format!("server error: {err}"));
            }
        }
        () = shutdown_signal() => {}
    }
    let abandoned = invoker.shutdown();
    if abandoned.is_empty() {
        log("stopped".to_owned());
    } else {
        let ids: Vec<&str> = abandoned.iter().map(|r| r.request_id.as_str()).collect();
        log(format!(
            "stopped; {} event(s) not delivered to the end: {}",
            ids.len(),
            ids.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::async_invoke::*;
    use super::*;
    use std::sync::Mutex;

    fn account() -> Account {
        Account {
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
            queue_name: "task-failures".to_owned(),
        }
    }

    fn failure(message: &str) -> Answer {
        Answer::unhandled("TaskFailed", message)
    }

    #[test]
    fn the_invocation_record_of_exhausted_retries_has_the_form_aws_documents() {
        let payload = br#"{"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 0}"#;
        let attempts = vec![failure("first"), failure("second"), failure("third")];
        let record = invocation_record(
            &account(),
            "async-api",
            "e4b46cbf-b738-4f4b-8880-a18cdf61200e",
            Condition::RetriesExhausted,
            payload,
            &attempts,
            1_573_755_365_568,
        );
        assert_eq!(
            record,
            json!({
                "version": "1.0",
                "timestamp": "2019-11-14T18:16:05.568Z",
                "requestContext": {
                    "requestId": "e4b46cbf-b738-4f4b-8880-a18cdf61200e",
                    "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:async-api:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": 3
                },
                "requestPayload": {"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 0},
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled"
                },
                "responsePayload": {"errorType": "TaskFailed", "errorMessage": "third"}
            })
        );
    }

    #[test]
    fn an_event_that_expired_before_any_attempt_has_no_response_in_its_record() {
        let record = invocation_record(
            &account(),
            "async-api",
            "id",
            Condition::EventAgeExceeded,
            b"{}",
            &[],
            0,
        );
        assert_eq!(
            record,
            json!({
                "version": "1.0",
                "timestamp": "1970-01-01T00:00:00.000Z",
                "requestContext": {
                    "requestId": "id",
                    "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:async-api:$LATEST",
                    "condition": "EventAgeExceeded",
                    "approximateInvokeCount": 0
                },
                "requestPayload": {}
            })
        );
    }

    #[test]
    fn the_sqs_event_carries_the_record_as_its_body_with_the_attributes_sqs_sets() {
        let message = QueueMessage {
            message_id: "059f36b4-87a3-44ab-83d2-661975830a7d".to_owned(),
            body: "test".to_owned(),
            sent_timestamp_ms: 1_545_082_649_183,
            sender_id: "AROAEXAMPLEEXECROLE01:async-api".to_owned(),
        };
        let event = sqs_event(
            &account(),
            &message,
            2,
            1_545_082_649_185,
            "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        );
        assert_eq!(
            event,
            json!({"Records": [{
                "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": "test",
                "attributes": {
                    "ApproximateReceiveCount": "2",
                    "SentTimestamp": "1545082649183",
                    "SenderId": "AROAEXAMPLEEXECROLE01:async-api",
                    "ApproximateFirstReceiveTimestamp": "1545082649185"
                },
                "messageAttributes": {},
                // AWS's sample SQS event: the MD5 of "test".
                "md5OfBody": "098f6bcd4621d373cade4e832627b4f6",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:task-failures",
                "awsRegion": "us-east-1"
            }]})
        );
    }

    #[test]
    fn md5_matches_the_rfc_1321_test_suite() {
        for (input, digest) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(md5_hex(input.as_bytes()), digest, "{input:?}");
        }
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(iso8601_millis(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(
            iso8601_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn a_partial_batch_response_fails_what_aws_says_it_fails() {
        let ids = ["m1", "m2"];
        let failed = |body: &str| failed_items(body.as_bytes(), &ids);
        // Complete successes.
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
        ] {
            assert_eq!(failed(body), Vec::<&str>::new(), "{body:?}");
        }
        assert_eq!(
            failed(r#"{"batchItemFailures": [{"itemIdentifier": "m2"}]}"#),
            vec!["m2"]
        );
        // Complete failures.
        for body in [
            "not json",
            r#""ok""#,
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"itemId": "m1"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "m3"}]}"#,
        ] {
            assert_eq!(failed(body), vec!["m1", "m2"], "{body:?}");
        }
    }

    #[test]
    fn lambdas_delays_scale_with_the_function_timeout() {
        let lambda = Policy::scaled(Duration::from_secs(90));
        assert_eq!(
            lambda.retry_delays,
            [Duration::from_secs(60), Duration::from_secs(120)]
        );
        assert_eq!(lambda.max_event_age, Duration::from_secs(3600));
        let test = Policy::scaled(Duration::from_secs(3));
        assert_eq!(
            test.retry_delays,
            [Duration::from_secs(2), Duration::from_secs(4)]
        );
        assert_eq!(test.max_event_age, Duration::from_secs(120));
        assert_eq!(test.visibility_timeout, Duration::from_secs(18));
    }

    #[test]
    fn responses_are_read_by_length_chunks_or_close() {
        let sized =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Amz-Function-Error: Unhandled\r\n\r\n{}";
        let response = parse_response(sized, false)
            .expect("complete")
            .expect("valid");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(response.body, b"{}");
        assert!(parse_response(&sized[..sized.len() - 1], false).is_none());
        let chunked = b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, false)
                .expect("complete")
                .expect("valid")
                .body,
            b"abcde"
        );
        let until_close = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        assert!(parse_response(until_close, false).is_none());
        assert_eq!(
            parse_response(until_close, true)
                .expect("complete")
                .expect("valid")
                .body,
            b"all of it"
        );
    }

    #[test]
    fn a_function_error_from_watch_or_sam_is_a_failed_delivery() {
        let response = |status, headers: &[(&str, &str)], body: &str| HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        };
        let error = r#"{"errorType":"TaskFailed","errorMessage":"no"}"#;
        // sam local start-lambda, as Lambda.
        assert_eq!(
            answer_of(&response(
                200,
                &[("x-amz-function-error", "Unhandled")],
                error
            )),
            Answer::Error {
                function_error: "Unhandled".to_owned(),
                payload: error.as_bytes().to_vec()
            }
        );
        // cargo lambda watch.
        assert_eq!(
            answer_of(&response(500, &[], error)),
            Answer::Error {
                function_error: "Unhandled".to_owned(),
                payload: error.as_bytes().to_vec()
            }
        );
        assert!(answer_of(&response(404, &[], "missing")).is_error());
        assert_eq!(
            answer_of(&response(200, &[], "null")),
            Answer::Response(b"null".to_vec())
        );
    }

    /// A target that answers from a script and records what it was given.
    struct Scripted {
        answers: Mutex<Vec<Answer>>,
        seen: Mutex<Vec<(String, Delivery, Vec<u8>)>>,
    }

    impl Target for Scripted {
        fn invoke<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Answer> {
            self.seen.lock().unwrap().push((
                invocation.request_id.to_owned(),
                invocation.delivery,
                invocation.payload.to_vec(),
            ));
            let answer = self.answers.lock().unwrap().remove(0);
            Box::pin(async move { answer })
        }
    }

    #[tokio::test]
    async fn a_failing_event_is_tried_three_times_with_one_request_id_then_reaches_the_function_through_sqs()
     {
        let target = Arc::new(Scripted {
            answers: Mutex::new(vec![
                failure("1"),
                failure("2"),
                failure("3"),
                Answer::unhandled("UnrecognizedEvent", "not yet"),
                Answer::Response(br#"{"batchItemFailures": []}"#.to_vec()),
            ]),
            seen: Mutex::new(Vec::new()),
        });
        let invoker = AsyncInvoker::new(
            Policy::scaled(Duration::from_millis(90)),
            account(),
            target.clone(),
            |_| {},
        );
        let (request_id, job) = invoker.submit("async-api", br#"{"task": 1}"#.to_vec());
        let report = job.await.expect("the job ends");

        let seen = target.seen.lock().unwrap().clone();
        let deliveries: Vec<Delivery> = seen.iter().map(|s| s.1).collect();
        assert_eq!(
            deliveries,
            [
                Delivery::Event { attempt: 1 },
                Delivery::Event { attempt: 2 },
                Delivery::Event { attempt: 3 },
                Delivery::Sqs { receive: 1 },
                Delivery::Sqs { receive: 2 },
            ]
        );
        assert!(
            seen[..3]
                .iter()
                .all(|s| s.0 == request_id && s.2 == br#"{"task": 1}"#)
        );
        assert_eq!(report.attempts.len(), 3);
        let Some(EventEnd::Destination(destination)) = report.end else {
            panic!("expected the destination: {report:?}");
        };
        assert_eq!(destination.condition, Condition::RetriesExhausted);
        assert_eq!(destination.state, MessageState::Deleted);
        assert_eq!(destination.receives.len(), 2);
        for (receive, (count, delivered)) in destination
            .receives
            .iter()
            .zip([("1", &seen[3]), ("2", &seen[4])])
        {
            let event: serde_json::Value = serde_json::from_slice(&delivered.2).expect("JSON");
            assert_eq!(event, receive.event);
            let record = &event["Records"][0];
            assert_eq!(record["attributes"]["ApproximateReceiveCount"], count);
            assert_eq!(record["messageId"], destination.message_id.as_str());
            let body: serde_json::Value =
                serde_json::from_str(record["body"].as_str().expect("body")).expect("the record");
            assert_eq!(body, destination.record);
            assert_eq!(body["requestContext"]["requestId"], request_id.as_str());
            assert_eq!(body["responsePayload"]["errorMessage"], "3");
        }
    }

    #[tokio::test]
    async fn an_event_that_succeeds_on_its_retry_ends_there() {
        let target = Arc::new(Scripted {
            answers: Mutex::new(vec![failure("1"), Answer::Response(b"{}".to_vec())]),
            seen: Mutex::new(Vec::new()),
        });
        let invoker = AsyncInvoker::new(
            Policy::scaled(Duration::from_millis(90)),
            account(),
            target.clone(),
            |_| {},
        );
        let (_, job) = invoker.submit("async-api", b"{}".to_vec());
        let report = job.await.expect("the job ends");
        assert_eq!(report.attempts.len(), 2);
        assert!(matches!(report.end, Some(EventEnd::Succeeded)));
    }

    #[tokio::test]
    async fn an_event_whose_retry_would_come_after_its_maximum_age_is_given_up_as_event_age_exceeded()
     {
        let target = Arc::new(Scripted {
            answers: Mutex::new(vec![failure("1"), Answer::Response(b"null".to_vec())]),
            seen: Mutex::new(Vec::new()),
        });
        let mut policy = Policy::scaled(Duration::from_millis(90));
        policy.max_event_age = Duration::from_millis(30);
        let invoker = AsyncInvoker::new(policy, account(), target.clone(), |_| {});
        let (_, job) = invoker.submit("async-api", b"{}".to_vec());
        let report = job.await.expect("the job ends");
        let Some(EventEnd::Destination(destination)) = report.end else {
            panic!("expected the destination: {report:?}");
        };
        assert_eq!(destination.condition, Condition::EventAgeExceeded);
        assert_eq!(
            destination.record["requestContext"]["approximateInvokeCount"],
            1
        );
        assert_eq!(destination.state, MessageState::Deleted);
    }
}
