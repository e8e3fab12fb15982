//! A task's metrics: its life counted and timed, failed attempts, final failures, the failure record, the cancel.

use super::*;

#[tokio::test]
async fn a_tasks_life_is_counted_and_timed_in_emf_documents() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();

    // A task that succeeds, enqueued by POST /async and run by its event.
    let started = api
        .invoke(events::http_api(
            "POST",
            "/async",
            Some(r#"{"delay_ms": 200}"#),
        ))
        .await;
    assert_eq!(status_of(&started), 202);
    let succeeding = body_of(&started)["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned();
    let delivered = api.wait_for_events(TASK_PATIENCE).await;
    assert_eq!(delivered.len(), 1);
    assert!(matches!(delivered[0].outcome, Outcome::Response(_)));

    // Lambda delivers the same event again: a duplicate, left alone.
    let again = api.invoke(events::task(&succeeding, 200)).await;
    let Outcome::Response(again) = again else {
        panic!("a duplicate delivery succeeds: {again:?}");
    };
    assert_eq!(again["duplicate"], true);

    // A task whose work fails its first attempt.
    let failing = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    queue_task(&store, &failing).await;
    let failed = api
        .invoke(json!({"task_id": failing, "delay_ms": 0, "fail_attempts": 1}).to_string())
        .await;
    assert!(
        matches!(&failed, Outcome::Error { error_type, .. } if error_type == "TaskFailed"),
        "{failed:?}"
    );
    let elapsed_ms = epoch_millis() - since_ms;

    let mut documents = stop_and_read(process, since_ms).await;
    assert_eq!(documents.len(), 8, "{documents:#?}");
    take_millis(&mut documents[3], "TaskQueuedMs", 0..=elapsed_ms);
    take_millis(&mut documents[4], "TaskRunMs", 200..=elapsed_ms);
    take_millis(&mut documents[6], "TaskQueuedMs", 0..=elapsed_ms);
    take_millis(&mut documents[7], "TaskRunMs", 0..=elapsed_ms);
    assert_eq!(
        documents,
        vec![
            cold_start(),
            task_count("TasksEnqueued", &succeeding),
            requests("/async", "2xx"),
            expected(
                &[],
                &[("TaskQueuedMs", "Milliseconds", json!("ms"))],
                &[("task_id", &succeeding)]
            ),
            expected(
                &[],
                &[
                    ("TasksSucceeded", "Count", json!(1)),
                    ("TaskRunMs", "Milliseconds", json!("ms"))
                ],
                &[("task_id", &succeeding)]
            ),
            task_count("TaskDuplicateDeliveries", &succeeding),
            expected(
                &[],
                &[("TaskQueuedMs", "Milliseconds", json!("ms"))],
                &[("task_id", &failing)]
            ),
            // Attempt 1 failed with a retry to come: the task is not failed.
            expected(
                &[],
                &[
                    ("TaskAttemptsFailed", "Count", json!(1)),
                    ("TaskRunMs", "Milliseconds", json!("ms"))
                ],
                &[("task_id", &failing)]
            ),
        ]
    );
}

#[tokio::test]
async fn a_retried_attempt_counts_its_run_but_not_a_second_queue_wait() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();
    let task_id = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    queue_task(&store, &task_id).await;

    // Lambda's retry of a failed event: the second attempt succeeds.
    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 1}).to_string();
    assert!(matches!(
        api.invoke(event.clone()).await,
        Outcome::Error { .. }
    ));
    assert!(matches!(api.invoke(event).await, Outcome::Response(_)));

    let mut documents = stop_and_read(process, since_ms).await;
    assert_eq!(
        metric_names(&documents),
        vec![
            vec!["ColdStart"],
            vec!["TaskQueuedMs"],
            vec!["TaskAttemptsFailed", "TaskRunMs"],
            vec!["TasksSucceeded", "TaskRunMs"],
        ]
    );
    take_millis(
        &mut documents[3],
        "TaskRunMs",
        0..=epoch_millis() - since_ms,
    );
    assert_eq!(
        documents[3],
        expected(
            &[],
            &[
                ("TasksSucceeded", "Count", json!(1)),
                ("TaskRunMs", "Milliseconds", json!("ms"))
            ],
            &[("task_id", &task_id)]
        )
    );
}

/// The names of the metrics of each document, in order.
fn metric_names(documents: &[Value]) -> Vec<Vec<&str>> {
    documents
        .iter()
        .map(|document| {
            document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .expect("Metrics")
                .iter()
                .map(|metric| metric["Name"].as_str().expect("Name"))
                .collect()
        })
        .collect()
}

/// A failed attempt's document: `TaskAttemptsFailed`, with `TasksFailed` when
/// the task failed for good, and the run's time ("ms").
fn attempt_failed(task_id: &str, for_good: bool) -> Value {
    let mut metrics = vec![("TaskAttemptsFailed", "Count", json!(1))];
    if for_good {
        metrics.push(("TasksFailed", "Count", json!(1)));
    }
    metrics.push(("TaskRunMs", "Milliseconds", json!("ms")));
    expected(&[], &metrics, &[("task_id", task_id)])
}

#[tokio::test]
async fn every_failed_attempt_counts_task_attempts_failed_and_only_the_last_tasks_failed() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();
    let task_id = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    queue_task(&store, &task_id).await;

    // Lambda's three attempts all fail; then a duplicate of the event comes.
    let event = json!({"task_id": task_id, "delay_ms": 0, "fail_attempts": 3}).to_string();
    for attempt in 1..=3 {
        let outcome = api.invoke(event.clone()).await;
        assert!(
            matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "TaskFailed"),
            "attempt {attempt}: {outcome:?}"
        );
    }
    let duplicate = api.invoke(event).await;
    assert!(matches!(duplicate, Outcome::Response(_)), "{duplicate:?}");

    let mut documents = stop_and_read(process, since_ms).await;
    let elapsed_ms = epoch_millis() - since_ms;
    assert_eq!(documents.len(), 6, "{documents:#?}");
    take_millis(&mut documents[1], "TaskQueuedMs", 0..=elapsed_ms);
    for document in &mut documents[2..5] {
        take_millis(document, "TaskRunMs", 0..=elapsed_ms);
    }
    assert_eq!(
        documents,
        vec![
            cold_start(),
            expected(
                &[],
                &[("TaskQueuedMs", "Milliseconds", json!("ms"))],
                &[("task_id", &task_id)]
            ),
            attempt_failed(&task_id, false),
            attempt_failed(&task_id, false),
            attempt_failed(&task_id, true),
            task_count("TaskDuplicateDeliveries", &task_id),
        ]
    );
}

#[tokio::test]
async fn work_that_fails_for_good_counts_tasks_failed_and_task_attempts_failed_once_each() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();
    let task_id = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    queue_task(&store, &task_id).await;

    let outcome = api
        .invoke(json!({"task_id": task_id, "delay_ms": 0, "fail_for_good": true}).to_string())
        .await;
    let Outcome::Response(outcome) = outcome else {
        panic!("work that fails for good is no function error: {outcome:?}");
    };
    assert_eq!(outcome["status"], "failed");

    let mut documents = stop_and_read(process, since_ms).await;
    let elapsed_ms = epoch_millis() - since_ms;
    assert_eq!(
        metric_names(&documents),
        vec![
            vec!["ColdStart"],
            vec!["TaskQueuedMs"],
            vec!["TaskAttemptsFailed", "TasksFailed", "TaskRunMs"],
        ]
    );
    take_millis(&mut documents[2], "TaskRunMs", 0..=elapsed_ms);
    assert_eq!(documents[2], attempt_failed(&task_id, true));
}

/// The failure queue's SQS event for Lambda's record of `event`, given up
/// on after three failed attempts.
fn failure_record_event(event: &str) -> String {
    use support::runtime_api::async_invoke::{
        self, Account, Answer, Condition, QueueMessage, invocation_record, sqs_event,
    };
    let attempts: Vec<Answer> = (1..=3)
        .map(|_| Answer::unhandled("TaskFailed", "the task failed"))
        .collect();
    let account = Account::default();
    let now = async_invoke::epoch_millis();
    let record = invocation_record(
        &account,
        FUNCTION_NAME,
        &uuid::Uuid::new_v4().to_string(),
        Condition::RetriesExhausted,
        event.as_bytes(),
        &attempts,
        now,
    );
    let message = QueueMessage::new(&record, FUNCTION_NAME);
    sqs_event(&account, &message, 1, now, "receipt-handle").to_string()
}

#[tokio::test]
async fn a_failure_record_that_fails_its_task_counts_tasks_failed_and_one_of_an_ended_task_nothing()
{
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture).spawn();
    let store = TaskStore {
        dynamodb: &support::dynamodb_client(support::dynamodb_endpoint()),
        table: &fixture.tasks_table,
    };
    // One task still queued (its event never ran), one that has ended.
    let given_up = uuid::Uuid::new_v4().to_string();
    queue_task(&store, &given_up).await;
    let ended = uuid::Uuid::new_v4().to_string();
    queue_task(&store, &ended).await;
    store
        .cancel(&ended, 0, &async_api::caller::Caller::Anonymous)
        .await
        .expect("cancel the ended task");

    for task_id in [&given_up, &ended] {
        let answer = api
            .invoke(failure_record_event(&events::task(task_id, 0)))
            .await;
        assert_eq!(
            answer,
            Outcome::Response(json!({"batchItemFailures": []})),
            "{task_id}"
        );
    }
    let failed = store
        .read(&given_up)
        .await
        .expect("read")
        .expect("the record");
    assert_eq!(failed.record.status, TaskStatus::Failed);

    // The task became failed, for good: counted once; the ended one not at all.
    assert_eq!(
        stop_and_read(process, since_ms).await,
        vec![cold_start(), task_count("TasksFailed", &given_up)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_is_counted_and_the_stopped_attempt_counts_only_its_run() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    // Two invocations at once: the task's, and the DELETE while it runs.
    let process = json_logging(&api, &fixture)
        .env("AWS_LAMBDA_MAX_CONCURRENCY", "2")
        .spawn();
    let dynamodb = support::dynamodb_client(support::dynamodb_endpoint());
    let store = TaskStore {
        dynamodb: &dynamodb,
        table: &fixture.tasks_table,
    };
    let task_id = uuid::Uuid::new_v4().to_string();
    queue_task(&store, &task_id).await;
    let running = api.submit(events::task(&task_id, 60_000));
    // Started: claimed, and its start write landed (the claim alone counts
    // nothing, and a cancel before the start leaves no attempt to time).
    while store
        .read(&task_id)
        .await
        .expect("read the task")
        .is_none_or(|stored| {
            stored.record.status != TaskStatus::Running || stored.record.attempts == 0
        })
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let canceled = api
        .invoke(events::http_api(
            "DELETE",
            &format!("/tasks/{task_id}"),
            None,
        ))
        .await;
    assert_eq!(status_of(&canceled), 200);
    let stopped = running.outcome().await;
    assert!(matches!(stopped, Outcome::Response(_)), "{stopped:?}");

    let mut documents = stop_and_read(process, since_ms).await;
    let elapsed_ms = epoch_millis() - since_ms;
    assert_eq!(documents.len(), 5, "{documents:#?}");
    // The stopped attempt's document comes when it notices the cancel; the
    // others come in order, each invocation's own in sequence.
    let run_at = documents
        .iter()
        .position(|document| document.get("TaskRunMs").is_some())
        .unwrap_or_else(|| panic!("no TaskRunMs: {documents:#?}"));
    let mut run = documents.remove(run_at);
    take_millis(&mut run, "TaskRunMs", 0..=elapsed_ms);
    // Neither TasksSucceeded nor TasksFailed: the record says canceled.
    assert_eq!(
        run,
        expected(
            &[],
            &[("TaskRunMs", "Milliseconds", json!("ms"))],
            &[("task_id", &task_id)]
        )
    );
    take_millis(&mut documents[1], "TaskQueuedMs", 0..=elapsed_ms);
    assert_eq!(
        documents,
        vec![
            cold_start(),
            expected(
                &[],
                &[("TaskQueuedMs", "Milliseconds", json!("ms"))],
                &[("task_id", &task_id)]
            ),
            task_count("TasksCanceled", &task_id),
            requests("/tasks/{task_id}", "2xx"),
        ]
    );
}
