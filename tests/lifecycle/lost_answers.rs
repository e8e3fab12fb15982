//! Writes and calls whose answers are lost or come late, at the wire: every task still runs once, counted once.

use super::*;

/// A TCP proxy that passes every request on and loses every answer: each
/// call lands, and its caller times out.
async fn every_answer_losing_proxy(upstream: &str) -> String {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut from_client, _to_client) = client.split();
                let (mut from_server, mut to_server) = server.split();
                let mut lost = tokio::io::sink();
                let _ = tokio::join!(
                    tokio::io::copy(&mut from_client, &mut to_server),
                    tokio::io::copy(&mut from_server, &mut lost),
                );
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoke_whose_answer_was_lost_after_lambda_accepted_it_answers_503_and_the_task_never_runs()
 {
    let _turn = one_at_a_time().await;
    // Long enough for the SDK's three tries of the Invoke (6 s) inside the
    // request's own invocation.
    let api =
        RuntimeApi::start_with_async_semantics(test_function(), Duration::from_secs(10)).await;
    let fixture = Fixture::new(&api.url()).await;
    let lost = every_answer_losing_proxy(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_LAMBDA", &lost);
    let (one, two) = (command.clone().spawn(), command.spawn());

    let answer = http(&api, "POST", "/async", Some(r#"{"delay_ms": 0}"#), &[]).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "service_unavailable");
    let accepted = api.invoke_calls();
    assert!(!accepted.is_empty(), "Lambda accepted the event");
    let payload: Value = serde_json::from_slice(&accepted[0].payload).expect("JSON");
    let task_id = payload["task_id"].as_str().expect("task id").to_owned();
    assert!(
        accepted
            .iter()
            .all(|call| serde_json::from_slice::<Value>(&call.payload).expect("JSON") == payload),
        "the SDK's tries sent the same event"
    );
    assert_eq!(
        record(&api, &task_id).await,
        ended("failed", 0, json!(NOT_ENQUEUED))
    );
    // Every delivery of every copy of the event left the task alone, the
    // last one answering that it has ended.
    let reports = api.async_events();
    assert_eq!(reports.len(), accepted.len());
    for report in &reports {
        assert!(
            matches!(report.end, Some(EventEnd::Succeeded)),
            "{report:#?}"
        );
    }
    let last_answers: Vec<Outcome> = reports
        .iter()
        .map(|report| {
            events
                .iter()
                .filter(|e| e.request_id == report.request_id)
                .last()
                .expect("delivered")
                .outcome
                .clone()
        })
        .collect();
    assert!(
        last_answers
            .iter()
            .all(|a| *a == task_answer(&task_id, "failed", 0, true)),
        "{last_answers:#?}"
    );
    for delivery in &events {
        if delivery.outcome.clone() != task_answer(&task_id, "failed", 0, true) {
            assert_eq!(
                error_of(&delivery.outcome).0,
                "TaskNotEnqueued",
                "{delivery:#?}"
            );
        }
    }
    assert!(started_attempts(&all_lines(&[&one, &two]), &task_id).is_empty());
}

/// A function whose DynamoDB calls go through a fault proxy ruled by
/// `rule`, under Lambda's asynchronous semantics with invocations of
/// `timeout`, and a task enqueued for it.
pub(super) struct Faulted {
    pub(super) proxy: FaultProxy,
    pub(super) api: RuntimeApi,
    pub(super) fixture: Fixture,
    pub(super) function: FunctionProcess,
    pub(super) task_id: String,
}

pub(super) async fn faulted(rule: fault_proxy::Rule, timeout: Duration) -> Faulted {
    let proxy = FaultProxy::start(support::dynamodb_endpoint(), rule).await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), timeout).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture)
        .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
        .spawn();
    let task_id = fixture.enqueued_task().await;
    Faulted {
        proxy,
        api,
        fixture,
        function,
        task_id,
    }
}

/// A proxy rule: `fault` for the first DynamoDB call that `matches`, then
/// every call passes.
pub(super) fn first_call(
    matches: impl Fn(&fault_proxy::Seen<'_>) -> bool + Send + Sync + 'static,
    fault: Fault,
) -> fault_proxy::Rule {
    let done = AtomicUsize::new(0);
    Box::new(move |call| {
        if matches(call) && done.fetch_add(1, Ordering::SeqCst) == 0 {
            fault
        } else {
            Fault::Pass
        }
    })
}

fn update_contains(call: &fault_proxy::Seen<'_>, text: &str) -> bool {
    call.operation == "UpdateItem"
        && call.body["UpdateExpression"]
            .as_str()
            .is_some_and(|update| update.contains(text))
}

/// Whether a DynamoDB call is an attempt's write of kind `write` (one of
/// [`is_claim`], [`is_start`], [`is_release`], [`is_renewal`]).
pub(super) fn update_is(call: &fault_proxy::Seen<'_>, write: fn(&str) -> bool) -> bool {
    call.operation == "UpdateItem" && call.body["UpdateExpression"].as_str().is_some_and(write)
}

/// The claim (src/tasks/claims.rs): `running` under a new `claim_id` and
/// lease. It counts nothing.
pub(super) fn is_claim(update: &str) -> bool {
    update.contains("#status = :running") && update.contains("claim_id = :claim")
}

/// The start: counts the attempt (`attempts + 1`), once per claim (the claim
/// goes into `started_claims`, and a retried try of it is refused).
pub(super) fn is_start(update: &str) -> bool {
    update.contains("attempts = attempts + :one")
}

/// The release of a claim that cannot start: `queued` again, nothing counted
/// back.
pub(super) fn is_release(update: &str) -> bool {
    update.contains("#status = :queued") && !update.contains(":done")
}

/// A renewal of the lease.
pub(super) fn is_renewal(update: &str) -> bool {
    update == "SET lease_until = :lease"
}

/// Whether each of the proxy's calls of kind `write` on the task landed, in
/// the order they came.
pub(super) fn landed(proxy: &FaultProxy, task_id: &str, write: fn(&str) -> bool) -> Vec<bool> {
    proxy
        .calls()
        .iter()
        .filter(|call| {
            call.item_id.as_deref() == Some(task_id) && call.update.as_deref().is_some_and(write)
        })
        .map(|call| call.landed())
        .collect()
}

/// The task's writes as the proxy saw them, one a line, for a failure message.
pub(super) fn writes_of(proxy: &FaultProxy, task_id: &str) -> String {
    proxy
        .calls()
        .iter()
        .filter(|call| call.item_id.as_deref() == Some(task_id) && call.update.is_some())
        .map(|call| {
            format!(
                "{} {:?} claim {} lease {} -> {:?} at {:?} ({:?})",
                call.at_ms,
                call.update.as_deref().unwrap_or_default(),
                call.values[":claim"]["S"],
                call.values[":lease"]["N"],
                call.upstream_status,
                call.upstream_ms,
                call.fault
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_while_async_is_still_marking_its_task_enqueued_runs_the_task() {
    let _turn = one_at_a_time().await;
    // The claim is refused (not enqueued yet), its answer comes after /async
    // has marked the task: the delivery must claim again, not leave the task
    // queued as if another attempt held it.
    let rules = Arc::new(Mutex::new(0usize));
    let seen = rules.clone();
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(move |call| {
            if update_contains(call, "SET enqueued = :true") {
                return Fault::SlowRequest(Duration::from_millis(400));
            }
            if update_is(call, is_claim) {
                let mut claims = seen.lock().unwrap();
                *claims += 1;
                if *claims == 1 {
                    return Fault::SlowAnswer(Duration::from_millis(900));
                }
            }
            Fault::Pass
        }),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
    let (one, two) = (command.clone().spawn(), command.spawn());

    let task_id = start_task(&api, 100).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    assert_eq!(*rules.lock().unwrap(), 2, "refused once, then claimed");
    assert_eq!(started_attempts(&all_lines(&[&one, &two]), &task_id), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_answered_after_its_lease_lapsed_neither_starts_the_work_another_delivery_took_over_nor_counts_and_its_delivery_leaves_the_task_to_that_one()
 {
    let _turn = one_at_a_time().await;
    // The first claim lands at once but its answer comes 1.5 s later, long
    // after its 300 ms lease: a second delivery takes the task meanwhile.
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        first_call(
            |call| update_is(call, is_claim),
            Fault::SlowAnswer(Duration::from_millis(1500)),
        ),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
    let (one, two) = (command.clone().spawn(), command.spawn());
    let task_id = fixture.enqueued_task().await;
    let event = json!({"task_id": task_id, "delay_ms": 2000});

    let first = send_event(&api, &event).await;
    let sent = Instant::now();
    while !proxy
        .calls()
        .iter()
        .any(|call| call.update.as_deref().is_some_and(is_claim) && call.landed())
    {
        assert!(sent.elapsed() < Duration::from_secs(10), "no claim landed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = send_event(&api, &event).await;
    let events = api.wait_for_events(PATIENCE).await;

    // The late claim never started the work: its start is refused (the task
    // is the other claim's), so it counts nothing, and the one that took the
    // task over is attempt 1. Its delivery then ends without an error while
    // that attempt runs (an error would spend one of Lambda's retries, and
    // after the last one the failure record would fail the task under the
    // attempt running it): the task is left to the delivery that holds it,
    // whose own event Lambda still has (it would retry it, were it to fail).
    assert_eq!(
        outcomes(&events),
        [
            task_answer(&task_id, "running", 0, false),
            task_answer(&task_id, "succeeded", 1, false),
        ],
        "{}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(
        (events[0].request_id.as_str(), events[1].request_id.as_str()),
        (first.as_str(), second.as_str())
    );
    assert!(
        api.async_events()
            .iter()
            .all(|r| r.attempts.len() == 1 && matches!(r.end, Some(EventEnd::Succeeded))),
        "no retry, no destination"
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 2000));
    assert_eq!(landed(&proxy, &task_id, is_claim), [true, true]);
    assert_eq!(
        landed(&proxy, &task_id, is_start),
        [true, false],
        "the takeover's start counted, the late claim's was refused: {}",
        writes_of(&proxy, &task_id)
    );
    let lines = all_lines(&[&one, &two]);
    assert_eq!(started_attempts(&lines, &task_id), [1], "the work ran once");
    assert_eq!(lines_about(&lines, &task_id, "Task completed").len(), 1);
    assert_eq!(
        lines_about(
            &lines,
            &task_id,
            "the task ended elsewhere; this attempt's result is not recorded"
        )
        .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_write_that_landed_but_whose_answer_failed_completes_the_task_once() {
    let _turn = one_at_a_time().await;
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        first_call(
            |call| update_contains(call, ":done"),
            Fault::ServerErrorAfterWrite,
        ),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture)
        .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
        .spawn();

    let task_id = start_task(&api, 100).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    let finishes: Vec<bool> = proxy
        .calls()
        .iter()
        .filter(|call| call.update.as_deref().is_some_and(|u| u.contains(":done")))
        .map(|call| call.landed())
        .collect();
    assert_eq!(
        finishes,
        [true, false],
        "landed, then the SDK's retry refused"
    );
    let lines = all_lines(&[&function]);
    assert_eq!(
        lines_about(&lines, &task_id, "Task completed").len(),
        1,
        "the record says succeeded: the line says so"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_lambda_gave_up_on_stays_failed_when_another_copy_of_its_event_arrives() {
    let _turn = one_at_a_time().await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let function = command(&api, &fixture).spawn();
    let task_id = fixture.enqueued_task().await;
    let event = json!({"task_id": task_id, "delay_ms": 0});

    // Lambda's record of the event it gave up on, through the failure queue.
    let account = test_function().account;
    let attempts = vec![Answer::unhandled("Sandbox.Timedout", "timed out"); 3];
    let record_json = invocation_record(
        &account,
        FUNCTION_NAME,
        &uuid::Uuid::new_v4().to_string(),
        Condition::RetriesExhausted,
        event.to_string().as_bytes(),
        &attempts,
        async_invoke::epoch_millis(),
    );
    let message = QueueMessage::new(&record_json, FUNCTION_NAME);
    let sqs = sqs_event(&account, &message, 1, message.sent_timestamp_ms, "handle");
    assert_eq!(
        api.invoke(sqs.to_string()).await,
        Outcome::Response(json!({"batchItemFailures": []}))
    );
    // Another copy of the event, delivered after Lambda gave up on the first.
    let late = api.invoke(event.to_string()).await;

    assert_eq!(late, task_answer(&task_id, "failed", 0, true));
    let given_up = ended(
        "failed",
        0,
        json!("RetriesExhausted: Lambda gave up on the task event after 3 attempts"),
    );
    assert_eq!(record(&api, &task_id).await, given_up);
    assert!(started_attempts(&all_lines(&[&function]), &task_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueued_mark_that_landed_though_every_answer_failed_answers_202_and_the_task_runs_once()
 {
    let _turn = one_at_a_time().await;
    // Every try of the mark lands and is answered 500: /async cannot tell it
    // from a mark that failed until it tries to fail the task. The task is
    // enqueued and its event will run it, so the answer must not be 503.
    let proxy = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|call| {
            if update_contains(call, "SET enqueued = :true") {
                Fault::ServerErrorAfterWrite
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let api = RuntimeApi::start_with_async_semantics(test_function(), TIMEOUT).await;
    let fixture = Fixture::new(&api.url()).await;
    let command = command(&api, &fixture).env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
    let (one, two) = (command.clone().spawn(), command.spawn());

    let answer = http(&api, "POST", "/async", Some(r#"{"delay_ms": 100}"#), &[]).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(answer.status, 202, "{answer:?}");
    let task_id = answer.body["task_id"].as_str().expect("task id").to_owned();
    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    let marks = proxy
        .calls()
        .iter()
        .filter(|call| {
            call.update
                .as_deref()
                .is_some_and(|u| u.contains("SET enqueued"))
        })
        .count();
    assert_eq!(marks, 3, "the SDK's three tries, each landed");
    assert_eq!(started_attempts(&all_lines(&[&one, &two]), &task_id), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_past_its_lease_is_counted_once() {
    let _turn = one_at_a_time().await;
    // The SDK's retry of the claim comes after its 2 s attempt timeout, when
    // the claim's own 1 s lease has lapsed: it must not claim again (its
    // `:now_ms` is the first try's), and the read after it finds the claim its
    // own. The claim counted nothing: the start, with a fresh lease, counts
    // the attempt, once.
    let Faulted {
        proxy,
        api,
        fixture: _fixture,
        function,
        task_id,
    } = faulted(
        first_call(|call| update_is(call, is_claim), Fault::LoseAnswer),
        LONG_TIMEOUT,
    )
    .await;

    send_event(&api, &json!({"task_id": task_id, "delay_ms": 100})).await;
    let events = api.wait_for_events(PATIENCE).await;

    assert_eq!(
        outcomes(&events),
        [task_answer(&task_id, "succeeded", 1, false)]
    );
    assert_eq!(record(&api, &task_id).await, succeeded(1, 100));
    assert_eq!(
        landed(&proxy, &task_id, is_claim),
        [true, false],
        "the retry met its own claim: {}",
        writes_of(&proxy, &task_id)
    );
    assert_eq!(landed(&proxy, &task_id, is_start), [true], "counted once");
    assert_eq!(started_attempts(&all_lines(&[&function]), &task_id), [1]);
}
