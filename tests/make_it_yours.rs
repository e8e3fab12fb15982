//! "Make it yours" (README): a second, real work beside the stand-in, written
//! the way a user replaces `perform` in `src/tasks/work.rs`. It counts the
//! users table through the DynamoDB client the work is given, one Scan page
//! at a time, stops when the task is canceled or its time runs out, and says
//! whether a failure is worth a retry. The tests run it as the worker would,
//! against the local DynamoDB.

mod support;

use std::time::{Duration, Instant};

use async_api::tasks::TaskEvent;
use async_api::tasks::work::{Canceled, Work, WorkFailure};
use aws_sdk_dynamodb::types::Select;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The work: `{"users": <count>}` of the users table.
async fn count_users(work: Work) -> Result<Value, WorkFailure> {
    let dynamodb = &work.state.dynamodb;
    let table = &work.state.config.users_table;
    let mut users = 0;
    let mut start_key = None;
    loop {
        if work.canceled.is_canceled() {
            return Err(WorkFailure::Retry("canceled".to_owned()));
        }
        if work.time_left() < Duration::from_millis(500) {
            return Err(WorkFailure::Retry(
                "out of time: a retry starts over".to_owned(),
            ));
        }
        let page = dynamodb
            .scan()
            .table_name(table)
            .select(Select::Count)
            .set_exclusive_start_key(start_key)
            .limit(10)
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                // No retry makes a missing table appear.
                Some(service) if service.is_resource_not_found_exception() => {
                    WorkFailure::ForGood(format!("no table {table}"))
                }
                _ => WorkFailure::Retry(format!("Scan: {err}")),
            })?;
        users += page.count();
        start_key = page.last_evaluated_key;
        if start_key.is_none() {
            return Ok(json!({ "users": users }));
        }
    }
}

fn work_on(state: async_api::AppState, canceled: watch::Receiver<bool>) -> Work {
    Work {
        input: TaskEvent {
            task_id: uuid::Uuid::new_v4().to_string(),
            delay_ms: 0,
            fail_attempts: 0,
            panic_attempts: 0,
            fail_for_good: false,
        },
        attempt: 1,
        stop_by: Instant::now() + Duration::from_secs(60),
        canceled: Canceled(canceled),
        state,
    }
}

fn state(users_table: &str, tasks_table: &str, dynamodb: &str) -> async_api::AppState {
    support::state_for(
        users_table,
        tasks_table,
        dynamodb,
        &support::dead_endpoint(),
        Vec::new(),
    )
}

#[tokio::test]
async fn a_work_of_your_own_reads_dynamodb_through_the_clients_it_is_given() {
    let fixture = support::Fixture::new(&support::dead_endpoint()).await;
    fixture.seed_users(25).await;
    let (_cancel, canceled) = watch::channel(false);
    let work = work_on(
        state(
            &fixture.users_table,
            &fixture.tasks_table,
            support::dynamodb_endpoint(),
        ),
        canceled,
    );
    assert_eq!(count_users(work).await, Ok(json!({"users": 25})));
}

#[tokio::test]
async fn a_missing_table_fails_for_good_and_an_unreachable_dynamodb_asks_for_a_retry() {
    let (_cancel, canceled) = watch::channel(false);
    let missing = work_on(
        state("no-such-table", "tasks", support::dynamodb_endpoint()),
        canceled.clone(),
    );
    assert_eq!(
        count_users(missing).await,
        Err(WorkFailure::ForGood("no table no-such-table".to_owned()))
    );
    let unreachable = work_on(state("users", "tasks", &support::dead_endpoint()), canceled);
    assert!(matches!(
        count_users(unreachable).await,
        Err(WorkFailure::Retry(message)) if message.starts_with("Scan: ")
    ));
}

#[tokio::test]
async fn a_canceled_task_stops_its_work_before_the_next_page() {
    let fixture = support::Fixture::new(&support::dead_endpoint()).await;
    fixture.seed_users(25).await;
    let (cancel, canceled) = watch::channel(false);
    cancel.send(true).expect("the work listens");
    let work = work_on(
        state(
            &fixture.users_table,
            &fixture.tasks_table,
            support::dynamodb_endpoint(),
        ),
        canceled,
    );
    assert_eq!(
        count_users(work).await,
        Err(WorkFailure::Retry("canceled".to_owned()))
    );
}
