//! `TASKS_PER_MINUTE_PER_CALLER` (API.md, "Callers"): past the limit,
//! `/async` answers 429 `too_many_requests` with `Retry-After` (seconds to
//! the next UTC minute) and writes and enqueues nothing; an idempotent replay
//! is not counted; all anonymous callers count as one; a start whose
//! counter write lands and loses its answer counts once.

mod support;

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::HashMap;
use std::time::Duration;

use async_api::Function;
use aws_sdk_dynamodb::types::AttributeValue;
use fault_proxy::{Fault, FaultProxy};
use support::callers::Via;
use support::fake_lambda::FakeLambda;
use support::{Fixture, Reply, error_body, events};

async fn send(function: &Function, via: &Via, method: &str, key: Option<&str>) -> Reply {
    let event = events::with_headers(
        &via.event(method, "/async", None),
        &[("idempotency-key", key)],
    );
    support::invoke(function, &event)
        .await
        .expect("an HTTP request always gets an HTTP answer")
}

/// Waits, if need be, until at least `seconds` of the current UTC minute are
/// left, so that a test's requests all fall in one minute.
async fn within_one_minute(seconds: u64) {
    let into_minute = support::now_millis() / 1000 % 60;
    if into_minute + seconds >= 60 {
        let wait_ms = (60 - into_minute) * 1000 + 100;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    }
}

/// The items of the tasks table by id.
async fn items(fixture: &Fixture) -> HashMap<String, HashMap<String, AttributeValue>> {
    fixture
        .dynamodb
        .scan()
        .table_name(&fixture.tasks_table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|item| (item["task_id"].as_s().expect("task_id").clone(), item))
        .collect()
}

/// The 429 of a caller past `limit`, checked exactly: `Retry-After` is the
/// seconds to the next minute as the request saw it.
fn assert_limited(reply: &Reply, limit: u32, now_before_s: u64, now_after_s: u64) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    let retry_after: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    let expected = [60 - now_before_s % 60, 60 - now_after_s % 60];
    assert!(
        expected.contains(&retry_after),
        "{retry_after} not in {expected:?}"
    );
    assert_eq!(
        reply.body,
        error_body(
            reply,
            "too_many_requests",
            &format!("At most {limit} tasks per minute per caller: retry in {retry_after} s")
        )
    );
}

#[tokio::test]
async fn past_the_limit_a_caller_gets_429_with_retry_after_and_nothing_is_written_or_enqueued() {
    within_one_minute(20).await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = fixture.function_with(&lambda.url, |config| {
        config.tasks_per_minute_per_caller = 2;
    });
    let ada = Via::HttpJwt("ada");
    let mut started = Vec::new();
    for method in ["POST", "GET"] {
        let reply = send(&function, &ada, method, None).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        started.push(reply.body["task_id"].as_str().expect("task_id").to_owned());
    }
    let before = items(&fixture).await;
    let before_s = support::now_millis() / 1000;
    let refused = send(&function, &ada, "POST", None).await;
    let after_s = support::now_millis() / 1000;
    assert_limited(&refused, 2, before_s, after_s);
    let refused = send(&function, &Via::RestCognito("ada"), "GET", None).await;
    assert_limited(&refused, 2, before_s, support::now_millis() / 1000);
    assert_eq!(items(&fixture).await, before, "nothing written");
    assert_eq!(lambda.invocations().len(), 2, "nothing enqueued");

    // The counter: one item per caller and minute, under a key no task id can take.
    let minute = before_s / 60;
    let counter_id =
        format!(r#"tasks-per-minute#{minute}#jwt:["https://issuer.example.com/","ada"]"#);
    let counter = &before[&counter_id];
    let mut starts = counter["starts"]
        .as_ss()
        .expect("a set of task ids")
        .clone();
    starts.sort();
    started.sort();
    assert_eq!(starts, started, "the ids of the tasks started");
    assert_eq!(
        counter["expires_at"],
        AttributeValue::N(((minute + 1) * 60 + 120).to_string())
    );

    // Another caller has a limit of its own.
    assert_eq!(
        send(&function, &Via::HttpJwt("bob"), "POST", None)
            .await
            .status,
        202
    );
    assert_eq!(
        send(&function, &Via::FunctionUrlIam("ada"), "POST", None)
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn an_idempotent_replay_is_not_counted_and_a_refused_key_is_released() {
    within_one_minute(20).await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = fixture.function_with(&lambda.url, |config| {
        config.tasks_per_minute_per_caller = 1;
    });
    let ada = Via::HttpLambda("ada");
    let first = send(&function, &ada, "POST", Some("k1")).await;
    assert_eq!(first.status, 202, "{}", first.body);
    for _ in 0..3 {
        let replay = send(&function, &Via::RestLambda("ada"), "POST", Some("k1")).await;
        assert_eq!(replay.status, 202, "{}", replay.body);
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.body["task_id"], first.body["task_id"]);
    }
    let before_s = support::now_millis() / 1000;
    let refused = send(&function, &ada, "POST", Some("k2")).await;
    assert_limited(&refused, 1, before_s, support::now_millis() / 1000);
    let key = fixture
        .task_item(r##"idempotency-key#lambda:"ada"#k2"##)
        .await
        .expect("key record");
    assert_eq!(
        key["key_state"].as_s().unwrap(),
        "released",
        "a 4xx holds no key"
    );
    let refused = send(&function, &ada, "POST", None).await;
    assert_eq!(refused.status, 429);
    assert_eq!(lambda.invocations().len(), 1);
}

#[tokio::test]
async fn all_anonymous_callers_count_as_one() {
    within_one_minute(20).await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = fixture.function_with(&lambda.url, |config| {
        config.tasks_per_minute_per_caller = 1;
    });
    assert_eq!(
        send(&function, &Via::Anonymous, "POST", None).await.status,
        202
    );
    let alb = support::invoke(&function, &events::alb("POST", "/async", None))
        .await
        .expect("answer");
    assert_eq!(alb.status, 429, "{}", alb.body);
    let url = support::invoke(&function, &events::function_url("GET", "/async", None))
        .await
        .expect("answer");
    assert_eq!(url.status, 429, "{}", url.body);
    assert_eq!(
        send(&function, &Via::HttpIam("ada"), "POST", None)
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn zero_means_no_limit_and_no_counter() {
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let function = fixture.function_with(&lambda.url, |config| {
        config.tasks_per_minute_per_caller = 0;
    });
    for _ in 0..5 {
        assert_eq!(
            send(&function, &Via::Anonymous, "POST", None).await.status,
            202
        );
    }
    let ids: Vec<String> = items(&fixture).await.into_keys().collect();
    assert_eq!(ids.len(), 5);
    assert!(
        ids.iter().all(|id| async_api::tasks::is_task_id(id)),
        "{ids:?}"
    );
}

/// The counter write of the first start lands and its answer is lost, twice
/// over (answered 500 after it landed, then never answered at all): each
/// time the SDK's retry meets the write already made, and the start counts
/// once. With a limit of 2, a second task still starts, and a third is 429.
#[tokio::test]
async fn a_counter_write_that_lands_and_loses_its_answer_counts_its_start_once() {
    for fault in [Fault::ServerErrorAfterWrite, Fault::LoseAnswer] {
        within_one_minute(30).await;
        let lambda = FakeLambda::start(202).await;
        let fixture = Fixture::new(&lambda.url).await;
        let faulted = std::sync::atomic::AtomicBool::new(false);
        let proxy = FaultProxy::start(
            support::dynamodb_endpoint(),
            Box::new(move |seen| {
                let counter = seen.body["Key"]["task_id"]["S"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("tasks-per-minute#"));
                if counter && !faulted.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    fault
                } else {
                    Fault::Pass
                }
            }),
        )
        .await;
        let mut state =
            fixture.state_through(proxy.url(), &lambda.url, Duration::from_millis(400), 3);
        std::sync::Arc::make_mut(&mut state.config).tasks_per_minute_per_caller = 2;
        let function = Function::new(state);
        let ada = Via::HttpJwt("ada");
        for _ in 0..2 {
            let reply = send(&function, &ada, "POST", None).await;
            assert_eq!(reply.status, 202, "{fault:?}: {}", reply.body);
        }
        let counter_writes: Vec<_> = proxy
            .calls()
            .into_iter()
            .filter(|call| {
                call.item_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with("tasks-per-minute#"))
            })
            .collect();
        assert_eq!(
            counter_writes.iter().filter(|call| call.landed()).count(),
            3,
            "{fault:?}: the first start's write landed twice, the second's once: {counter_writes:?}"
        );
        let before_s = support::now_millis() / 1000;
        let refused = send(&function, &ada, "POST", None).await;
        assert_limited(&refused, 2, before_s, support::now_millis() / 1000);
        assert_eq!(lambda.invocations().len(), 2, "{fault:?}");
    }
}
