//! The writes of an attempt on its task record: the claim, the start (which
//! counts the attempt), the lease's renewals, the release of a claim that
//! could not start the work, the finish.
//! Each is conditional ([`super::protocol::cond`]), so that an attempt whose
//! lease lapsed, or whose task was canceled or given up on, changes nothing;
//! [`crate::tasks::worker`] says what each refusal means.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::protocol::{Wrote, cond};
use super::record::TaskStatus;
use super::store::{
    Outcome, StoredTask, TaskStore, Written, is_condition_failure, now_rfc3339, wrote,
};
use crate::error::sdk_summary;

impl TaskStore<'_> {
    /// Takes the task for claim `claim_id` ([`cond::CLAIM`]); its lease runs
    /// until `lease_until_ms` (epoch milliseconds). Nothing is counted yet:
    /// [`Self::start`] counts the attempt. `Refused`: the record says why
    /// (see [`super::protocol::Attempt::next`]).
    pub async fn claim(
        self,
        task_id: &str,
        claim_id: &str,
        now_ms: u64,
        cutoff_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Written<StoredTask>, String> {
        let claimed = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression(
                "SET #status = :running, updated_at = :now, lease_until = :lease, claim_id = :claim",
            )
            .condition_expression(cond::CLAIM)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .expression_attribute_values(":now_ms", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":cutoff", AttributeValue::N(cutoff_ms.to_string()))
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

    /// Extends claim `claim_id`'s lease to `lease_until_ms` ([`cond::OWNED`]).
    /// `Refused`: the task is no longer this claim's to run (canceled, given
    /// up on, or taken over).
    pub async fn renew_lease(self, task_id: &str, claim_id: &str, lease_until_ms: u64) -> Wrote {
        let renewed = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET lease_until = :lease")
            .condition_expression(cond::OWNED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":claim", AttributeValue::S(claim_id.to_owned()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until_ms.to_string()))
            .send()
            .await;
        wrote(task_id, "UpdateItem task (lease)", renewed)
    }

    /// Starts claim `claim_id`'s attempt ([`cond::UNSTARTED`]): counts it
    /// in `attempts`, records the claim in `started_claims` (so that a
    /// retried try finds itself started and counts nothing), drops the last
    /// attempt's `error` and `retry_at`, and leases the task until
    /// `lease_until_ms`. `Done` holds the attempt's number; otherwise
    /// [`super::protocol::Attempt::begun`] tells from the record.
    pub async fn start(
        self,
        task_id: &str,
        claim_id: &str,
        lease_until_ms: u64,
    ) -> Result<Written<u32>, String> {
        let started = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression(
                "SET attempts = attempts + :one, updated_at = :now, lease_until = :lease ADD started_claims :claims REMOVE #error, retry_at",
            )
            .condition_expression(cond::UNSTARTED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until_ms.to_string()))
            .expression_attribute_values(":claim", AttributeValue::S(claim_id.to_owned()))
            .expression_attribute_values(":claims", AttributeValue::Ss(vec![claim_id.to_owned()]))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match started {
            Ok(output) => {
                let attempts = match output.attributes().and_then(|a| a.get("attempts")) {
                    Some(AttributeValue::N(n)) => n.parse().ok(),
                    _ => None,
                };
                attempts
                    .map(Written::Done)
                    .ok_or_else(|| "UpdateItem (start): no attempts in its answer".to_owned())
            }
            Err(err) if is_condition_failure(&err) => Ok(Written::Refused),
            Err(err) => Err(format!("UpdateItem (start): {}", sdk_summary(&err))),
        }
    }

    /// Claim `claim_id` could not start the work: the task is `queued` again
    /// for Lambda's next delivery, if it is still this claim's and the claim
    /// never started it ([`cond::UNSTARTED`]: a started claim is never
    /// released, and nothing was counted to take back).
    pub async fn release(self, task_id: &str, claim_id: &str) -> Wrote {
        let released = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression("SET #status = :queued, updated_at = :now REMOVE lease_until")
            .condition_expression(cond::UNSTARTED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":queued", TaskStatus::Queued.attribute())
            .expression_attribute_values(":claim", AttributeValue::S(claim_id.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .send()
            .await;
        wrote(task_id, "UpdateItem task (release)", released)
    }

    /// Records how claim `claim_id`'s attempt ended ([`cond::OWNED`]), and
    /// that this claim wrote it (`finished_by`). `Refused`: the task is no
    /// longer this claim's, and nothing is written.
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
            .condition_expression(cond::OWNED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", TaskStatus::Running.attribute())
            .expression_attribute_values(":claim", AttributeValue::S(claim_id.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()));
        let update = match outcome {
            Outcome::Succeeded(result) => update
                .update_expression(
                    "SET #status = :done, #result = :result, updated_at = :now, finished_by = :claim REMOVE lease_until, #error",
                )
                .expression_attribute_names("#result", "result")
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":done", TaskStatus::Succeeded.attribute())
                .expression_attribute_values(":result", AttributeValue::S(result.to_owned())),
            Outcome::RetryLater { error, retry_at } => update
                .update_expression(
                    "SET #status = :done, #error = :error, retry_at = :retry_at, updated_at = :now, finished_by = :claim REMOVE lease_until",
                )
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":done", TaskStatus::Queued.attribute())
                .expression_attribute_values(":error", AttributeValue::S(error.to_owned()))
                .expression_attribute_values(":retry_at", AttributeValue::N(retry_at.to_string())),
            Outcome::Failed(error) => update
                .update_expression(
                    "SET #status = :done, #error = :error, updated_at = :now, finished_by = :claim REMOVE lease_until",
                )
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":done", TaskStatus::Failed.attribute())
                .expression_attribute_values(":error", AttributeValue::S(error.to_owned())),
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
