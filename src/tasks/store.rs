//! The tasks table: every read and write of a task record, so that neither the
//! routes nor the worker build a DynamoDB request by hand.
//!
//! The writes are conditional, each for a reason given where it is made: the
//! SDK may retry a write whose answer was lost, and Lambda may deliver a task
//! event more than once.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::record::{TaskRecord, TaskStatus};
use crate::error::sdk_summary;
use crate::state::AppState;

/// Task records expire (DynamoDB TTL on `expires_at`) a week after creation.
const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The tasks table, through the function's DynamoDB client.
#[derive(Clone, Copy)]
pub struct TaskStore<'a> {
    /// The client every call goes through.
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    /// The tasks table's name.
    pub table: &'a str,
}

/// A stored task, with the id of the claim that last took it.
pub struct StoredTask {
    pub record: TaskRecord,
    pub claim_id: Option<String>,
}

/// The result of an attempt, as the record keeps it.
pub enum Outcome<'a> {
    Succeeded,
    Failed(&'a str),
}

impl<'a> TaskStore<'a> {
    /// The store of the function's own tasks table.
    pub fn of(state: &'a AppState) -> Self {
        Self {
            dynamodb: &state.dynamodb,
            table: &state.config.tasks_table,
        }
    }

    /// Writes the `queued` record of a new task. The condition keeps a write the
    /// SDK retried after a lost answer from overwriting the record (the caller
    /// treats that failure as success); `make bench` times this same write.
    pub async fn put_queued(self, task_id: &str) -> Result<PutItemOutput, SdkError<PutItemError>> {
        let now = now_rfc3339();
        let expires_at = epoch_seconds() + RECORD_TTL.as_secs();
        self.dynamodb
            .put_item()
            .table_name(self.table)
            .item("task_id", AttributeValue::S(task_id.to_owned()))
            .item("status", TaskStatus::Queued.attribute())
            .item("created_at", AttributeValue::S(now.clone()))
            .item("updated_at", AttributeValue::S(now))
            .item("attempts", AttributeValue::N("0".to_owned()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression("attribute_not_exists(task_id)")
            .send()
            .await
    }

    /// The task as it is now (a consistent read), or `None` if there is no such
    /// task.
    pub async fn read(self, task_id: &str) -> Result<Option<StoredTask>, ReadError> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| ReadError::Sdk(Box::new(err)))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let record = TaskRecord::from_item(item).map_err(ReadError::Record)?;
        let claim_id = match item.get("claim_id") {
            Some(AttributeValue::S(id)) => Some(id.clone()),
            _ => None,
        };
        Ok(Some(StoredTask { record, claim_id }))
    }

    /// The event never left: say so in the record, so no task stays `queued`
    /// with nothing behind it. Logged, not returned: the caller answers 503
    /// either way.
    pub async fn mark_not_enqueued(self, task_id: &str) {
        let marked = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET #status = :failed, #error = :error, updated_at = :now")
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", TaskStatus::Failed.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(
                ":error",
                AttributeValue::S("The task could not be enqueued".to_owned()),
            )
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .send()
            .await;
        if let Err(err) = marked {
            tracing::error!(
                task_id,
                detail = sdk_summary(&err),
                "task left queued: could not mark it failed"
            );
        }
    }

    /// Takes the task for claim `claim_id` if it is `queued`, `failed`, or
    /// `running` under a lease that has run out, with a lease until
    /// `lease_until_ms` (epoch milliseconds). `Ok(None)`: the condition failed
    /// (see [`crate::tasks::worker`] for what that can mean).
    pub async fn claim(
        self,
        task_id: &str,
        claim_id: &str,
        lease_until_ms: u64,
    ) -> Result<Option<TaskRecord>, String> {
        let claimed = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression(
                "SET #status = :running, attempts = attempts + :one, updated_at = :now, lease_until = :lease, claim_id = :claim REMOVE #error",
            )
            .condition_expression(
                "attribute_exists(task_id) AND (#status IN (:queued, :failed) OR (#status = :running AND lease_until < :now_ms))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":failed", TaskStatus::Failed.attribute())
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .expression_attribute_values(":now_ms", AttributeValue::N(epoch_millis().to_string()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until_ms.to_string()))
            .expression_attribute_values(":claim", AttributeValue::S(claim_id.to_owned()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match claimed {
            Ok(output) => {
                TaskRecord::from_item(output.attributes().unwrap_or(&HashMap::new())).map(Some)
            }
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(format!("UpdateItem (claim): {}", sdk_summary(&err))),
        }
    }

    /// Records how attempt `attempt` ended, unless another delivery has taken
    /// the task over since: `Ok(false)` then, and nothing is written.
    pub async fn finish(
        self,
        task_id: &str,
        attempt: u32,
        outcome: Outcome<'_>,
    ) -> Result<bool, String> {
        let update = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .condition_expression("#status = :running AND attempts = :attempt")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":attempt", AttributeValue::N(attempt.to_string()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()));
        let update = match outcome {
            Outcome::Succeeded => update
                .update_expression("SET #status = :done, updated_at = :now REMOVE lease_until")
                .expression_attribute_values(":done", TaskStatus::Succeeded.attribute()),
            Outcome::Failed(message) => update
                .update_expression(
                    "SET #status = :done, #error = :error, updated_at = :now REMOVE lease_until",
                )
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":done", TaskStatus::Failed.attribute())
                .expression_attribute_values(":error", AttributeValue::S(message.to_owned())),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(format!("UpdateItem (finish): {}", sdk_summary(&err))),
        }
    }
}

/// Why a task could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The GetItem failed.
    Sdk(Box<SdkError<GetItemError>>),
    /// The item is not a task record this function wrote.
    Record(String),
}

fn is_condition_failure(err: &SdkError<UpdateItemError>) -> bool {
    err.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}
