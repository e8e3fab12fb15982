//! `TASKS_PER_MINUTE_PER_CALLER`: how many tasks one caller may start per
//! UTC clock minute (all anonymous callers together count as one).
//!
//! One conditional write per task start: a counter item per caller and
//! minute in the tasks table, under `tasks-per-minute#<minute>#<scope>`,
//! which no task id (a UUID) can take, expiring through the table's TTL. It
//! holds the set of the ids of the tasks started (`starts`), and the write
//! adds the new task's id only while the set is below the limit, so two
//! requests racing for the last start cannot both have it. Adding an id is
//! idempotent: when the write lands and its answer is lost, the SDK's retry
//! (or the condition it then meets, the set full with this very id in it)
//! counts nothing more. A number incremented with `ADD` would count that
//! start twice. The write is made only when a new task is about to be
//! written: an idempotent replay, a 409 or a 4xx before it count nothing.
//!
//! A write costs a write unit per KB of the item: the set of a minute's
//! starts is about 40 bytes an id, so at the default limit (60) a counter
//! stays under 3 KB, and at the largest (`MAX_PER_MINUTE`) under DynamoDB's
//! 400 KB item size.

use aws_sdk_dynamodb::types::AttributeValue;

use super::store::{TaskStore, epoch_millis, is_condition_failure};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::metrics;

/// How long a counter outlives its minute before DynamoDB's TTL may take it.
const COUNTER_TTL_S: u64 = 120;

/// The largest `TASKS_PER_MINUTE_PER_CALLER`: a minute's set of ids (36
/// bytes each) stays within DynamoDB's 400 KB item.
pub const MAX_PER_MINUTE: u32 = 10_000;

/// The counters, in the tasks table.
#[derive(Clone, Copy)]
pub struct StartLimit<'a> {
    /// The tasks table.
    pub store: TaskStore<'a>,
    /// Tasks per caller per minute; 0: no limit.
    pub per_minute: u32,
}

impl StartLimit<'_> {
    /// Counts the start of task `task_id` for `caller` in the current minute;
    /// past the limit, a 429 whose `Retry-After` is the seconds to the next
    /// minute, and nothing counted. DynamoDB failing is a 503 (from the SDK
    /// error).
    pub async fn count(self, caller: &Caller, task_id: &str) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now_s = epoch_millis() / 1000;
        let minute = now_s / 60;
        let counted = self
            .store
            .dynamodb
            .update_item()
            .table_name(self.store.table)
            .key("task_id", counter_id(minute, &caller.scope()))
            .update_expression("ADD starts :ids SET expires_at = :expires_at")
            .condition_expression(
                "attribute_not_exists(starts) OR size(starts) < :limit OR contains(starts, :id)",
            )
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![task_id.to_owned()]))
            .expression_attribute_values(":id", AttributeValue::S(task_id.to_owned()))
            .expression_attribute_values(":limit", AttributeValue::N(self.per_minute.to_string()))
            .expression_attribute_values(
                ":expires_at",
                AttributeValue::N(((minute + 1) * 60 + COUNTER_TTL_S).to_string()),
            )
            .send()
            .await;
        match counted {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => {
                let retry_after_s = retry_after_s(now_s);
                tracing::info!(caller = caller.scope(), "task start rate-limited");
                metrics::task_rate_limited();
                Err(ApiError::TooManyRequests {
                    message: format!(
                        "At most {} tasks per minute per caller: retry in {retry_after_s} s",
                        self.per_minute
                    ),
                    retry_after_s,
                })
            }
            Err(err) => Err(ApiError::from_sdk("UpdateItem task counter", &err)),
        }
    }
}

/// The counter of `scope` ([`Caller::scope`]) in `minute` (epoch minutes).
fn counter_id(minute: u64, scope: &str) -> AttributeValue {
    AttributeValue::S(format!("tasks-per-minute#{minute}#{scope}"))
}

/// Seconds from `now_s` (epoch seconds) to the next UTC minute: 1 to 60.
pub fn retry_after_s(now_s: u64) -> u64 {
    60 - now_s % 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_seconds_to_the_next_minute() {
        assert_eq!(retry_after_s(0), 60);
        assert_eq!(retry_after_s(59), 1);
        assert_eq!(retry_after_s(60), 60);
        assert_eq!(retry_after_s(1_795_680_045), 15);
    }

    #[test]
    fn a_counter_is_per_minute_and_caller_and_no_task_id() {
        let ada = Caller::Iam {
            user_arn: "arn:aws:iam::1:user/ada".to_owned(),
        };
        assert_eq!(
            counter_id(29_928_000, &ada.scope()),
            AttributeValue::S(r#"tasks-per-minute#29928000#iam:"arn:aws:iam::1:user/ada""#.into())
        );
        assert_eq!(
            counter_id(29_928_000, &Caller::Anonymous.scope()),
            AttributeValue::S("tasks-per-minute#29928000#anonymous".into())
        );
    }
}
