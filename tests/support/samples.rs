//! The sample events of `events/` and what the function must answer to each, one table for
//! every test that replays them (tests/events.rs through the Runtime API emulator,
//! tests/sam_local.rs through `sam local invoke`), with the response document each source gets.

use serde_json::{Value, json};

/// How the event's source shapes the response document Lambda returns.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// API Gateway HTTP API or Function URL (payload format 2.0).
    PayloadV2,
    /// API Gateway REST API (payload format 1.0): headers in `multiValueHeaders`.
    RestApi,
    /// Application Load Balancer: both header forms and a status description.
    Alb,
    /// The function's own task event: the document is the function's JSON.
    Task,
    /// The failure queue's SQS event: the document is the function's JSON.
    Sqs,
}

/// What the binary must answer to one sample event.
#[derive(Clone, Copy, Debug)]
pub enum Expected {
    /// 200 and the first page of two users of the seeded table.
    UsersPage,
    /// 202 with a new task, whose self-invoked event then runs it to `succeeded`.
    TaskStarted { delay_ms: u64 },
    /// 200 with exactly this JSON body.
    Ok { body: &'static str },
    /// 404 with the contract's error body.
    NotFound { message: &'static str },
    /// A function error, and nothing written.
    FunctionError {
        error_type: &'static str,
        message: &'static str,
    },
    /// A non-HTTP event's answer: exactly this JSON document.
    Answer { document: &'static str },
}

/// Every file in `events/` and its expected outcome: tests/events.rs replays each through the
/// Runtime API emulator, tests/sam_local.rs through `sam local invoke`; a file with no entry
/// fails both.
pub const EXPECTATIONS: &[(&str, Source, Expected)] = &[
    ("alb-get-users.json", Source::Alb, Expected::UsersPage),
    (
        "function-url-get-users.json",
        Source::PayloadV2,
        Expected::UsersPage,
    ),
    (
        "http-delete-task.json",
        Source::PayloadV2,
        Expected::NotFound {
            message: "No task 0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c",
        },
    ),
    (
        "http-get-async.json",
        Source::PayloadV2,
        Expected::TaskStarted { delay_ms: 1000 },
    ),
    (
        "http-get-task.json",
        Source::PayloadV2,
        Expected::NotFound {
            message: "No task 0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c",
        },
    ),
    (
        "http-get-unknown.json",
        Source::PayloadV2,
        Expected::NotFound {
            message: "No route for GET /nope",
        },
    ),
    (
        "http-get-users.json",
        Source::PayloadV2,
        Expected::UsersPage,
    ),
    (
        "http-post-async.json",
        Source::PayloadV2,
        Expected::TaskStarted { delay_ms: 50 },
    ),
    ("rest-get-users.json", Source::RestApi, Expected::UsersPage),
    // Each identity shape of the Callers table, listing its own tasks: the
    // samples start only anonymous tasks, so each list is empty (and no
    // event is refused 401 as an anonymous caller's would be).
    ("http-iam-list-tasks.json", Source::PayloadV2, EMPTY_LIST),
    ("http-jwt-list-tasks.json", Source::PayloadV2, EMPTY_LIST),
    (
        "http-lambda-authorizer-list-tasks.json",
        Source::PayloadV2,
        EMPTY_LIST,
    ),
    ("rest-cognito-list-tasks.json", Source::RestApi, EMPTY_LIST),
    (
        "rest-lambda-authorizer-list-tasks.json",
        Source::RestApi,
        EMPTY_LIST,
    ),
    // Lambda's record of the sample task's event: no such task is recorded, so
    // the record is acknowledged (and writes nothing).
    (
        "sqs-failure-record.json",
        Source::Sqs,
        Expected::Answer {
            document: r#"{"batchItemFailures":[]}"#,
        },
    ),
    (
        "task.json",
        Source::Task,
        Expected::FunctionError {
            error_type: "UnknownTask",
            message: "no task 5a1f0c3e-9d2b-4e6f-8a7c-1b3d5e7f9a2c is recorded",
        },
    ),
];

/// `GET /tasks` of a caller with no task.
pub const EMPTY_LIST: Expected = Expected::Ok {
    body: r#"{"tasks":[],"next_cursor":null}"#,
};

/// The headers these tests pin down; others (CORS's `vary`, say) are left to
/// the tests of the features that add them.
pub const CHECKED_HEADERS: &[&str] = &["content-length", "content-type", "location"];

/// The exact document lambda_http returns for `source`, with `body` parsed.
pub fn expected_document(
    source: Source,
    status: u16,
    headers: &[(&str, String)],
    body: Value,
) -> Value {
    let single: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    let multi: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!([value])))
        .collect();
    match source {
        Source::PayloadV2 => json!({
            "statusCode": status, "headers": single, "multiValueHeaders": {}, "cookies": [],
            "body": body, "isBase64Encoded": false,
        }),
        Source::RestApi => json!({
            "statusCode": status, "headers": {}, "multiValueHeaders": multi,
            "body": body, "isBase64Encoded": false,
        }),
        Source::Alb => {
            let reason = axum::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or_default();
            json!({
                "statusCode": status, "statusDescription": format!("{status} {reason}"),
                "headers": single, "multiValueHeaders": multi,
                "body": body, "isBase64Encoded": false,
            })
        }
        Source::Task | Source::Sqs => panic!("a non-HTTP event has no HTTP response document"),
    }
}
