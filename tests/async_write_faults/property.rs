//! The property over every write and fault, and the findings at the wire: a request that outlives its key's hold, a process that dies between the Invoke and its answer.

use super::*;

/// Runs every case of the enumeration with the events delivered in `order`:
/// the fault-free request first (its writes set k's range), then both
/// DynamoDB fault kinds for k = 1..=writes, then the `Invoke`'s lost answers
/// on 1, 2 and 3 of the SDK's tries; fails with every broken promise.
async fn property_holds(order: Order) {
    let baseline = run_case(Kind::None, order).await;
    let writes = baseline.first_writes.len();
    eprintln!(
        "a fault-free keyed POST makes {writes} DynamoDB writes: {:#?}",
        baseline.first_writes
    );
    assert!(writes >= 3, "{:#?}", baseline.first_writes);
    let mut kinds = Vec::new();
    for from_write in 1..=writes {
        kinds.push(Kind::Throttled { from_write });
    }
    for from_write in 1..=writes {
        kinds.push(Kind::AnswerLost { from_write });
    }
    for tries in 1..=3 {
        kinds.push(Kind::InvokeAnswerLost { tries });
    }
    let mut runs = vec![baseline];
    for kind in kinds {
        let run = run_case(kind, order).await;
        eprintln!("{}", run.summary());
        eprint!("{}", run.trace());
        runs.push(run);
    }
    eprintln!("\nsummary ({} cases):", runs.len());
    for run in &runs {
        eprintln!("  {}", run.summary());
    }
    assert_no_violations(&runs);
}

/// The property, in its order: the retries, then the deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_async_under_any_write_fault_starts_at_most_one_task_which_is_the_one_its_retries_answer_and_never_one_told_5xx()
 {
    let _turn = one_at_a_time().await;
    property_holds(Order::RetryThenDeliver).await;
}

/// The same property with Lambda delivering the first request's events
/// before the retry, as in AWS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_async_under_any_write_fault_starts_at_most_one_task_which_is_the_one_its_retries_answer_also_when_lambda_delivers_before_the_retry()
 {
    let _turn = one_at_a_time().await;
    property_holds(Order::DeliverThenRetry).await;
}

// ---------------------------------------------------------------------------
// The findings, and a request that outlives its key's hold
// ---------------------------------------------------------------------------

/// A rule that gives `fault` to every call `picks` until the plan heals.
fn until_healed(
    picks: impl Fn(&Seen<'_>) -> Option<Fault> + Send + Sync + 'static,
) -> (Rule, Arc<Plan>) {
    let plan = Arc::new(Plan::default());
    let healed = plan.clone();
    let rule: Rule = Box::new(move |seen| {
        if healed.healed.load(Ordering::SeqCst) {
            return Fault::Pass;
        }
        picks(seen).unwrap_or(Fault::Pass)
    });
    (rule, plan)
}

fn is_key_record(seen: &Seen<'_>) -> bool {
    ["Key", "Item"].iter().any(|part| {
        seen.body[part]["task_id"]["S"]
            .as_str()
            .is_some_and(|id| id.starts_with(KEY_RECORD))
    })
}

/// The calls of the first request (before the heal) that `matches`.
fn first_calls(run: &Run, matches: impl Fn(&Call) -> bool) -> Vec<&Call> {
    run.calls[..run.calls_before_heal]
        .iter()
        .filter(|call| matches(call))
        .collect()
}

fn updates(call: &Call, text: &str) -> bool {
    call.update.as_deref().is_some_and(|u| u.contains(text))
}

/// Issue 15's first finding: the enqueued mark lands but every answer to it
/// is lost, the write that would fail the task is refused (the task is
/// marked) and the read that would settle it loses its answer too. The
/// function cannot tell, so it answers 202, and the task runs, once; a retry
/// replays that task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_that_landed_unanswered_whose_undo_was_refused_and_whose_settling_read_was_lost_answers_202_and_the_task_runs_once()
 {
    let _turn = one_at_a_time().await;
    let rule = until_healed(|seen| {
        let marks = seen.operation == "UpdateItem" && update_has(seen, "SET enqueued = :true");
        let settles = seen.operation == "GetItem" && !is_key_record(seen);
        (marks || settles).then_some(Fault::LoseAnswer)
    });
    let run = run_with(
        "mark landed, answers lost".to_owned(),
        Kind::None,
        Some(rule),
        First::Plain,
        Order::RetryThenDeliver,
    )
    .await;
    eprint!("{}", run.trace());
    assert_no_violations(std::slice::from_ref(&run));
    let task_id = run.answers[0].task_id.clone().expect("202 with a task");
    assert_eq!(run.answers[0].status, 202);
    // It went as the issue tells it.
    let marks = first_calls(&run, |c| updates(c, "SET enqueued = :true"));
    assert!(marks.iter().all(|c| c.landed()), "{marks:#?}");
    assert!(!marks.is_empty());
    let undo = first_calls(&run, |c| {
        updates(c, ":failed") && c.item_id.as_deref() == Some(task_id.as_str())
    });
    assert!(
        !undo.is_empty() && undo.iter().all(|c| c.upstream_status == Some(400)),
        "mark_not_enqueued refused by its condition: {undo:#?}"
    );
    let settles = first_calls(&run, |c| {
        c.operation == "GetItem" && c.item_id.as_deref() == Some(task_id.as_str())
    });
    assert!(!settles.is_empty(), "a settling read was made");
    assert_eq!(run.events, std::slice::from_ref(&task_id));
    assert_eq!(run.answers[1].what, "retry");
    assert!(run.answers[1].replayed, "the key was answered: a replay");
}

/// Issue 15's second finding: the write of the key's answer is throttled
/// through every one of the SDK's tries. The caller has its 202; the key
/// stays held; a retry within the hold is a 409, and one after it answers the
/// same task, without a second `Invoke` or a second task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_answer_write_was_throttled_through_the_sdks_retries_answers_the_same_task_after_the_hold_and_starts_no_second()
 {
    let _turn = one_at_a_time().await;
    let rule = until_healed(|seen| {
        let answers = seen.operation == "UpdateItem"
            && is_key_record(seen)
            && update_has(seen, "key_state = :answered");
        answers.then_some(Fault::Throttle)
    });
    let run = run_with(
        "key answer throttled".to_owned(),
        Kind::None,
        Some(rule),
        First::Plain,
        Order::RetryThenDeliver,
    )
    .await;
    eprint!("{}", run.trace());
    assert_no_violations(std::slice::from_ref(&run));
    let throttled = first_calls(&run, |c| {
        c.fault == Fault::Throttle && updates(c, "key_state = :answered")
    });
    assert!(throttled.len() >= 2, "the SDK tried again: {throttled:#?}");
    let task_id = run.answers[0].task_id.clone().expect("202 with a task");
    let answered: Vec<(&str, u16, Option<&str>)> = run
        .answers
        .iter()
        .map(|a| (a.what, a.status, a.task_id.as_deref()))
        .collect();
    assert_eq!(
        answered,
        [
            ("first request", 202, Some(task_id.as_str())),
            ("retry within the hold", 409, None),
            ("retry after the hold", 202, Some(task_id.as_str())),
            ("replay", 202, Some(task_id.as_str())),
        ]
    );
    assert_eq!(run.events, [task_id], "no second Invoke");
}

/// Issue 15's third finding: the process dies between the `Invoke`, which
/// Lambda accepted, and its answer: no mark, no answer for the key. A retry
/// within the hold is a 409; one after it carries the same task on (sends its
/// event again, marks it) and answers it; the task runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_process_died_between_the_invoke_and_its_answer_is_carried_on_by_a_retry_after_the_hold_with_the_same_task()
 {
    let _turn = one_at_a_time().await;
    let run = died_after_invoke(Order::RetryThenDeliver).await;
    let task_id = run.events[0].clone();
    assert_eq!(
        run.events,
        [task_id.clone(), task_id],
        "the dead request's event, and the retry's"
    );
}

/// The same, with Lambda delivering the dead request's event before the
/// retry, as it would in AWS (within seconds; the retry comes after the
/// key's 30 s hold): the delivery marks the task its request can no longer
/// mark once that request is over and runs it, and the retry must answer
/// that task ("every later
/// request with that key and body answers that task, whatever failed on the
/// way: ... a process that died between the `Invoke` and its answer",
/// API.md), not start another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_process_died_after_the_invoke_is_answered_with_its_task_also_when_lambda_delivered_it_before_the_retry()
 {
    let _turn = one_at_a_time().await;
    died_after_invoke(Order::DeliverThenRetry).await;
}

/// Runs the died-after-`Invoke` case in `order` and checks its answers: the
/// retry after the hold and the replay answer the task of the dead
/// request's event.
async fn died_after_invoke(order: Order) -> Run {
    let run = run_with(
        format!("process died after the Invoke · {}", order.name()),
        Kind::None,
        None,
        First::DiesAfterInvoke,
        order,
    )
    .await;
    eprint!("{}", run.trace());
    let task_id = run.events[0].clone();
    let answered: Vec<(&str, u16, Option<&str>)> = run
        .answers
        .iter()
        .map(|a| (a.what, a.status, a.task_id.as_deref()))
        .collect();
    assert_eq!(
        answered,
        [
            ("first request (its process died after the Invoke)", 0, None),
            ("retry within the hold", 409, None),
            ("retry after the hold", 202, Some(task_id.as_str())),
            ("replay", 202, Some(task_id.as_str())),
        ],
        "{}",
        run.trace()
    );
    assert_no_violations(std::slice::from_ref(&run));
    run
}

/// The same promise for a request that is alive but outlives its key's hold
/// (API Gateway has answered its client 504 at 30 s): the retry that takes
/// the key over carries its task on, the late request then answers that task
/// too, and it runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlives_its_keys_hold_and_the_retry_that_takes_the_key_over_answer_one_task_that_runs_once()
 {
    let _turn = one_at_a_time().await;
    let run = run_with(
        "request outlives the hold".to_owned(),
        Kind::None,
        None,
        First::OutlivesHold,
        Order::RetryThenDeliver,
    )
    .await;
    eprint!("{}", run.trace());
    assert_no_violations(std::slice::from_ref(&run));
    let task_id = run.events[0].clone();
    let answered: Vec<(&str, u16, Option<&str>)> = run
        .answers
        .iter()
        .map(|a| (a.what, a.status, a.task_id.as_deref()))
        .collect();
    assert_eq!(
        answered,
        [
            ("first request", 202, Some(task_id.as_str())),
            ("retry after the hold", 202, Some(task_id.as_str())),
            ("replay", 202, Some(task_id.as_str())),
        ]
    );
    assert_eq!(run.events, [task_id.clone(), task_id]);
}

/// The model's counterexample to "a task whose caller got a 5xx never starts
/// its work" (crates/task-model, `deep_one_key` with one failed call), at the
/// wire: a keyed request writes its task's record, every answer to that
/// write is lost, and meanwhile its key's hold ends and a retry takes the key
/// over, finds the record and carries the task on. The first request cannot
/// then tell whether its task runs (its release of the key is refused): it
/// answers 202 with that task, as the retry does, never 503, and the task
/// runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_record_write_lost_its_answers_while_a_retry_took_its_key_over_answers_202_with_the_task_that_runs_once()
 {
    let _turn = one_at_a_time().await;
    capture_logs();
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    // Every try of a task record's write lands and loses its answer.
    let proxy = record_answers_lost(|_| Fault::Pass).await;
    let function = function_through(&fixture, proxy.url(), &lambda.url, ATTEMPT_TIMEOUT);
    let key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let first = tokio::spawn({
        let (function, key) = (function.clone(), key.clone());
        async move { post(&function, &key).await }
    });
    // The record's first try has landed: the first request waits on it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy.calls().iter().any(|call| {
        call.operation == "PutItem"
            && call
                .item_id
                .as_deref()
                .is_some_and(|id| uuid::Uuid::try_parse(id).is_ok())
    }) {
        assert!(
            Instant::now() < deadline,
            "no record write: {:#?}",
            proxy.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    end_hold(&fixture, &key).await;
    let retry = post(&fixture.function, &key).await;
    let first = first.await.expect("the first request answers");

    let task_id = retry.body["task_id"]
        .as_str()
        .expect("the retry's task")
        .to_owned();
    assert_eq!(retry.status, 202, "{}", retry.body);
    assert_eq!(
        (first.status, first.body["task_id"].as_str()),
        (202, Some(task_id.as_str())),
        "the first request: {}",
        first.body
    );
    let invocations = lambda.invocations();
    assert_eq!(invocations.len(), 1, "one event, the retry's");
    let delivered = deliver_all(&fixture.function, &invocations).await;
    assert_eq!(
        delivered,
        [
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
                .to_string()
        ]
    );
    assert_eq!(starts(&task_id), 1, "the work ran once");
    proxy.settle(Duration::from_secs(5)).await;
}

/// Found on the model's one-key paths (crates/task-model replays it): the
/// record's write lands and loses its answers, the release of the key never
/// lands and the key, read, is still the request's. Unfailed, the record
/// would be resumed by a retry that takes the key over after its hold, and a
/// task told 503 would run; failed first, the 503 is safe and the retry gets
/// a new task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_whose_key_release_never_landed_fails_its_task_before_its_503_and_a_retry_runs_a_new_one()
 {
    let _turn = one_at_a_time().await;
    capture_logs();
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    // And every try of the key's release is throttled: it never lands.
    let proxy = record_answers_lost(|seen| {
        let key = seen.body["Key"]["task_id"]["S"].as_str().unwrap_or("");
        if key.starts_with(KEY_RECORD) && update_has(seen, "key_state = :released") {
            Fault::Throttle
        } else {
            Fault::Pass
        }
    })
    .await;
    let function = function_through(&fixture, proxy.url(), &lambda.url, ATTEMPT_TIMEOUT);
    let key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let first = post(&function, &key).await;
    assert_eq!(first.status, 503, "{}", first.body);
    assert!(
        lambda.invocations().is_empty(),
        "no event for the first task"
    );
    let first_task = proxy
        .calls()
        .iter()
        .filter(|call| call.operation == "PutItem")
        .find_map(|call| {
            call.item_id
                .clone()
                .filter(|id| uuid::Uuid::try_parse(id).is_ok())
        })
        .expect("the first task's record write");
    let record = fixture.task_item(&first_task).await.expect("its record");
    assert_eq!(
        (text(&record, "status"), text(&record, "enqueued")),
        (Some("failed".to_owned()), Some("false".to_owned())),
        "the task told 503 can never be claimed"
    );

    end_hold(&fixture, &key).await;
    let retry = post(&fixture.function, &key).await;
    assert_eq!(retry.status, 202, "{}", retry.body);
    let task_id = retry.body["task_id"].as_str().expect("the retry's task");
    assert_ne!(task_id, first_task, "a new task, not the one told 503");
    let delivered = deliver_all(&fixture.function, &lambda.invocations()).await;
    assert_eq!(
        delivered,
        [
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
                .to_string()
        ]
    );
    assert_eq!(starts(&first_task), 0, "the task told 503 never ran");
    proxy.settle(Duration::from_secs(5)).await;
}

/// A proxy to the local DynamoDB where every try of a task record's write
/// lands and loses its answer, and any other call meets `otherwise`.
async fn record_answers_lost(
    otherwise: impl Fn(&Seen<'_>) -> Fault + Send + Sync + 'static,
) -> FaultProxy {
    FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(move |seen: &Seen<'_>| {
            let item = seen.body["Item"]["task_id"]["S"].as_str().unwrap_or("");
            if seen.operation == "PutItem" && uuid::Uuid::try_parse(item).is_ok() {
                Fault::LoseAnswer
            } else {
                otherwise(seen)
            }
        }),
    )
    .await
}

/// Found by the model (`deep_one_key_two_lost_answers`; crates/task-model
/// replays it): a first request answered 202, its task enqueued and run, but
/// its key's answer never written (throttled through the SDK's tries), so the
/// key stays in progress past its hold. A retry takes the key over: that
/// write lands and loses its answer, the SDK's next try is refused, and the
/// key, read, is the retry's own, naming the first request's task. Then every
/// answer to the task record's write is lost. Carried on as a task of its own,
/// the retry released the key and answered 503 for a task that ran; adopted,
/// as a takeover's task is, it reads the task, enqueued, and answers 202 with
/// it, with no second event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_whose_takeover_lost_its_answer_answers_202_with_the_keys_task_that_ran_never_503()
{
    let _turn = one_at_a_time().await;
    capture_logs();
    let lambda = FakeLambda::start(202).await;
    let fixture = Fixture::new(&lambda.url).await;
    let answer_throttled = FaultProxy::start(
        support::dynamodb_endpoint(),
        Box::new(|seen: &Seen<'_>| {
            if seen.operation == "UpdateItem"
                && is_key_record(seen)
                && update_has(seen, "key_state = :answered")
            {
                Fault::Throttle
            } else {
                Fault::Pass
            }
        }),
    )
    .await;
    let key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let first_function = function_through(
        &fixture,
        answer_throttled.url(),
        &lambda.url,
        ATTEMPT_TIMEOUT,
    );
    let first = post(&first_function, &key).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let task_id = first.body["task_id"].as_str().expect("its task").to_owned();
    let delivered = deliver_all(&fixture.function, &lambda.invocations()).await;
    assert_eq!(
        delivered,
        [
            json!({"task_id": task_id, "status": "succeeded", "attempts": 1, "duplicate": false})
                .to_string()
        ]
    );
    end_hold(&fixture, &key).await;

    // The first try of the takeover loses its answer; every try of the
    // task record's write too.
    let takeover_tried = Arc::new(AtomicBool::new(false));
    let proxy = record_answers_lost({
        let tried = takeover_tried.clone();
        move |seen| {
            let takeover = seen.operation == "UpdateItem"
                && is_key_record(seen)
                && update_has(seen, "reservation = :mine");
            if takeover && !tried.swap(true, Ordering::SeqCst) {
                Fault::LoseAnswer
            } else {
                Fault::Pass
            }
        }
    })
    .await;
    let function = function_through(&fixture, proxy.url(), &lambda.url, ATTEMPT_TIMEOUT);
    let retry = post(&function, &key).await;
    let calls = proxy.calls();
    let takeovers: Vec<&Fault> = calls
        .iter()
        .filter(|call| updates(call, "reservation = :mine"))
        .map(|call| &call.fault)
        .collect();
    assert_eq!(
        takeovers,
        [&Fault::LoseAnswer, &Fault::Pass],
        "the takeover lost its answer, then its next try was refused"
    );
    assert!(
        calls.iter().any(|call| call.operation == "PutItem"
            && call.item_id.as_deref() == Some(task_id.as_str())
            && call.fault == Fault::LoseAnswer),
        "the record's write lost its answer: {calls:#?}"
    );
    assert_eq!(
        (retry.status, retry.body["task_id"].as_str()),
        (202, Some(task_id.as_str())),
        "the retry: {}",
        retry.body
    );
    assert_eq!(lambda.invocations().len(), 1, "no second event");
    assert_eq!(starts(&task_id), 1, "the work ran once");
    proxy.settle(Duration::from_secs(5)).await;
    answer_throttled.settle(Duration::from_secs(5)).await;
}
