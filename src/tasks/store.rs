//! The tasks table: every read and write of a task record, so that neither the
//! routes nor the worker build a DynamoDB request by hand.
//!
//! The writes are conditional, each for a reason given where it is made: the
//! SDK may retry a write whose answer was lost, and Lambda may deliver a task
//! event more than once. The writes of an attempt (claim, lease, finish) are
//! in [`super::claims`].

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
use aws_sdk_dynamodb::error::ProvideErrorMetadata;

use crate::error::{ApiError, sdk_summary};
use crate::state::AppState;

/// Task records expire (DynamoDB TTL on `expires_at`) a week after creation.
const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The `error` of a task whose event did not leave.
pub const NOT_ENQUEUED: &str = "The task could not be enqueued";

/// The tasks table, through the function's DynamoDB client.
#[derive(Clone, Copy)]
pub struct TaskStore<'a> {
    /// The client every call goes through.
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    /// The tasks table's name.
    pub table: &'a str,
}

/// A stored task, with what only the function needs to know of it.
pub struct StoredTask {
    /// What `GET /tasks/{task_id}` shows.
    pub record: TaskRecord,
    /// The claim that last took the task (see [`TaskStore::claim`]).
    pub claim_id: Option<String>,
    /// Whether `/async` saw Lambda accept the task event; until then no
    /// delivery may claim the task (see [`TaskStore::put_queued`]).
    pub enqueued: bool,
    /// When the record was created, epoch milliseconds.
    pub created_ms: u64,
}

impl StoredTask {
    /// Reads a stored item; the error says which attribute is missing or wrong.
    pub(super) fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Self, String> {
        Ok(Self {
            record: TaskRecord::from_item(item)?,
            claim_id: match item.get("claim_id") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            },
            enqueued: matches!(item.get("enqueued"), Some(AttributeValue::Bool(true))),
            created_ms: match item.get("created_ms") {
                Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                _ => 0,
            },
        })
    }
}

/// The result of an attempt, as the record keeps it.
pub enum Outcome<'a> {
    Succeeded,
    Failed(&'a str),
}

/// What a conditional write came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Written<T> {
    /// The condition held and the write landed.
    Done(T),
    /// The condition did not hold: nothing was written.
    Refused,
}

impl<'a> TaskStore<'a> {
    /// The store of the function's own tasks table.
    pub fn of(state: &'a AppState) -> Self {
        Self {
            dynamodb: &state.dynamodb,
            table: &state.config.tasks_table,
        }
    }

    /// Writes the `queued` record of a new task, not yet `enqueued`: no
    /// delivery may claim it before [`Self::mark_enqueued`], so an event that
    /// Lambda accepted although `/async` answered 503 (an `Invoke` whose answer
    /// was lost) never runs. The condition keeps a write the SDK retried after
    /// a lost answer from overwriting the record (the caller treats that
    /// failure as success); `make bench` times this same write.
    pub async fn put_queued(self, task_id: &str) -> Result<PutItemOutput, SdkError<PutItemError>> {
        let now = now_rfc3339();
        let now_ms = epoch_millis();
        let expires_at = now_ms / 1000 + RECORD_TTL.as_secs();
        self.dynamodb
            .put_item()
            .table_name(self.table)
            .item("task_id", AttributeValue::S(task_id.to_owned()))
            .item("status", TaskStatus::Queued.attribute())
            .item("created_at", AttributeValue::S(now.clone()))
            .item("created_ms", AttributeValue::N(now_ms.to_string()))
            .item("updated_at", AttributeValue::S(now))
            .item("attempts", AttributeValue::N("0".to_owned()))
            .item("enqueued", AttributeValue::Bool(false))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression("attribute_not_exists(task_id)")
            .send()
            .await
    }

    /// Lambda accepted the task event: from now on a delivery may claim the
    /// task. Refused if the task is no longer `queued` (canceled already).
    pub async fn mark_enqueued(
        self,
        task_id: &str,
    ) -> Result<Written<()>, SdkError<UpdateItemError>> {
        let marked = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET enqueued = :true")
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match marked {
            Ok(_) => Ok(Written::Done(())),
            Err(err) if is_condition_failure(&err) => Ok(Written::Refused),
            Err(err) => Err(err),
        }
    }

    /// The task as it is now (a consistent read), or `None` if there is no such
    /// task.
    pub async fn read(self, task_id: &str) -> Result<Option<StoredTask>, StoreError<GetItemError>> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::Sdk(Box::new(err)))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        StoredTask::from_item(item)
            .map(Some)
            .map_err(StoreError::Record)
    }

    /// The event never left (or it is unknown whether it did): the record says
    /// `failed`, and as it was never marked `enqueued`, no delivery of its
    /// event can claim it (a failed write is logged: the task is then left
    /// `queued`, unmarked, and cannot run either). `Refused`: the record says
    /// `enqueued` after all (a [`Self::mark_enqueued`] whose answers were
    /// lost landed), so its event will run the task.
    pub async fn mark_not_enqueued(self, task_id: &str) -> Written<()> {
        let marked = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET #status = :failed, #error = :error, updated_at = :now")
            .condition_expression("#status = :queued AND enqueued = :false")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", TaskStatus::Failed.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":error", AttributeValue::S(NOT_ENQUEUED.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .send()
            .await;
        let Err(err) = marked else {
            return Written::Done(());
        };
        // Refused, or unknown: the mark may have landed, or this very write
        // on a try whose answer was lost. Only the record tells.
        if let Ok(Some(stored)) = self.read(task_id).await
            && stored.enqueued
        {
            return Written::Refused;
        }
        if !is_condition_failure(&err) {
            tracing::error!(
                task_id,
                detail = sdk_summary(&err),
                "task left queued, not enqueued: no delivery can claim it"
            );
        }
        Written::Done(())
    }

    /// Cancels a task that has not ended: `queued` (and still deliverable,
    /// created after `undeliverable_before_ms`) or `running`. `Refused`: no
    /// such task, or it has ended.
    pub async fn cancel(
        self,
        task_id: &str,
        undeliverable_before_ms: u64,
    ) -> Result<Written<TaskRecord>, StoreError<UpdateItemError>> {
        let canceled = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET #status = :canceled, updated_at = :now REMOVE lease_until")
            .condition_expression(
                "#status = :running OR (#status = :queued AND NOT created_ms < :cutoff)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":canceled", TaskStatus::Canceled.attribute())
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(
                ":cutoff",
                AttributeValue::N(undeliverable_before_ms.to_string()),
            )
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match canceled {
            Ok(output) => TaskRecord::from_item(output.attributes().unwrap_or(&HashMap::new()))
                .map(Written::Done)
                .map_err(StoreError::Record),
            Err(err) if is_condition_failure(&err) => Ok(Written::Refused),
            Err(err) => Err(StoreError::Sdk(Box::new(err))),
        }
    }

    /// Lambda gave up on the task's event (its on-failure destination record):
    /// a task still `queued` or `running` becomes `failed` with `error`, for
    /// good (`given_up`: no other delivery of its event claims it again, as
    /// one that failed in its work may be). `Refused`: the task has ended, or
    /// does not exist (expired).
    pub async fn give_up(self, task_id: &str, error: &str) -> Result<Written<()>, String> {
        let given_up = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression(
                "SET #status = :failed, #error = :error, updated_at = :now, given_up = :true REMOVE lease_until",
            )
            .condition_expression("#status IN (:queued, :running)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", TaskStatus::Failed.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":error", AttributeValue::S(error.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match given_up {
            Ok(_) => Ok(Written::Done(())),
            Err(err) if is_condition_failure(&err) => Ok(Written::Refused),
            Err(err) => Err(format!("UpdateItem (give up): {}", sdk_summary(&err))),
        }
    }
}

/// Why a read or write of a task record failed.
#[derive(Debug)]
pub enum StoreError<E> {
    /// The call failed.
    Sdk(Box<SdkError<E>>),
    /// The item is not a task record this function wrote.
    Record(String),
}

impl<E: ProvideErrorMetadata> StoreError<E> {
    /// As an HTTP answer: 503 or 500 as [`ApiError::from_sdk`] says, 500 for
    /// an unreadable record.
    pub fn into_api_error(self, operation: &str) -> ApiError {
        match self {
            Self::Sdk(err) => ApiError::from_sdk(operation, &err),
            Self::Record(message) => ApiError::Internal(message),
        }
    }

    /// As one line for a task's function error.
    pub fn summary(&self, operation: &str) -> String {
        match self {
            Self::Sdk(err) => format!("{operation}: {}", sdk_summary(err)),
            Self::Record(message) => message.clone(),
        }
    }
}

pub(super) fn is_condition_failure(err: &SdkError<UpdateItemError>) -> bool {
    err.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

pub(super) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Now, in epoch milliseconds.
pub fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}
