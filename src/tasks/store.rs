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
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::protocol::{TaskView, Wrote, cond};
use super::record::{TaskRecord, TaskStatus};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;

use crate::caller::Caller;
use crate::error::{ApiError, sdk_summary};
use crate::state::AppState;

mod cancel;
mod error;

mod owned;

pub use error::StoreError;
pub use owned::OwnedPage;

/// Task records expire (DynamoDB TTL on `expires_at`) a week after creation.
const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The `error` of a task whose event did not leave.
pub const NOT_ENQUEUED: &str = "The task could not be enqueued";
/// Formerly the `error` of a task a delivery failed when its request died
/// unmarked; such a task is now marked and run by its delivery.
pub const ABANDONED: &str = "The request that started the task ended before the task was enqueued";

/// The attribute that names a task's owner ([`Caller::owner_key`]); an
/// anonymous task has none. A reserved word in DynamoDB expressions: always
/// `#owner` there.
pub const OWNER: &str = "owner";
/// The global secondary index of the tasks table on (`owner`, `created_ms`),
/// which `GET /tasks` queries. Sparse: only owned tasks are in it.
pub const OWNER_INDEX: &str = "by-owner";

/// The tasks table, through the function's DynamoDB client.
#[derive(Clone, Copy)]
pub struct TaskStore<'a> {
    /// The client every call goes through.
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    /// The tasks table's name.
    pub table: &'a str,
}

/// A stored task: what `GET /tasks/{task_id}` shows, and what the protocol
/// reads of it.
pub struct StoredTask {
    /// What `GET /tasks/{task_id}` shows.
    pub record: TaskRecord,
    /// What [`super::protocol`] decides on.
    pub view: TaskView,
    /// Who started it ([`Caller::owner_key`]); `None` when anonymous.
    pub owner: Option<String>,
}

impl StoredTask {
    /// Reads a stored item; the error says which attribute is missing or wrong.
    pub(super) fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Self, String> {
        let record = TaskRecord::from_item(item)?;
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        let view = TaskView {
            status: record.status,
            enqueued: matches!(item.get("enqueued"), Some(AttributeValue::Bool(true))),
            claim_id: match item.get("claim_id") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            },
            lease_until: number("lease_until"),
            attempts: record.attempts,
            answer_by: number("answer_by").unwrap_or(0),
            created_ms: number("created_ms").unwrap_or(0),
            retry_at: number("retry_at"),
            started_claims: match item.get("started_claims") {
                Some(AttributeValue::Ss(claims)) => {
                    let mut claims = claims.clone();
                    claims.sort();
                    claims
                }
                _ => Vec::new(),
            },
        };
        let owner = match item.get(OWNER) {
            Some(AttributeValue::S(owner)) => Some(owner.clone()),
            _ => None,
        };
        Ok(Self {
            record,
            view,
            owner,
        })
    }

    /// The record as shown at `now_ms`: the backstop applied, and the
    /// `Retry-After` a poller gets (`None` once it has ended).
    pub fn shown(self, now_ms: u64, undeliverable_before_ms: u64) -> (TaskRecord, Option<u64>) {
        let retry_after = self.view.retry_after_s(now_ms, undeliverable_before_ms);
        let record = self
            .record
            .with_backstop(self.view.created_ms, undeliverable_before_ms);
        (record, retry_after)
    }
}

/// The result of an attempt, as the finish writes it.
pub enum Outcome<'a> {
    /// `succeeded`, with the work's result (JSON).
    Succeeded(&'a str),
    /// `queued` again, waiting for Lambda's retry at `retry_at` (epoch ms).
    RetryLater { error: &'a str, retry_at: u64 },
    /// `failed`, for good.
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
    /// Lambda accepted although `/async` answered 503 never runs. `answer_by`
    /// (epoch ms) is when the request writing it can no longer mark it: a
    /// delivery that finds it unmarked after that marks it itself. The condition
    /// keeps a write the SDK retried after a lost answer, or a keyed retry's,
    /// from overwriting the record (the caller treats that refusal as
    /// success); `make bench` times this same write.
    pub async fn put_queued(
        self,
        task_id: &str,
        answer_by: u64,
    ) -> Result<PutItemOutput, SdkError<PutItemError>> {
        self.put_queued_for(task_id, answer_by, None).await
    }

    /// [`Self::put_queued`] for a task that belongs to `owner`
    /// ([`Caller::owner_key`]; `None`: anonymous, no `owner` attribute, so
    /// not in [`OWNER_INDEX`]).
    pub async fn put_queued_for(
        self,
        task_id: &str,
        answer_by: u64,
        owner: Option<&str>,
    ) -> Result<PutItemOutput, SdkError<PutItemError>> {
        let now = now_rfc3339();
        let now_ms = epoch_millis();
        let expires_at = now_ms / 1000 + RECORD_TTL.as_secs();
        self.dynamodb
            .put_item()
            .set_item(owner.map(|owner| {
                HashMap::from([(OWNER.to_owned(), AttributeValue::S(owner.to_owned()))])
            }))
            .table_name(self.table)
            .item("task_id", AttributeValue::S(task_id.to_owned()))
            .item("status", TaskStatus::Queued.attribute())
            .item("created_at", AttributeValue::S(now.clone()))
            .item("created_ms", AttributeValue::N(now_ms.to_string()))
            .item("updated_at", AttributeValue::S(now))
            .item("attempts", AttributeValue::N("0".to_owned()))
            .item("enqueued", AttributeValue::Bool(false))
            .item("answer_by", AttributeValue::N(answer_by.to_string()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression("attribute_not_exists(task_id)")
            .send()
            .await
    }

    /// A task as `/async` leaves it once Lambda accepted its event: `queued`
    /// and enqueued. For tests and `make bench`, which deliver events of
    /// their own.
    pub async fn put_enqueued(self, task_id: &str) -> Result<(), String> {
        self.put_queued(task_id, epoch_millis())
            .await
            .map_err(|err| format!("PutItem task: {}", sdk_summary(&err)))?;
        match self.mark_enqueued(task_id).await {
            Wrote::Done => Ok(()),
            other => Err(format!("UpdateItem task (enqueued): {other:?}")),
        }
    }

    /// Lambda accepted the task event: from now on a delivery may claim the
    /// task ([`cond::MARK_ENQUEUED`]).
    pub async fn mark_enqueued(self, task_id: &str) -> Wrote {
        let marked = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET enqueued = :true")
            .condition_expression(cond::MARK_ENQUEUED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        wrote(task_id, "UpdateItem task (enqueued)", marked)
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

    /// The task's view, `Err` when it cannot be read (logged).
    pub async fn view(self, task_id: &str) -> Result<Option<TaskView>, String> {
        match self.read(task_id).await {
            Ok(stored) => Ok(stored.map(|stored| stored.view)),
            Err(err) => Err(err.summary("GetItem task")),
        }
    }

    /// The event may not have left: the record says `failed`, so that no
    /// delivery of it can ever claim it ([`cond::UNMARKED`]).
    pub async fn mark_not_enqueued(self, task_id: &str) -> Wrote {
        self.fail_unmarked(task_id, NOT_ENQUEUED, cond::UNMARKED)
            .await
    }

    /// A delivery found the task unmarked after its request could have said
    /// 503 (`now_ms`, less the skew, past `answer_by`: [`cond::ADOPT`]): the
    /// request answered 202 or died, and the delivery marks it enqueued.
    pub async fn adopt(self, task_id: &str, now_ms: u64) -> Wrote {
        let marked = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET enqueued = :true")
            .condition_expression(cond::ADOPT)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":now_ms", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        wrote(task_id, "UpdateItem task (adopt)", marked)
    }

    async fn fail_unmarked(self, task_id: &str, error: &str, condition: &str) -> Wrote {
        let update = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET #status = :failed, #error = :error, updated_at = :now")
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", TaskStatus::Failed.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":error", AttributeValue::S(error.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()));
        wrote(
            task_id,
            "UpdateItem task (not enqueued)",
            update.send().await,
        )
    }

    /// A keyed retry takes over the unmarked task of a request that outlived
    /// its key's hold: its `answer_by` becomes this request's
    /// ([`cond::UNMARKED`]).
    pub async fn extend_answer_by(self, task_id: &str, answer_by: u64) -> Wrote {
        let extended = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET answer_by = :answer_by")
            .condition_expression(cond::UNMARKED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":answer_by", AttributeValue::N(answer_by.to_string()))
            .send()
            .await;
        wrote(task_id, "UpdateItem task (answer_by)", extended)
    }

    /// Lambda gave up on the task's event (its on-failure destination record):
    /// a task still `queued` or `running` becomes `failed` with `error`
    /// ([`cond::GIVE_UP`]). `Refused`: the task has ended, or does not exist
    /// (expired).
    pub async fn give_up(self, task_id: &str, error: &str) -> Result<Written<()>, String> {
        let given_up = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression(
                "SET #status = :failed, #error = :error, updated_at = :now REMOVE lease_until, retry_at",
            )
            .condition_expression(cond::GIVE_UP)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", TaskStatus::Failed.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":error", AttributeValue::S(error.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .send()
            .await;
        match given_up {
            Ok(_) => Ok(Written::Done(())),
            Err(err) if is_condition_failure(&err) => Ok(Written::Refused),
            Err(err) => Err(format!("UpdateItem (give up): {}", sdk_summary(&err))),
        }
    }
}

/// A conditional update's answer as the protocol sees it; an error the SDK
/// gave up on is `Unknown` (an earlier try may have landed), and logged.
pub(super) fn wrote<T>(
    task_id: &str,
    operation: &str,
    result: Result<T, SdkError<UpdateItemError>>,
) -> Wrote {
    match result {
        Ok(_) => Wrote::Done,
        Err(err) if is_condition_failure(&err) => Wrote::Refused,
        Err(err) => {
            tracing::warn!(
                task_id,
                detail = sdk_summary(&err),
                "{operation}: no answer"
            );
            Wrote::Unknown
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
