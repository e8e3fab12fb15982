//! What the logs and the answers show, and events lambda_http cannot convert.

use super::*;

/// Stand-ins for secrets: the credentials the binary is given.
const SECRET_KEY: &str = "SECRETKEYMARKER0wJalrXUtnFEMIK7MDENG";
const ACCESS_KEY: &str = "AKIAACCESSKEYMARKER7";
const SESSION_TOKEN: &str = "SESSIONTOKENMARKERIQoJb3JpZ2luX2Vj";
/// A stand-in for what a client sends: bodies, query strings, task ids.
const CLIENT_DATA: &str = "clientdatamarker-4f7a";
/// A stand-in for what a failing DynamoDB says in its error messages.
const SERVICE_DETAIL: &str = "servicedetailmarker-91c2";

/// What no log line and no answer may contain, in any case.
const NEVER_SHOWN: &[&str] = &[
    SECRET_KEY,
    ACCESS_KEY,
    SESSION_TOKEN,
    CLIENT_DATA,
    SERVICE_DETAIL,
    "ServiceError",
    "DispatchFailure",
    "panicked",
    "stack backtrace",
    "Credentials",
];

/// A DynamoDB that throttles every call, with a message an SDK error dump
/// would show.
async fn chatty_throttling_dynamodb() -> String {
    let router = Router::new().route(
        "/",
        post(|| async {
            (
                StatusCode::BAD_REQUEST,
                [
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amzn-requestid", "CHATTYREQUESTID"),
                ],
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                    "message": format!("Rate of requests exceeds the allowed throughput {SERVICE_DETAIL}"),
                })
                .to_string(),
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Requests that carry client data where the function must not echo it.
fn hostile_requests() -> Vec<(String, u16)> {
    let big = format!(
        r#"{{"delay_ms": 1, "pad": "{}"}}"#,
        CLIENT_DATA.repeat(70 * 1024 / CLIENT_DATA.len())
    );
    let unknown_task = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    let post = |body: &str| events::http_api("POST", "/async", Some(body));
    let get = |path: &str| events::http_api("GET", path, None);
    vec![
        (post(&format!(r#"{{"delay_ms": "{CLIENT_DATA}"}}"#)), 400),
        (post(&format!("not json {CLIENT_DATA}")), 400),
        (post(&format!(r#"{{"{CLIENT_DATA}": 1}}"#)), 400),
        (
            post(&format!(r#"{{"delay_ms": 1, "{CLIENT_DATA}": 1}}"#)),
            400,
        ),
        (post(&format!(r#"{{"delay_ms": [{CLIENT_DATA}]}}"#)), 400),
        (post(&big), 413),
        (get(&format!("/users?cursor={CLIENT_DATA}")), 400),
        (get(&format!("/users?limit={CLIENT_DATA}")), 400),
        (get(&format!("/users?limit=1&limit={CLIENT_DATA}")), 400),
        (get(&format!("/users?cursor=a&cursor={CLIENT_DATA}")), 400),
        (get(&format!("/tasks/{CLIENT_DATA}")), 400),
        (get(&format!("/tasks/{CLIENT_DATA}%FF")), 400),
        (
            get(&format!("/tasks/{unknown_task}?note={CLIENT_DATA}")),
            404,
        ),
        (
            events::http_api(
                "POST",
                "/events",
                Some(&json!({"task_id": CLIENT_DATA, "delay_ms": 1}).to_string()),
            ),
            404,
        ),
    ]
}

/// Requests that reach DynamoDB or Lambda, their query carrying client data.
fn dependency_requests() -> Vec<String> {
    vec![
        events::http_api("GET", &format!("/users?limit=5&note={CLIENT_DATA}"), None),
        events::http_api(
            "GET",
            &format!("/tasks/0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c?note={CLIENT_DATA}"),
            None,
        ),
        events::http_api(
            "POST",
            &format!("/async?note={CLIENT_DATA}"),
            Some(r#"{"delay_ms": 1}"#),
        ),
    ]
}

/// The HTTP status of a response document (0 for a function error).
fn status_of(outcome: &Outcome) -> u16 {
    match outcome {
        Outcome::Response(document) => document["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0),
        Outcome::Error { .. } => 0,
    }
}

/// Every place a forbidden string shows up: (where, the text).
fn leaks(what: &str, texts: impl IntoIterator<Item = String>) -> Vec<String> {
    texts
        .into_iter()
        .filter(|text| {
            let text = text.to_lowercase();
            NEVER_SHOWN
                .iter()
                .any(|never| text.contains(&never.to_lowercase()))
        })
        .map(|text| format!("{what}: {text}"))
        .collect()
}

fn output_leaks(name: &str, output: &ProcessOutput) -> Vec<String> {
    leaks(
        &format!("{name} log"),
        output.stdout.iter().chain(&output.stderr).cloned(),
    )
}

/// The binary with marker credentials, pointed at `api` and `fixture`'s tables.
fn binary_with_marker_credentials(api: &RuntimeApi, fixture: &Fixture) -> FunctionCommand {
    function_command(api, fixture)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_answers_never_show_credentials_client_data_or_error_dumps() {
    let _turn = one_at_a_time().await;
    let healthy_api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&healthy_api.url()).await;
    fixture.seed_users(3).await;
    // As in Lambda: JSON logs. The faulty ones below log as text, as locally.
    let healthy = binary_with_marker_credentials(&healthy_api, &fixture)
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .spawn();

    let mut answers = Vec::new();
    let mut statuses = Vec::new();
    for (event, expected) in hostile_requests() {
        let outcome = healthy_api.invoke(event).await;
        statuses.push((status_of(&outcome), expected));
        answers.push(format!("{outcome:?}"));
    }
    // Task events with client data where a task id or delay belongs.
    for event in [
        json!({"task_id": CLIENT_DATA, "delay_ms": 1}),
        json!({"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 1}),
    ] {
        let outcome = healthy_api.invoke(event.to_string()).await;
        assert!(matches!(outcome, Outcome::Error { .. }), "{outcome:?}");
        answers.push(format!("{outcome:?}"));
    }

    // DynamoDB unreachable; DynamoDB throttling with a talkative message;
    // Lambda unreachable.
    let mut faulty = Vec::new();
    for (name, dynamodb, lambda, expected) in [
        ("dynamodb-dead", dead_endpoint(), None, [503, 503, 503]),
        (
            "dynamodb-throttling",
            chatty_throttling_dynamodb().await,
            None,
            [503, 503, 503],
        ),
        (
            "lambda-dead",
            support::dynamodb_endpoint().to_owned(),
            Some(dead_endpoint()),
            // Only /async needs Lambda.
            [200, 404, 503],
        ),
    ] {
        let api = RuntimeApi::start(test_function()).await;
        let mut command = binary_with_marker_credentials(&api, &fixture)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb);
        if let Some(lambda) = &lambda {
            command = command.env("AWS_ENDPOINT_URL_LAMBDA", lambda);
        }
        let process = command.spawn();
        for (event, expected) in dependency_requests().into_iter().zip(expected) {
            let outcome = api.invoke(event).await;
            statuses.push((status_of(&outcome), expected));
            answers.push(format!("{name}: {outcome:?}"));
        }
        if lambda.is_none() {
            let task = events::task("0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", 1);
            let outcome = api.invoke(task).await;
            assert!(
                matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "TaskStoreUnavailable"),
                "{name}: {outcome:?}"
            );
            answers.push(format!("{name}: {outcome:?}"));
        }
        faulty.push((name, api, process));
    }

    let mut found = leaks("answer", answers);
    let healthy_output = healthy.stop().await;
    found.extend(output_leaks("healthy", &healthy_output));
    let mut logged = healthy_output.stdout.clone();
    for (name, _api, process) in faulty {
        let output = process.stop().await;
        found.extend(output_leaks(name, &output));
        logged.extend(output.stdout);
    }
    assert!(found.is_empty(), "leaked:\n{}", found.join("\n"));
    assert!(
        statuses.iter().all(|(got, expected)| got == expected),
        "(answered, expected): {statuses:?}"
    );
    // The logs are not empty: rejections and failures are there, summarised.
    for expected in [
        "request rejected",
        "dependency unavailable",
        "task store unavailable",
    ] {
        assert!(
            logged.iter().any(|line| line.contains(expected)),
            "no log line says {expected:?}: {logged:#?}"
        );
    }
}

/// A task event whose fields are of the wrong type: serde's message quotes the
/// value, and the function error (which the runtime logs and returns to the
/// invoker) must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_task_events_error_does_not_quote_the_event() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = binary_with_marker_credentials(&api, &fixture).spawn();
    let mut answers = Vec::new();
    for event in [
        json!({"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": CLIENT_DATA}),
        json!({"task_id": "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c", "delay_ms": 1, CLIENT_DATA: 1}),
        json!({CLIENT_DATA: 1}),
    ] {
        let outcome = api.invoke(event.to_string()).await;
        assert!(
            matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "UnrecognizedEvent"),
            "{outcome:?}"
        );
        answers.push(format!("{outcome:?}"));
    }
    let mut found = leaks("answer", answers);
    found.extend(output_leaks("binary", &process.stop().await));
    assert!(found.is_empty(), "leaked:\n{}", found.join("\n"));
}

// ---------------------------------------------------------------------------
// Events lambda_http cannot convert
// ---------------------------------------------------------------------------

/// lambda_http panics converting some events (found by tests/fuzz.rs): a body
/// flagged base64 that is not, a Host header that is no host. The runtime
/// catches the panic: the invocation is a function error, and the binary goes
/// on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_lambda_http_panics_on_is_a_function_error_and_the_binary_serves_on() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = function_command(&api, &fixture).spawn();

    let mut lying_base64: Value =
        serde_json::from_str(&events::http_api("POST", "/async", Some("{}"))).expect("json");
    lying_base64["isBase64Encoded"] = json!(true);
    let mut bad_host: Value =
        serde_json::from_str(&events::alb("GET", "/users", None)).expect("json");
    bad_host["headers"]["host"] = json!("[::1");
    for event in [lying_base64, bad_host] {
        match api.invoke(event.to_string()).await {
            Outcome::Error { message, .. } => {
                assert!(message.starts_with("Lambda panicked: "), "{message}")
            }
            other => panic!("expected a function error, got {other:?}"),
        }
        let next = api.invoke(events::http_api("GET", "/users", None)).await;
        assert_eq!(status_of(&next), 200, "{next:?}");
    }
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0);
    let output = process.stop().await;
    assert!(
        output.status.code().is_none(),
        "the binary ran until stopped: {:?}",
        output.status
    );
}
