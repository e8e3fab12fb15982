//! What the tests read off the function (each includes this file with
//! `#[path]`): the real binary's HTTP answers through the Runtime API
//! emulator, and its JSON log lines (`AWS_LAMBDA_LOG_FORMAT=JSON`, as in
//! Lambda) as events with a time, a message, the task and the invocation,
//! whether written by a process or captured from the function in the test's
//! own process ([`capture_logs`]).
// Each test that includes this file uses a part of it.
#![allow(dead_code)]

use serde_json::{Value, json};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::support::events;
use crate::support::runtime_api::{Outcome, RuntimeApi};

/// An HTTP answer of the binary, as API Gateway would pass it on.
#[derive(Clone, Debug)]
pub struct HttpAnswer {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: serde_json::Map<String, Value>,
    pub body: Value,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

/// An HTTP API (payload 2.0) request event, with extra headers.
pub fn http_event(
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> String {
    let mut event: Value =
        serde_json::from_str(&events::http_api(method, path, body)).expect("an HTTP API event");
    for (name, value) in headers {
        event["headers"][name.to_ascii_lowercase()] = json!(value);
    }
    event.to_string()
}

/// Reads the binary's answer to an HTTP event; `None` if the invocation
/// failed (its process died, or it timed out): the client got no answer.
pub fn http_answer(outcome: &Outcome) -> Option<HttpAnswer> {
    let Outcome::Response(document) = outcome else {
        return None;
    };
    let headers = document["headers"]
        .as_object()
        .map(|headers| {
            headers
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    let text = document["body"].as_str().unwrap_or_default();
    Some(HttpAnswer {
        status: document["statusCode"].as_u64().unwrap_or(0) as u16,
        headers,
        body: serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
    })
}

/// Sends an HTTP request to the binary and returns its answer (failing the
/// test if the invocation failed).
pub async fn http(
    api: &RuntimeApi,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> HttpAnswer {
    let outcome = api.invoke(http_event(method, path, body, headers)).await;
    http_answer(&outcome).unwrap_or_else(|| panic!("{method} {path}: no answer: {outcome:?}"))
}

/// One log line of the binary.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// When the test read the line, epoch milliseconds, where it keeps time
    /// (the runtime's JSON lines carry none: CloudWatch stamps them): 0 otherwise.
    pub at_ms: u64,
    pub level: String,
    pub message: String,
    pub fields: Value,
    /// The `task` span's task id, if the line was logged in one.
    pub task_id: Option<String>,
    /// The invocation's request id (lambda_runtime's span).
    pub request_id: Option<String>,
    /// The invocation's X-Ray trace header (lambda_runtime's span).
    pub trace_header: Option<String>,
}

impl LogLine {
    /// `attempt`, for the worker's lines that carry it.
    pub fn attempt(&self) -> Option<u64> {
        self.fields["attempt"].as_u64()
    }
}

/// The log lines among a process's stdout (EMF documents and anything else
/// skipped).
pub fn log_lines(stdout: &[String]) -> Vec<LogLine> {
    stdout.iter().filter_map(|line| parse_line(line)).collect()
}

/// One line of stdout as a log line, if it is one.
pub fn parse_line(line: &str) -> Option<LogLine> {
    let value: Value = serde_json::from_str(line).ok()?;
    // EMF documents have no level.
    let level = value["level"].as_str()?.to_owned();
    let spans = value["spans"].as_array().cloned().unwrap_or_default();
    let span_field = |name: &str| {
        spans
            .iter()
            .chain(std::iter::once(&value["span"]))
            .find_map(|span| span[name].as_str().map(str::to_owned))
    };
    Some(LogLine {
        at_ms: 0,
        level,
        message: value["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        fields: value["fields"].clone(),
        task_id: span_field("task_id"),
        request_id: span_field("requestId"),
        trace_header: span_field("xrayTraceId"),
    })
}

/// The lines that say `message` about `task_id`.
pub fn lines_about<'a>(lines: &'a [LogLine], task_id: &str, message: &str) -> Vec<&'a LogLine> {
    lines
        .iter()
        .filter(|line| line.task_id.as_deref() == Some(task_id) && line.message == message)
        .collect()
}

// --- the in-process function's log lines ----------------------------------------------------

/// Every log line the functions of this test binary wrote in its own process
/// (JSON with its spans, as `AWS_LAMBDA_LOG_FORMAT=JSON` has it), once
/// [`capture_logs`] is installed.
fn captured() -> &'static std::sync::Mutex<Vec<String>> {
    static LINES: std::sync::OnceLock<std::sync::Mutex<Vec<String>>> = std::sync::OnceLock::new();
    LINES.get_or_init(std::sync::Mutex::default)
}

/// The lines captured so far.
pub fn captured_lines() -> Vec<String> {
    captured().lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// One log line being written; captured whole when the formatter drops it.
struct LineWriter(Vec<u8>);

impl std::io::Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let mut lines = captured().lock().unwrap_or_else(|e| e.into_inner());
        lines.extend(text.lines().map(str::to_owned));
    }
}

/// Installs the capture of the function's `async_api` lines at INFO, once per
/// test binary.
pub fn capture_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(|| LineWriter(Vec::new()))
            .finish()
            .with(Targets::new().with_target("async_api", tracing::Level::INFO))
            .try_init();
    });
}
