//! One owner's tasks, newest first, a page at a time from the owner index (`GET /tasks`).

use super::*;

/// A page of one owner's tasks ([`TaskStore::owned`]).
pub struct OwnedPage {
    /// The tasks, newest first.
    pub tasks: Vec<StoredTask>,
    /// The [`OWNER_INDEX`] key the next page starts after; `None`: no more.
    pub next: Option<HashMap<String, AttributeValue>>,
}

/// A task's key in [`OWNER_INDEX`]: the table's key and the index's.
fn index_key(item: &HashMap<String, AttributeValue>) -> HashMap<String, AttributeValue> {
    item.iter()
        .filter(|(name, _)| matches!(name.as_str(), "task_id" | OWNER | "created_ms"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

impl<'a> TaskStore<'a> {
    /// Up to `limit` tasks of `owner` (with `status`, if given), newest
    /// first, from [`OWNER_INDEX`], starting after `start` (a key of that
    /// index); with the key to start the next page after, `None` once there
    /// is no more. A status filter may leave a Query's page short: the next
    /// Query carries on, a few at most, before the page is answered as it is.
    pub async fn owned(
        self,
        owner: &str,
        status: Option<TaskStatus>,
        limit: usize,
        mut start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<OwnedPage, StoreError<QueryError>> {
        const QUERIES: usize = 4;
        let mut tasks = Vec::new();
        for _ in 0..QUERIES {
            let mut query = self
                .dynamodb
                .query()
                .table_name(self.table)
                .index_name(OWNER_INDEX)
                .key_condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", OWNER)
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
                .scan_index_forward(false)
                .limit(i32::try_from(limit - tasks.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            if let Some(status) = status {
                query = query
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", status.attribute());
            }
            let output = query
                .send()
                .await
                .map_err(|err| StoreError::Sdk(Box::new(err)))?;
            let items = output.items();
            for (index, item) in items.iter().enumerate() {
                tasks.push(StoredTask::from_item(item).map_err(StoreError::Record)?);
                if tasks.len() == limit {
                    // The page is full: the next starts after this task, read
                    // or not the rest of this Query's page.
                    let next = (index + 1 < items.len() || output.last_evaluated_key().is_some())
                        .then(|| index_key(item));
                    return Ok(OwnedPage { tasks, next });
                }
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        Ok(OwnedPage { tasks, next: start })
    }
}
