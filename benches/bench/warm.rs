//! Warm latency: `/users` pages and `/async` through a running process, and
//! the bare calls `/async` makes, for comparison.

use super::*;
use async_api::tasks::protocol::Wrote;

pub(crate) struct Warm {
    pub(crate) latency: Vec<Duration>,
    pub(crate) cpu_per_call: Duration,
    /// Minor page faults per call.
    pub(crate) faults_per_call: f64,
    pub(crate) usage: Usage,
}

/// Warm `/users` with a 1,000-item page through the function, the I/O floor
/// and the hello floor, one invocation of each a round.
pub(crate) async fn warm_users(settings: &Settings, fixture: &Fixture) -> Vec<(Binary, Warm)> {
    let mut instances = Vec::new();
    for binary in [Binary::Function, Binary::IoFloor, Binary::HelloFloor] {
        instances.push(Instance::start(binary, fixture, &page_env(WARM_PAGE)).await);
    }
    let event = users_event(WARM_PAGE);
    let mut pages = Vec::new();
    for instance in &instances {
        let mut last = None;
        for _ in 0..20 {
            let (_, outcome) = instance.invoke(&event).await;
            check_page(instance.binary, &outcome, WARM_PAGE);
            last = Some(outcome);
        }
        pages.push(last.map(|outcome| http_answer(&outcome).1));
    }
    // The I/O floor's page is the function's, users and cursor alike.
    assert_eq!(
        pages[0], pages[1],
        "the I/O floor's page differs from the function's"
    );
    let before: Vec<Usage> = instances.iter().map(|i| usage(&i.process)).collect();
    let mut latency = vec![Vec::with_capacity(settings.warm_runs); instances.len()];
    // The function and the I/O floor swap places every round, the hello floor
    // last: each of the two then follows the other in half the rounds and the
    // hello floor in the other half. What ran just before a process leaves
    // the caches the two share (libc's code, the kernel's) warm or cold for
    // it, so an order in which one follows the other more often is a bias:
    // rounds that each started with the next binary had the I/O floor follow
    // the function twice as often as the function followed the I/O floor.
    for round in 0..settings.warm_runs {
        let order = if round % 2 == 0 { [0, 1, 2] } else { [1, 0, 2] };
        for at in order {
            let (elapsed, outcome) = instances[at].invoke(&event).await;
            check_page(instances[at].binary, &outcome, WARM_PAGE);
            latency[at].push(elapsed);
        }
    }
    let mut results = Vec::new();
    for ((instance, samples), before) in instances.into_iter().zip(latency).zip(before) {
        let binary = instance.binary;
        let usage = instance.stop().await;
        let faults = usage.minor_faults.saturating_sub(before.minor_faults);
        results.push((
            binary,
            Warm {
                latency: samples,
                cpu_per_call: (usage.cpu.saturating_sub(before.cpu)) / settings.warm_runs as u32,
                faults_per_call: faults as f64 / settings.warm_runs as f64,
                usage,
            },
        ));
    }
    results
}

pub(crate) struct AsyncRun {
    pub(crate) function: Vec<Duration>,
    /// `POST /async` with a fresh `Idempotency-Key` each time.
    pub(crate) with_key: Vec<Duration>,
    /// `DELETE /tasks/{task_id}` of a queued task.
    pub(crate) cancel: Vec<Duration>,
    /// `POST /async` from a JWT caller: its task owned, its start counted
    /// against `TASKS_PER_MINUTE_PER_CALLER` (the counter write).
    pub(crate) as_caller: Vec<Duration>,
    /// `GET /tasks?limit=20` of that caller (a Query of the owner index).
    pub(crate) list: Vec<Duration>,
    pub(crate) peak_rss_kib: u64,
    pub(crate) bare_invoke: Vec<Duration>,
    pub(crate) bare_put_item: Vec<Duration>,
    /// The `UpdateItem` that marks a task record enqueued.
    pub(crate) bare_update_item: Vec<Duration>,
}

/// An HTTP API event with an extra request header.
fn with_header(event: &str, name: &str, value: &str) -> String {
    let mut event: Value = serde_json::from_str(event).expect("event JSON");
    event["headers"][name] = Value::String(value.to_owned());
    event.to_string()
}

/// `POST /async` through the function (each task event is let run before the
/// next request, so every request finds the process idle), with and without
/// an `Idempotency-Key`, and `DELETE /tasks/{task_id}`, beside the three calls
/// of `/async` made bare from here: `PutItem` of a task record, `Invoke`
/// (`Event`) to the emulator and the `UpdateItem` that marks it enqueued.
pub(crate) async fn warm_async(settings: &Settings, fixture: &Fixture) -> AsyncRun {
    let instance = Instance::start(Binary::Function, fixture, &[]).await;
    let event = events::http_api("POST", "/async", Some(r#"{"delay_ms": 0}"#));
    let mut function = Vec::with_capacity(settings.warm_runs);
    for run in 0..settings.warm_runs + 20 {
        let (elapsed, outcome) = instance.invoke(&event).await;
        let (status, body) = http_answer(&outcome);
        assert_eq!(status, 202, "POST /async: {body}");
        instance.api.wait_for_events(Duration::from_secs(30)).await;
        if run >= 20 {
            function.push(elapsed);
        }
    }
    let mut with_key = Vec::with_capacity(settings.warm_runs);
    let mut cancel = Vec::with_capacity(settings.warm_runs);
    for run in 0..settings.warm_runs + 20 {
        let keyed = with_header(&event, "idempotency-key", &uuid::Uuid::new_v4().to_string());
        let (elapsed, outcome) = instance.invoke(&keyed).await;
        let (status, body) = http_answer(&outcome);
        assert_eq!(status, 202, "POST /async with a key: {body}");
        instance.api.wait_for_events(Duration::from_secs(30)).await;
        // A task to cancel: recorded queued, its event never sent.
        let task_id = uuid::Uuid::new_v4().to_string();
        TaskStore {
            dynamodb: &fixture.dynamodb,
            table: &fixture.tasks_table,
        }
        .put_queued(&task_id, support::now_millis())
        .await
        .expect("PutItem task record");
        let delete = events::http_api("DELETE", &format!("/tasks/{task_id}"), None);
        let (canceled, outcome) = instance.invoke(&delete).await;
        let (status, body) = http_answer(&outcome);
        assert_eq!(status, 200, "DELETE /tasks: {body}");
        if run >= 20 {
            with_key.push(elapsed);
            cancel.push(canceled);
        }
    }
    let caller = support::callers::Via::HttpJwt("bench");
    let owned = caller.event("POST", "/async", Some(r#"{"delay_ms": 0}"#));
    let list = caller.event("GET", "/tasks?limit=20", None);
    let mut as_caller = Vec::with_capacity(settings.warm_runs);
    let mut listed = Vec::with_capacity(settings.warm_runs);
    for run in 0..settings.warm_runs + 20 {
        let (elapsed, outcome) = instance.invoke(&owned).await;
        let (status, body) = http_answer(&outcome);
        assert_eq!(status, 202, "POST /async as a caller: {body}");
        instance.api.wait_for_events(Duration::from_secs(30)).await;
        let (listing, outcome) = instance.invoke(&list).await;
        let (status, body) = http_answer(&outcome);
        assert_eq!(status, 200, "GET /tasks: {body}");
        if run >= 20 {
            as_caller.push(elapsed);
            listed.push(listing);
        }
    }
    let peak_rss_kib = instance.stop().await.peak_rss_kib;

    // An emulator with no function behind it: the events only queue up.
    let api = RuntimeApi::start(test_function()).await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        async_api::lambda_config(&support::sdk_config())
            .endpoint_url(api.url())
            .build(),
    );
    let dynamodb = support::dynamodb_client(dynamodb_endpoint());
    let mut bare_invoke = Vec::with_capacity(settings.warm_runs);
    let mut bare_put_item = Vec::with_capacity(settings.warm_runs);
    let mut bare_update_item = Vec::with_capacity(settings.warm_runs);
    for run in 0..settings.warm_runs + 20 {
        let task_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        TaskStore {
            dynamodb: &dynamodb,
            table: &fixture.tasks_table,
        }
        .put_queued(&task_id, support::now_millis())
        .await
        .expect("PutItem task record");
        let put = started.elapsed();
        let started = Instant::now();
        lambda
            .invoke()
            .function_name(support::FUNCTION_NAME)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(events::task(&task_id, 0)))
            .send()
            .await
            .expect("bare Invoke");
        let invoke = started.elapsed();
        let started = Instant::now();
        let marked = TaskStore {
            dynamodb: &dynamodb,
            table: &fixture.tasks_table,
        }
        .mark_enqueued(&task_id)
        .await;
        assert_eq!(marked, Wrote::Done, "UpdateItem task record");
        let update = started.elapsed();
        if run >= 20 {
            bare_put_item.push(put);
            bare_invoke.push(invoke);
            bare_update_item.push(update);
        }
    }
    AsyncRun {
        function,
        with_key,
        cancel,
        as_caller,
        list: listed,
        peak_rss_kib,
        bare_invoke,
        bare_put_item,
        bare_update_item,
    }
}
