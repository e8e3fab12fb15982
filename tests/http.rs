//! Routing and the error contract, for every HTTP event source.

mod support;

use serde_json::json;
use support::fake_lambda::FakeLambda;
use support::{Fixture, dead_endpoint, error_body, events};

#[tokio::test]
async fn an_unknown_path_is_404_with_the_json_error() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let reply = fixture.http("GET", "/nope", None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.body,
        error_body(&reply, "not_found", "No route for GET /nope")
    );
    assert!(
        reply.request_id.starts_with("req-"),
        "the Lambda request id"
    );
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    for (method, path, allow) in [
        ("POST", "/users", "GET,HEAD"),
        ("DELETE", "/users", "GET,HEAD"),
        ("PUT", "/async", "GET,POST"),
        ("HEAD", "/async", "GET,POST"),
        (
            "PUT",
            "/tasks/0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c",
            "GET,HEAD,DELETE",
        ),
    ] {
        let reply = fixture.http(method, path, None).await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(
            reply.body,
            error_body(
                &reply,
                "method_not_allowed",
                &format!("Method {method} is not allowed on {path}")
            )
        );
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_and_nothing_is_written() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let body = format!(r#"{{"delay_ms": 1, "pad": "{}"}}"#, "x".repeat(64 * 1024));
    let reply = fixture.http("POST", "/async", Some(&body)).await;
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "payload_too_large",
            "Request body is larger than 65536 bytes"
        )
    );
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0);
    assert!(lambda.invocations().is_empty());
    // Exactly 64 KiB is still read (and then judged on its content).
    let body = format!("{}{}", " ".repeat(64 * 1024 - 2), "{}");
    assert_eq!(
        fixture.http("POST", "/async", Some(&body)).await.status,
        202
    );
}

/// Builds an event of one source from (method, path and query, body).
type EventFn = fn(&str, &str, Option<&str>) -> String;

#[tokio::test]
async fn every_http_source_reaches_the_same_routes() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    fixture.seed_users(3).await;
    let sources: [(&str, EventFn); 5] = [
        ("HTTP API", events::http_api),
        ("Function URL", events::function_url),
        ("REST API, stage Prod", |m, p, b| {
            events::rest_api("Prod", m, p, b)
        }),
        ("REST API, path with the stage", |m, p, b| {
            events::rest_api("Prod", m, &format!("/Prod{p}"), b)
        }),
        ("ALB", events::alb),
    ];
    for (source, event) in sources {
        let users = fixture
            .invoke(&event("GET", "/users?limit=2", None))
            .await
            .expect("answer");
        assert_eq!(users.status, 200, "{source}: {}", users.body);
        assert_eq!(
            users.body["users"].as_array().map(Vec::len),
            Some(2),
            "{source}"
        );

        let started = fixture
            .invoke(&event("POST", "/async", Some(r#"{"delay_ms": 1}"#)))
            .await
            .expect("answer");
        assert_eq!(started.status, 202, "{source}: {}", started.body);
        let status_url = started.body["status_url"]
            .as_str()
            .expect("status_url")
            .to_owned();
        // The reference resolves against the URL the client called, which
        // under a REST API carries the stage: it leads back through it.
        let base = if source.starts_with("REST") {
            "/Prod"
        } else {
            ""
        };
        let task_id = started.body["task_id"].as_str().expect("task_id");
        assert_eq!(status_url, format!("{base}/tasks/{task_id}"), "{source}");
        assert_eq!(started.header("location"), Some(status_url.as_str()));
        let route = status_url.strip_prefix(base).expect("under the base");

        let task = fixture
            .invoke(&event("GET", route, None))
            .await
            .expect("answer");
        assert_eq!(task.status, 200, "{source}");
        assert_eq!(task.body["status"], "queued", "{source}");
        let keys: Vec<&str> = task
            .body
            .as_object()
            .expect("a JSON object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "attempts",
                "created_at",
                "error",
                "result",
                "status",
                "task_id",
                "updated_at"
            ],
            "{source}: every key (sorted), `result` among them"
        );
        assert_eq!(task.body["result"], serde_json::Value::Null, "{source}");

        let missing = fixture
            .invoke(&event("GET", "/nope", None))
            .await
            .expect("answer");
        assert_eq!(missing.status, 404, "{source}");
        assert_eq!(
            missing.body,
            error_body(&missing, "not_found", "No route for GET /nope"),
            "{source}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_dynamodb_is_503_with_retry_after_and_no_internals() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let function = fixture.function_with_dynamodb(&dead_endpoint());
    for path in ["/users", "/tasks/0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c"] {
        let reply = support::invoke(&function, &events::http_api("GET", path, None))
            .await
            .expect("answer");
        assert_eq!(reply.status, 503, "{path}");
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(
            reply.body,
            error_body(
                &reply,
                "service_unavailable",
                "Service temporarily unavailable, retry later"
            )
        );
    }
}

#[tokio::test]
async fn a_missing_table_is_503_with_retry_after() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    fixture
        .dynamodb
        .delete_table()
        .table_name(&fixture.users_table)
        .send()
        .await
        .expect("delete");
    let reply = fixture.http("GET", "/users", None).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "service_unavailable",
            "Service temporarily unavailable, retry later"
        )
    );
}

#[tokio::test]
async fn duplicate_or_empty_query_parameters_are_client_errors() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let reply = fixture.http("GET", "/users?limit=1&limit=2", None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["error"]["code"], json!("bad_request"));
    let reply = fixture.http("GET", "/users?cursor=", None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        error_body(&reply, "bad_request", "cursor is not one this API returned")
    );
}

#[tokio::test]
async fn a_binary_body_that_is_not_json_is_a_400() {
    use base64::Engine;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let mut event: serde_json::Value =
        serde_json::from_str(&events::http_api("POST", "/async", None)).expect("event");
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(b"\xffa\x08\x13"));
    event["isBase64Encoded"] = json!(true);
    let reply = fixture.invoke(&event.to_string()).await.expect("answer");
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "bad_request",
            "Invalid JSON body: not valid JSON (line 1, column 1)"
        )
    );
    assert_eq!(fixture.count(&fixture.tasks_table).await, 0);
}
