//! `GET /tasks` (API.md): the caller's own tasks, newest first, from the
//! tasks table's index by owner; `status`, `limit` and `cursor` checked (400),
//! anonymous callers refused (401); each task shown as `GET /tasks/{id}`
//! shows it. Through HTTP API v2, REST v1 and Function URL events.

mod support;

use async_api::Function;
use async_api::tasks::record::NEVER_DELIVERED;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::callers::Via;
use support::fake_lambda::FakeLambda;
use support::{Fixture, Reply, error_body};

async fn send(function: &Function, via: &Via, method: &str, path: &str) -> Reply {
    let path = match via {
        Via::RestCognito(_) | Via::RestLambda(_) => format!("/Prod{path}"),
        _ => path.to_owned(),
    };
    support::invoke(function, &via.event(method, &path, None))
        .await
        .expect("an HTTP request always gets an HTTP answer")
}

/// Starts `count` tasks as `via`, a few milliseconds apart, oldest first.
async fn start(function: &Function, via: &Via, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let reply = send(function, via, "POST", "/async").await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        ids.push(reply.body["task_id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    ids
}

/// Follows the cursors from the first page; every page's tasks, in order.
async fn all_pages(function: &Function, via: &Via, query: &str) -> (Vec<Value>, usize) {
    let mut tasks = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/tasks?{query}&cursor={cursor}"),
            None => format!("/tasks?{query}"),
        };
        let reply = send(function, via, "GET", &path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let page = reply.body.as_object().expect("object");
        assert_eq!(page.len(), 2, "{}", reply.body);
        tasks.extend(page["tasks"].as_array().expect("tasks").iter().cloned());
        pages += 1;
        match &page["next_cursor"] {
            Value::Null => return (tasks, pages),
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("next_cursor {other}"),
        }
        assert!(pages < 50, "cursors do not end");
    }
}

fn ids(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|task| task["task_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_list_holds_every_task_of_the_caller_exactly_once_newest_first_as_get_shows_each() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let ada = Via::HttpJwt("ada");
    let mut own = start(function, &ada, 3).await;
    own.extend(start(function, &Via::RestCognito("ada"), 2).await);
    start(function, &Via::HttpJwt("bob"), 2).await;
    start(function, &Via::Anonymous, 1).await;
    own.reverse();

    for (via, limit) in [
        (ada.clone(), 2),
        (Via::RestCognito("ada"), 1),
        (ada.clone(), 100),
    ] {
        let (tasks, pages) = all_pages(function, &via, &format!("limit={limit}")).await;
        assert_eq!(ids(&tasks), own, "{via:?} limit {limit}");
        assert!(pages >= own.len().div_ceil(limit), "{pages} pages");
        for task in &tasks {
            let id = task["task_id"].as_str().unwrap();
            let one = send(function, &ada, "GET", &format!("/tasks/{id}")).await;
            assert_eq!(&one.body, task);
            assert_eq!(
                task.as_object().unwrap().keys().collect::<Vec<_>>(),
                [
                    "attempts",
                    "created_at",
                    "error",
                    "result",
                    "status",
                    "task_id",
                    "updated_at"
                ]
            );
        }
    }
    // The default page: 20.
    let more = start(function, &ada, 17).await;
    let first = send(function, &ada, "GET", "/tasks").await;
    assert_eq!(first.body["tasks"].as_array().unwrap().len(), 20);
    assert_eq!(ids(first.body["tasks"].as_array().unwrap())[0], more[16]);
    assert!(first.body["next_cursor"].is_string());

    // An identity through another source has the same list.
    let iam = start(function, &Via::FunctionUrlIam("eve"), 2).await;
    let (tasks, _) = all_pages(function, &Via::HttpIam("eve"), "limit=1").await;
    assert_eq!(ids(&tasks), [iam[1].clone(), iam[0].clone()]);
    let (tasks, _) = all_pages(function, &Via::RestLambda("nobody"), "").await;
    assert_eq!(tasks, Vec::<Value>::new());
}

#[tokio::test]
async fn the_status_filter_lists_only_the_tasks_with_that_status() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let ada = Via::HttpLambda("ada");
    let own = start(function, &ada, 6).await;
    for id in [&own[1], &own[2], &own[4]] {
        let reply = send(function, &ada, "DELETE", &format!("/tasks/{id}")).await;
        assert_eq!(reply.status, 200);
    }
    let (canceled, _) = all_pages(function, &ada, "status=canceled&limit=2").await;
    assert_eq!(
        ids(&canceled),
        [own[4].clone(), own[2].clone(), own[1].clone()]
    );
    assert!(canceled.iter().all(|task| task["status"] == "canceled"));
    let (queued, _) = all_pages(function, &ada, "status=queued&limit=1").await;
    assert_eq!(
        ids(&queued),
        [own[5].clone(), own[3].clone(), own[0].clone()]
    );
    let (succeeded, pages) = all_pages(function, &ada, "status=succeeded").await;
    assert_eq!((succeeded, pages), (Vec::new(), 1));
}

#[tokio::test]
async fn a_task_past_the_backstop_is_listed_failed_as_get_shows_it() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let ada = Via::HttpJwt("ada");
    let task_id = start(function, &ada, 1).await.remove(0);
    let long_ago = support::now_millis() - 2 * 3600 * 1000;
    fixture
        .backdate(&task_id, long_ago)
        .send()
        .await
        .expect("backdate");
    let list = send(function, &ada, "GET", "/tasks").await;
    let one = send(function, &ada, "GET", &format!("/tasks/{task_id}")).await;
    assert_eq!(one.body["status"], "failed");
    assert_eq!(one.body["error"], NEVER_DELIVERED);
    assert_eq!(list.body, json!({"tasks": [one.body], "next_cursor": null}));
    let (failed, _) = all_pages(function, &ada, "status=queued").await;
    assert_eq!(
        ids(&failed),
        [task_id],
        "the filter reads the stored status; the task is shown as failed"
    );
}

#[tokio::test]
async fn a_bad_status_limit_or_cursor_is_a_400() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    let ada = Via::HttpJwt("ada");
    let bob = Via::HttpJwt("bob");
    start(function, &ada, 3).await;
    start(function, &bob, 3).await;
    let bobs_cursor = send(function, &bob, "GET", "/tasks?limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let adas_cursor = send(function, &ada, "GET", "/tasks?limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let limit = "limit must be an integer from 1 to 100";
    let status = "status must be one of queued, running, succeeded, failed, canceled";
    let cursor = "cursor is not one this API returned";
    let reencoded = {
        let json: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&adas_cursor).unwrap()).unwrap();
        URL_SAFE_NO_PAD.encode(serde_json::to_string_pretty(&json).unwrap())
    };
    for (query, message) in [
        ("limit=0", limit),
        ("limit=101", limit),
        ("limit=ten", limit),
        ("limit=", limit),
        ("status=done", status),
        ("status=QUEUED", status),
        ("status=", status),
        ("cursor=!!!", cursor),
        (
            &format!("cursor={}", &adas_cursor[..adas_cursor.len() - 3]),
            cursor,
        ),
        (&format!("cursor={bobs_cursor}"), cursor),
        (&format!("cursor={reencoded}"), cursor),
        (
            &format!("cursor={}", URL_SAFE_NO_PAD.encode(r#"{"id":"user-1"}"#)),
            cursor,
        ),
    ] {
        let reply = send(function, &ada, "GET", &format!("/tasks?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(
            reply.body,
            error_body(&reply, "bad_request", message),
            "{query}"
        );
    }
}

#[tokio::test]
async fn an_anonymous_caller_has_no_list_401() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = &fixture.function;
    start(function, &Via::Anonymous, 2).await;
    let message = "Only a verified caller has a list of tasks: a task started anonymously is reached by its id";
    for event in [
        support::events::http_api("GET", "/tasks", None),
        support::events::function_url("GET", "/tasks?limit=5", None),
        support::events::rest_api("Prod", "GET", "/tasks", None),
        support::events::alb("GET", "/tasks", None),
    ] {
        let reply = support::invoke(function, &event).await.expect("answer");
        assert_eq!(reply.status, 401, "{event}: {}", reply.body);
        assert_eq!(reply.body, error_body(&reply, "unauthorized", message));
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
}
