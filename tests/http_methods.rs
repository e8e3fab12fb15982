//! `HEAD` and `OPTIONS` as the contract has them: `HEAD` only where `GET` is
//! safe (and never on `/async`, whose `GET` starts a task), `OPTIONS` a CORS
//! preflight only when it is one and CORS applies, else the route's 405 or the
//! 404 of an unknown path, as JSON.

mod support;

use lambda_http::{Body, RequestExt};
use support::fake_lambda::FakeLambda;
use support::{CORS_ORIGIN, Fixture, Reply, dead_endpoint, error_body, events};

const TASK_PATH: &str = "/tasks/0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";

/// What the function answers an HTTP API request, with the body exactly as it
/// comes back (so that "no body" is told apart from an empty JSON one).
async fn raw(
    function: &async_api::Function,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, Body) {
    let request = lambda_http::request::from_str(&events::http_api(method, path, None))
        .expect("event")
        .with_lambda_context(lambda_http::Context::default());
    let response = function.handle(request).await.expect("an HTTP answer");
    let (parts, body) = response.into_parts();
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().expect("ASCII header").to_owned(),
            )
        })
        .collect();
    headers.sort();
    (parts.status.as_u16(), headers, body)
}

#[tokio::test]
async fn head_answers_gets_status_and_headers_with_no_body_where_get_is_safe() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    fixture.seed_users(3).await;
    let started = fixture.http("POST", "/async", None).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let task_path = started.body["status_url"]
        .as_str()
        .expect("status_url")
        .to_owned();

    for path in [
        "/users",
        "/users?limit=2",
        &task_path,
        "/openapi.json",
        "/docs",
    ] {
        let (get_status, get_headers, get_body) = raw(&fixture.function, "GET", path).await;
        assert_eq!(get_status, 200, "GET {path}");
        assert!(!matches!(get_body, Body::Empty), "GET {path} has a body");
        let (status, headers, body) = raw(&fixture.function, "HEAD", path).await;
        assert_eq!(status, get_status, "HEAD {path}");
        assert_eq!(headers, get_headers, "HEAD {path}: GET's headers");
        assert!(
            matches!(body, Body::Empty),
            "HEAD {path}: no body, got {body:?}"
        );
    }
    let (_, headers, _) = raw(&fixture.function, "HEAD", &task_path).await;
    assert!(
        headers.contains(&("retry-after".to_owned(), "1".to_owned())),
        "a queued task's HEAD says when to look again: {headers:?}"
    );
    assert_eq!(lambda.invocations().len(), 1, "only the POST enqueued");
}

#[tokio::test]
async fn head_on_a_task_waiting_for_lambdas_retry_says_the_gets_retry_after_with_no_body() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let started = fixture
        .http("POST", "/async", Some(r#"{"delay_ms": 0}"#))
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let task_id = started.body["task_id"].as_str().expect("task_id");
    let task_path = format!("/tasks/{task_id}");
    let failing =
        serde_json::json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 1}).to_string();
    fixture
        .invoke(&failing)
        .await
        .expect_err("attempt 1 fails; Lambda retries it about a minute later");

    let (get_status, get_headers, get_body) = raw(&fixture.function, "GET", &task_path).await;
    let (status, headers, body) = raw(&fixture.function, "HEAD", &task_path).await;
    assert_eq!((status, get_status), (200, 200));
    assert!(!matches!(get_body, Body::Empty));
    assert!(matches!(body, Body::Empty), "{body:?}");
    assert_eq!(headers, get_headers, "HEAD: GET's headers");
    let retry_after: u64 = headers
        .iter()
        .find(|(name, _)| name == "retry-after")
        .map(|(_, value)| value.parse().expect("whole seconds"))
        .unwrap_or_else(|| panic!("no Retry-After: {headers:?}"));
    assert!(
        (59..=60).contains(&retry_after),
        "Retry-After {retry_after}: when Lambda's retry comes"
    );
}

#[tokio::test]
async fn head_on_an_unknown_task_is_the_gets_404() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let (status, headers, body) = raw(&fixture.function, "HEAD", TASK_PATH).await;
    let (get_status, get_headers, _) = raw(&fixture.function, "GET", TASK_PATH).await;
    assert_eq!((status, get_status), (404, 404));
    assert_eq!(headers, get_headers);
    assert!(matches!(body, Body::Empty), "{body:?}");
}

#[tokio::test]
async fn head_async_is_405_allowing_get_and_post_and_starts_nothing() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let reply = fixture.http("HEAD", "/async", None).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET,POST"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.body,
        error_body(
            &reply,
            "method_not_allowed",
            "Method HEAD is not allowed on /async"
        )
    );
    assert_eq!(
        fixture.count(&fixture.tasks_table).await,
        0,
        "no task record"
    );
    assert!(lambda.invocations().is_empty(), "no Invoke");
}

/// An `OPTIONS` request with these headers set.
async fn options(
    function: &async_api::Function,
    path: &str,
    headers: &[(&str, Option<&str>)],
) -> Reply {
    let event = events::with_headers(&events::http_api("OPTIONS", path, None), headers);
    support::invoke(function, &event)
        .await
        .expect("an HTTP answer")
}

#[tokio::test]
async fn a_preflight_on_a_route_with_cors_configured_answers_the_cors_headers() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    for (path, method) in [(TASK_PATH, "DELETE"), ("/async", "POST"), ("/users", "GET")] {
        let reply = options(
            &fixture.function,
            path,
            &[
                ("origin", Some(CORS_ORIGIN)),
                ("access-control-request-method", Some(method)),
                (
                    "access-control-request-headers",
                    Some("content-type,idempotency-key"),
                ),
            ],
        )
        .await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some(CORS_ORIGIN),
            "{path}"
        );
        let methods = reply
            .header("access-control-allow-methods")
            .unwrap_or_default();
        for allowed in ["GET", "POST", "DELETE"] {
            assert!(
                methods.split(',').any(|m| m.trim() == allowed),
                "{path}: {methods}"
            );
        }
        let headers = reply
            .header("access-control-allow-headers")
            .unwrap_or_default();
        for allowed in ["content-type", "idempotency-key"] {
            assert!(
                headers
                    .split(',')
                    .any(|h| h.trim().eq_ignore_ascii_case(allowed)),
                "{path}: {headers}"
            );
        }
        assert_eq!(
            reply.header("access-control-max-age"),
            Some("3600"),
            "{path}"
        );
    }
}

/// The 405 an `OPTIONS` on `path` gets, with `Allow` `allow`.
fn assert_options_405(reply: &Reply, path: &str, allow: &str, case: &str) {
    assert_eq!(reply.status, 405, "{case}: {path}: {}", reply.body);
    assert_eq!(reply.header("allow"), Some(allow), "{case}: {path}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{case}"
    );
    assert_eq!(
        reply.body,
        error_body(
            reply,
            "method_not_allowed",
            &format!("Method OPTIONS is not allowed on {path}")
        ),
        "{case}"
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        None,
        "{case}: {path}: no preflight answer"
    );
}

const ROUTES_AND_ALLOW: [(&str, &str); 5] = [
    ("/users", "GET,HEAD"),
    ("/async", "GET,POST"),
    (TASK_PATH, "GET,HEAD,DELETE"),
    ("/openapi.json", "GET,HEAD"),
    ("/docs", "GET,HEAD"),
];

#[tokio::test]
async fn options_without_origin_is_the_routes_405() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    for (path, allow) in ROUTES_AND_ALLOW {
        let reply = options(
            &fixture.function,
            path,
            &[("access-control-request-method", Some("GET"))],
        )
        .await;
        assert_options_405(&reply, path, allow, "no Origin");
    }
}

#[tokio::test]
async fn options_without_access_control_request_method_is_the_routes_405() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    for (path, allow) in ROUTES_AND_ALLOW {
        let reply = options(&fixture.function, path, &[("origin", Some(CORS_ORIGIN))]).await;
        assert_options_405(&reply, path, allow, "no Access-Control-Request-Method");
    }
}

#[tokio::test]
async fn a_preflight_with_cors_not_configured_is_the_routes_405() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let function = fixture.function_without_cors(&dead_endpoint());
    for (path, allow) in ROUTES_AND_ALLOW {
        let reply = options(
            &function,
            path,
            &[
                ("origin", Some(CORS_ORIGIN)),
                ("access-control-request-method", Some("GET")),
            ],
        )
        .await;
        assert_options_405(&reply, path, allow, "CORS not configured");
        assert_eq!(reply.header("access-control-allow-origin"), None, "{path}");
    }
}

#[tokio::test]
async fn options_on_an_unknown_path_is_404_preflight_or_not() {
    let fixture = Fixture::new(&dead_endpoint()).await;
    let preflight = [
        ("origin", Some(CORS_ORIGIN)),
        ("access-control-request-method", Some("GET")),
    ];
    for headers in [&preflight[..], &[]] {
        let reply = options(&fixture.function, "/nope", headers).await;
        assert_eq!(reply.status, 404, "{headers:?}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(
            reply.body,
            error_body(&reply, "not_found", "No route for OPTIONS /nope")
        );
        assert_eq!(reply.header("access-control-allow-methods"), None);
    }
}
