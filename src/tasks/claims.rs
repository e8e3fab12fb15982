//! The writes of an attempt on its task record: the claim, the lease's
//! renewals, the finish. Each is conditional on the claim that made it, so
//! that an attempt whose lease lapsed, or whose task was canceled or given up
//! on, changes nothing; [`crate::tasks::worker`] says what each refusal means.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::record::TaskStatus;
use super::store::{
    Outcome, StoredTask, TaskStore, Written, epoch_millis, is_condition_failure, now_rfc3339,
};
use crate::error::sdk_summary;

impl TaskStore<'_> {
    /// Takes the task for claim `claim_id` if it is enqueued and `queued`,
    /// `failed` in its work by an earlier attempt (not given up on by
    /// Lambda, see [`Self::give_up`]), or `running` under a lease that has run
    /// out; the lease runs until `lease_until_ms` (epoch
    /// milliseconds). `Refused`: see [`crate::tasks::worker`] for what that can
    /// mean.
    pub async fn claim(
        self,
        task_id: &str,
        claim_id: &str,
        lease_until_ms: u64,
    ) -> Result<Written<StoredTask>, String> {
        let claimed = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression(
                "SET #status = :running, attempts = attempts + :one, updated_at = :now, lease_until = :lease, claim_id = :claim REMOVE #error",
            )
            .condition_expression(
                "attribute_exists(task_id) AND enqueued = :true AND (#status = :queued OR (#status = :failed AND attribute_not_exists(given_up)) OR (#status = :running AND lease_until < :now_ms))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":failed", TaskStatus::Failed.attribute())
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .expression_attribute_values(":now_ms", AttributeValue::N(epoch_millis().to_string()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until_ms.to_string()))
            .expression_attribute_values(":claim", AttributeValue::S(claim_id.to_owned()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match claimed {
            Ok(output) => StoredTask::from_item(output.attributes().unwrap_or(&HashMap::new()))
                .map(Written::Done),
            Err(err) if is_condition_failure(&err) => Ok(Written::Refused),
            Err(err) => Err(format!("UpdateItem (claim): {}", sdk_summary(&err))),
        }
    }

    /// Extends claim `claim_id`'s lease to `lease_until_ms`. `Refused`: the task
    /// is no longer this claim's to run (canceled, or given up on).
    pub async fn renew_lease(
        self,
        task_id: &str,
        claim_id: &str,
        lease_until_ms: u64,
    ) -> Result<Written<()>, String> {
        let renewed = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET lease_until = :lease")
            .condition_expression("#status = :running AND claim_id = :claim")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":claim", AttributeValue::S(claim_id.to_owned()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until_ms.to_string()))
            .send()
            .await;
        match renewed {
            Ok(_) => Ok(Written::Done(())),
            Err(err) if is_condition_failure(&err) => Ok(Written::Refused),
            Err(err) => Err(format!("UpdateItem (lease): {}", sdk_summary(&err))),
        }
    }

    /// Records how claim `claim_id`'s attempt ended, and that this claim wrote
    /// it (`finished_by`). `Refused`: the task is no longer this claim's
    /// (canceled, given up on, or taken over after its lease ran out), and
    /// nothing is written.
    pub async fn finish(
        self,
        task_id: &str,
        claim_id: &str,
        outcome: Outcome<'_>,
    ) -> Result<Written<()>, String> {
        let update = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .condition_expression("#status = :running AND claim_id = :claim")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":claim", AttributeValue::S(claim_id.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()));
        let update = match outcome {
            Outcome::Succeeded => update
                .update_expression(
                    "SET #status = :done, updated_at = :now, finished_by = :claim REMOVE lease_until",
                )
                .expression_attribute_values(":done", TaskStatus::Succeeded.attribute()),
            Outcome::Failed(message) => update
                .update_expression(
                    "SET #status = :done, #error = :error, updated_at = :now, finished_by = :claim REMOVE lease_until",
                )
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":done", TaskStatus::Failed.attribute())
                .expression_attribute_values(":error", AttributeValue::S(message.to_owned())),
        };
        let failure = match update.send().await {
            Ok(_) => return Ok(Written::Done(())),
            Err(err) => err,
        };
        // The write may have landed on a try whose answer was lost: the SDK's
        // next try then fails the condition on it, or every try fails. Only
        // this claim's id in `finished_by` tells that from another's end.
        if self.finished_by(task_id).await.as_deref() == Some(claim_id) {
            return Ok(Written::Done(()));
        }
        if is_condition_failure(&failure) {
            Ok(Written::Refused)
        } else {
            Err(format!("UpdateItem (finish): {}", sdk_summary(&failure)))
        }
    }

    /// The claim whose finish the record holds, if it can be read.
    async fn finished_by(self, task_id: &str) -> Option<String> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .projection_expression("finished_by")
            .consistent_read(true)
            .send()
            .await
            .ok()?;
        match output.item()?.get("finished_by") {
            Some(AttributeValue::S(claim)) => Some(claim.clone()),
            _ => None,
        }
    }
}
