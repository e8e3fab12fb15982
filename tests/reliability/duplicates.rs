//! Duplicate deliveries and load.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_deliveries_of_one_task_event_run_it_exactly_once() {
    let _turn = one_at_a_time().await;
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let (task_id, payload) = start_task(&fixture, &lambda, 300).await;

    let mut deliveries = JoinSet::new();
    for _ in 0..DUPLICATE_DELIVERIES {
        let function = fixture.function.clone();
        let payload = payload.clone();
        deliveries.spawn(async move { invoke(&function, &payload).await });
    }
    let outcomes: Vec<Value> = deliveries
        .join_all()
        .await
        .into_iter()
        .map(|outcome| outcome.expect("every delivery succeeds").body)
        .collect();

    let (ran, duplicates): (Vec<&Value>, Vec<&Value>) = outcomes
        .iter()
        .partition(|outcome| outcome["duplicate"] == json!(false));
    assert_eq!(
        ran,
        [&json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})],
        "exactly one delivery ran the task"
    );
    assert_eq!(duplicates.len(), DUPLICATE_DELIVERIES - 1);
    // A duplicate that finds the task running waits for that attempt's
    // outcome: it never ends as a success that leaves the task to another
    // attempt alone, so every duplicate saw it succeeded.
    for duplicate in duplicates {
        assert_eq!(
            duplicate,
            &json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": true})
        );
    }
    assert_eq!(
        task_status(&fixture, &task_id).await,
        ("succeeded".to_owned(), 1, Value::Null)
    );
    let reply = fixture
        .http("GET", &format!("/tasks/{task_id}"), None)
        .await;
    assert_eq!(reply.body["result"], json!({"waited_ms": 300}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_async_calls_each_get_a_task_that_succeeds_exactly_once() {
    let _turn = one_at_a_time().await;
    capture_logs();
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;

    let mut starts = JoinSet::new();
    for i in 0..CONCURRENT_STARTS {
        let function = fixture.function.clone();
        let body = json!({"delay_ms": i % 50}).to_string();
        starts.spawn(async move {
            invoke(&function, &events::http_api("POST", "/async", Some(&body)))
                .await
                .expect("an HTTP answer")
        });
    }
    let replies: Vec<Reply> = starts.join_all().await;
    let task_ids: HashSet<String> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, 202, "{}", reply.body);
            reply.body["task_id"].as_str().expect("task id").to_owned()
        })
        .collect();
    assert_eq!(
        task_ids.len(),
        CONCURRENT_STARTS,
        "every call got its own task"
    );

    // Every call enqueued exactly its own task's event.
    let payloads: Vec<String> = lambda
        .invocations()
        .iter()
        .map(|invocation| String::from_utf8(invocation.payload.to_vec()).expect("utf-8"))
        .collect();
    assert_eq!(payloads.len(), CONCURRENT_STARTS);
    let enqueued: HashSet<String> = payloads
        .iter()
        .map(|payload| {
            let event: Value = serde_json::from_str(payload).expect("task event");
            event["task_id"].as_str().expect("task id").to_owned()
        })
        .collect();
    assert_eq!(enqueued, task_ids);

    // Lambda delivers every event, each twice, all at once. A delivery that
    // gives its event back (a claim answered too late to start the work, or
    // a lease whose renewals a local DynamoDB busy with two hundred
    // deliveries answered too late, so that its attempt stopped and another
    // took the task over) is delivered again, as Lambda retries it, at most
    // twice.
    let mut deliveries = JoinSet::new();
    for payload in payloads.iter().chain(&payloads) {
        let function = fixture.function.clone();
        let payload = payload.clone();
        deliveries.spawn(async move {
            let mut given_back = Vec::new();
            loop {
                match invoke(&function, &payload).await {
                    Err(FunctionError::Task(
                        err @ (TaskError::LeaseTooShort(_)
                        | TaskError::HeldElsewhere(_)
                        | TaskError::Store(_)),
                    )) if given_back.len() < 2 => given_back.push(err.error_type()),
                    outcome => return (outcome, given_back),
                }
            }
        });
    }
    let mut given_back = Vec::new();
    let outcomes: Vec<Value> = deliveries
        .join_all()
        .await
        .into_iter()
        .map(|(outcome, back)| {
            given_back.extend(back);
            match outcome {
                Ok(reply) => reply.body,
                Err(err) => panic!("every delivery succeeds: {err}"),
            }
        })
        .collect();
    eprintln!("deliveries given back and delivered again: {given_back:?}");
    // Each task: a delivery that ran it to its end. (The other may have
    // waited for that outcome, or had its own attempt taken over.)
    let ran: HashSet<&str> = outcomes
        .iter()
        .filter(|o| o["status"] == "succeeded" && o["duplicate"] == json!(false))
        .filter_map(|o| o["task_id"].as_str())
        .collect();
    assert_eq!(ran.len(), CONCURRENT_STARTS, "every task ran");
    // Each task's work began once per attempt counted, one attempt after
    // another (a lease lost under load is taken over only once it ended),
    // and succeeded once.
    let mut attempts = HashMap::new();
    for task_id in &task_ids {
        let started = logged(task_id, "task started");
        let counted = started.len() as u64;
        assert!((1..=3).contains(&counted), "{task_id}: {started:?}");
        assert_eq!(
            started,
            (1..=counted).map(Some).collect::<Vec<_>>(),
            "{task_id}"
        );
        assert_eq!(logged(task_id, "Task completed").len(), 1, "{task_id}");
        attempts.insert(task_id.clone(), counted);
    }
    let taken_over = attempts.values().filter(|&&n| n > 1).count();
    eprintln!("tasks whose lease was lost and taken over: {taken_over}");

    // The table: exactly the hundred tasks, each succeeded on its first attempt.
    let items = fixture
        .dynamodb
        .scan()
        .table_name(&fixture.tasks_table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert_eq!(
        items.len(),
        CONCURRENT_STARTS,
        "nothing lost, nothing extra"
    );
    // Each with the result of its own work: what its own event asked for.
    let delays: HashMap<String, Value> = payloads
        .iter()
        .map(|payload| {
            let event: Value = serde_json::from_str(payload).expect("task event");
            let task_id = event["task_id"].as_str().expect("task id").to_owned();
            (task_id, event["delay_ms"].clone())
        })
        .collect();
    for item in &items {
        let result: Value = serde_json::from_str(&string(item, "result")).expect("JSON result");
        assert_eq!(
            (
                string(item, "status"),
                number(item, "attempts"),
                item.get("error"),
                result
            ),
            (
                "succeeded".to_owned(),
                attempts[&string(item, "task_id")],
                None,
                json!({"waited_ms": delays[&string(item, "task_id")]})
            ),
            "{item:?}"
        );
    }
    assert_eq!(lambda.invocations().len(), CONCURRENT_STARTS);
}
