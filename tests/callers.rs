//! Callers (API.md, "Callers"): who is calling is what API Gateway verified;
//! each task belongs to the caller who started it, another caller's task is
//! a 404 exactly as an unknown id, `Idempotency-Key`s are the caller's own,
//! and `REQUIRE_CALLER=true` refuses anonymous requests. Through HTTP API v2,
//! REST v1 and Function URL events, against a local DynamoDB.

mod support;

use async_api::Function;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use support::callers::{ISSUER, Via, arn};
use support::fake_lambda::FakeLambda;
use support::{Fixture, Reply, error_body, events};

async fn send(function: &Function, via: &Via, method: &str, path: &str) -> Reply {
    send_with(function, via, method, path, &[]).await
}

async fn send_with(
    function: &Function,
    via: &Via,
    method: &str,
    path: &str,
    headers: &[(&str, Option<&str>)],
) -> Reply {
    let event = events::with_headers(&via.event(method, path, None), headers);
    support::invoke(function, &event)
        .await
        .expect("an HTTP request always gets an HTTP answer")
}

/// Starts a task as `via` and returns its id.
async fn start(function: &Function, via: &Via) -> String {
    let reply = send(function, via, "POST", "/async").await;
    assert_eq!(reply.status, 202, "{via:?}: {}", reply.body);
    reply.body["task_id"].as_str().expect("task_id").to_owned()
}

fn owner_of(item: &std::collections::HashMap<String, AttributeValue>) -> Option<String> {
    item.get("owner")
        .map(|owner| owner.as_s().expect("owner is a string").clone())
}

fn not_found(reply: &Reply, task_id: &str) {
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(
        reply.body,
        error_body(reply, "not_found", &format!("No task {task_id}"))
    );
}

#[tokio::test]
async fn a_task_records_its_owner_and_another_callers_get_and_delete_are_the_404_of_an_unknown_id()
{
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let ada = Via::HttpJwt("ada");
    let task_id = start(function, &ada).await;
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(
        owner_of(&item).as_deref(),
        Some(r#"jwt:["https://issuer.example.com/","ada"]"#)
    );

    let unknown = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";
    for other in [
        Via::HttpJwt("bob"),
        Via::Anonymous,
        Via::HttpIam("ada"),
        Via::HttpLambda("ada"),
        Via::RestLambda("ada"),
    ] {
        let path = format!("/tasks/{task_id}");
        not_found(&send(function, &other, "GET", &path).await, &task_id);
        not_found(&send(function, &other, "DELETE", &path).await, &task_id);
        let unknown_reply = send(function, &other, "GET", &format!("/tasks/{unknown}")).await;
        not_found(&unknown_reply, unknown);
        assert_eq!(
            unknown_reply.headers.len(),
            send(function, &other, "GET", &path).await.headers.len(),
            "{other:?}: the same headers as an unknown id"
        );
    }
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(item["status"].as_s().unwrap(), "queued", "no DELETE landed");

    let own = send(function, &ada, "GET", &format!("/tasks/{task_id}")).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["status"], "queued");
    let canceled = send(function, &ada, "DELETE", &format!("/tasks/{task_id}")).await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(canceled.body["status"], "canceled");
}

#[tokio::test]
async fn one_identity_is_one_caller_through_every_source_it_can_come_through() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    // A JWT through the HTTP API and Cognito claims through the REST API.
    let task_id = start(function, &Via::HttpJwt("ada")).await;
    let reply = send(
        function,
        &Via::RestCognito("ada"),
        "GET",
        &format!("/Prod/tasks/{task_id}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["task_id"], task_id.as_str());
    // IAM through the HTTP API and through a Function URL.
    let task_id = start(function, &Via::FunctionUrlIam("ada")).await;
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(owner_of(&item), Some(format!("iam:\"{}\"", arn("ada"))));
    let reply = send(
        function,
        &Via::HttpIam("ada"),
        "DELETE",
        &format!("/tasks/{task_id}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "canceled");
    // A Lambda authorizer's principal through the HTTP and REST APIs.
    let task_id = start(function, &Via::RestLambda("user-7")).await;
    let reply = send(
        function,
        &Via::HttpLambda("user-7"),
        "GET",
        &format!("/tasks/{task_id}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn identities_of_different_kinds_are_never_the_same_caller() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let user_arn: &'static str = Box::leak(arn("ada").into_boxed_str());
    let task_id = start(function, &Via::HttpIam("ada")).await;
    for impostor in [
        Via::HttpJwt(user_arn),
        Via::HttpLambda(user_arn),
        Via::RestLambda(user_arn),
    ] {
        let reply = send(function, &impostor, "GET", &format!("/tasks/{task_id}")).await;
        not_found(&reply, &task_id);
    }
}

#[tokio::test]
async fn an_anonymous_task_has_no_owner_and_is_reachable_by_anyone_who_holds_its_id() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let task_id = start(function, &Via::Anonymous).await;
    let item = fixture.task_item(&task_id).await.expect("record");
    assert_eq!(owner_of(&item), None);
    for anyone in [
        Via::Anonymous,
        Via::HttpJwt("bob"),
        Via::FunctionUrlIam("eve"),
        Via::RestCognito("ada"),
    ] {
        let path = match anyone {
            Via::RestCognito(_) => format!("/Prod/tasks/{task_id}"),
            _ => format!("/tasks/{task_id}"),
        };
        let reply = send(function, &anyone, "GET", &path).await;
        assert_eq!(reply.status, 200, "{anyone:?}: {}", reply.body);
        assert_eq!(reply.body["task_id"], task_id.as_str());
    }
    let reply = send(
        function,
        &Via::HttpJwt("bob"),
        "DELETE",
        &format!("/tasks/{task_id}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "canceled");
}

#[tokio::test]
async fn headers_name_no_one_without_an_authorizers_verdict() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let task_id = start(function, &Via::HttpJwt("ada")).await;
    let reply = send_with(
        function,
        &Via::Anonymous,
        "GET",
        &format!("/tasks/{task_id}"),
        &[
            (
                "authorization",
                Some("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZGEifQ."),
            ),
            ("x-user", Some("ada")),
            ("x-amzn-oidc-identity", Some("ada")),
        ],
    )
    .await;
    not_found(&reply, &task_id);
    let item = fixture
        .task_item(&start(function, &Via::Anonymous).await)
        .await
        .expect("record");
    assert_eq!(owner_of(&item), None);
}

#[tokio::test]
async fn idempotency_keys_are_the_callers_own_and_anonymous_callers_share_one_space() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let key = [("idempotency-key", Some("order-1"))];
    let mut first = Vec::new();
    for via in [
        Via::HttpJwt("ada"),
        Via::HttpJwt("bob"),
        Via::HttpIam("ada"),
        Via::Anonymous,
    ] {
        let reply = send_with(function, &via, "POST", "/async", &key).await;
        assert_eq!(reply.status, 202, "{via:?}: {}", reply.body);
        assert_eq!(reply.header("idempotent-replayed"), None, "{via:?}");
        first.push(reply.body["task_id"].as_str().unwrap().to_owned());
    }
    let mut distinct = first.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "four callers, four keys, four tasks");
    assert_eq!(lambda.invocations().len(), 4);

    // Each caller's retry answers its own first task.
    for (via, task_id) in [
        (Via::RestCognito("ada"), &first[0]),
        (Via::HttpJwt("bob"), &first[1]),
        (Via::FunctionUrlIam("ada"), &first[2]),
        (Via::Anonymous, &first[3]),
    ] {
        let reply = send_with(function, &via, "POST", "/async", &key).await;
        assert_eq!(reply.status, 202, "{via:?}: {}", reply.body);
        assert_eq!(reply.header("idempotent-replayed"), Some("true"), "{via:?}");
        assert_eq!(reply.body["task_id"], task_id.as_str(), "{via:?}");
    }
    assert_eq!(lambda.invocations().len(), 4, "no replay invoked");

    // Where the keys live: one record per caller's key.
    for (id, task_id) in [
        (
            r#"idempotency-key#jwt:["https://issuer.example.com/","ada"]#order-1"#.to_owned(),
            &first[0],
        ),
        (
            r#"idempotency-key#jwt:["https://issuer.example.com/","bob"]#order-1"#.to_owned(),
            &first[1],
        ),
        (
            format!("idempotency-key#iam:\"{}\"#order-1", arn("ada")),
            &first[2],
        ),
        ("idempotency-key#anonymous#order-1".to_owned(), &first[3]),
    ] {
        let item = fixture
            .task_item(&id)
            .await
            .unwrap_or_else(|| panic!("{id}"));
        assert_eq!(item["key_task_id"].as_s().unwrap(), task_id, "{id}");
        assert_eq!(item["key_state"].as_s().unwrap(), "answered", "{id}");
    }
    assert!(ISSUER.ends_with('/'));
}

#[tokio::test]
async fn require_caller_refuses_anonymous_requests_with_401_except_docs_openapi_and_preflights() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = fixture.function_with(&lambda.url, |config| config.require_caller = true);
    let message = "This API needs a verified caller: send a token its authorizer accepts";
    for (method, path) in [
        ("GET", "/users"),
        ("POST", "/async"),
        ("GET", "/async"),
        ("GET", "/tasks"),
        ("GET", "/tasks/0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c"),
        ("DELETE", "/tasks/0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c"),
        ("GET", "/nope"),
        ("OPTIONS", "/users"),
    ] {
        let reply = send_with(
            &function,
            &Via::Anonymous,
            method,
            path,
            &[("authorization", Some("Bearer not-verified-by-anyone"))],
        )
        .await;
        assert_eq!(reply.status, 401, "{method} {path}: {}", reply.body);
        assert_eq!(
            reply.body,
            error_body(&reply, "unauthorized", message),
            "{method} {path}"
        );
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(lambda.invocations().len(), 0, "nothing started");
    assert_eq!(
        fixture.count(&fixture.tasks_table).await,
        0,
        "nothing written"
    );

    for path in ["/docs", "/openapi.json"] {
        let reply = send(&function, &Via::Anonymous, "GET", path).await;
        assert_eq!(reply.status, 200, "{path}");
    }
    let preflight = send_with(
        &function,
        &Via::Anonymous,
        "OPTIONS",
        "/tasks",
        &[
            ("origin", Some(support::CORS_ORIGIN)),
            ("access-control-request-method", Some("GET")),
            ("access-control-request-headers", Some("authorization")),
        ],
    )
    .await;
    assert_eq!(preflight.status, 200, "{}", preflight.body);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(support::CORS_ORIGIN)
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .is_some_and(|allowed| allowed.contains("authorization")),
        "{:?}",
        preflight.headers
    );

    // A verified caller gets on as before: an unknown path is its 404.
    for via in [
        Via::HttpJwt("ada"),
        Via::FunctionUrlIam("ada"),
        Via::RestLambda("ada"),
    ] {
        let path = if matches!(via, Via::RestLambda(_)) {
            "/Prod/nope"
        } else {
            "/nope"
        };
        let reply = send(&function, &via, "GET", path).await;
        assert_eq!(reply.status, 404, "{via:?}");
        let reply = send(
            &function,
            &via,
            "POST",
            if matches!(via, Via::RestLambda(_)) {
                "/Prod/async"
            } else {
                "/async"
            },
        )
        .await;
        assert_eq!(reply.status, 202, "{via:?}: {}", reply.body);
    }
}

#[tokio::test]
async fn without_require_caller_anonymous_requests_are_served_as_today() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let reply = send(&fixture.function, &Via::Anonymous, "GET", "/users").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!({"users": [], "next_cursor": null}));
}
