//! The cancel: one conditional write that ends a task that has not ended, the caller's own or an anonymous one.

use super::*;

impl<'a> TaskStore<'a> {
    /// Cancels a task that has not ended ([`cond::CANCEL`]): `queued` or
    /// `running`, created after `undeliverable_before_ms`, and one `caller`
    /// may reach ([`Caller::may_reach`], in the same condition: no
    /// read-then-write race). `Refused`: no such task, another caller's, or
    /// it has ended.
    pub async fn cancel(
        self,
        task_id: &str,
        undeliverable_before_ms: u64,
        caller: &Caller,
    ) -> Result<Written<StoredTask>, StoreError<UpdateItemError>> {
        let owner = caller.owner_key();
        let reachable = match owner {
            Some(_) => "(attribute_not_exists(#owner) OR #owner = :owner)",
            None => "attribute_not_exists(#owner)",
        };
        let canceled = self
            .dynamodb
            .update_item()
            .table_name(self.table)
            .key("task_id", AttributeValue::S(task_id.to_owned()))
            .update_expression(
                "SET #status = :canceled, updated_at = :now REMOVE lease_until, retry_at, #error",
            )
            .condition_expression(format!("({}) AND {reachable}", cond::CANCEL))
            .expression_attribute_names("#owner", OWNER)
            .set_expression_attribute_values(
                owner.map(|owner| HashMap::from([(":owner".to_owned(), AttributeValue::S(owner))])),
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
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
            Ok(output) => StoredTask::from_item(output.attributes().unwrap_or(&HashMap::new()))
                .map(Written::Done)
                .map_err(StoreError::Record),
            Err(err) if is_condition_failure(&err) => Ok(Written::Refused),
            Err(err) => Err(StoreError::Sdk(Box::new(err))),
        }
    }
}
