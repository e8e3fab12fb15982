//! The task record: what the tasks table holds for a task and what
//! `GET /tasks/{task_id}` shows of it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl TaskStatus {
    const ALL: [Self; 5] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
    ];

    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Whether the task has ended: `succeeded`, `failed` and `canceled` are
    /// final, and a cancel is refused.
    pub fn has_ended(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }

    /// The status a stored string names, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The status as a DynamoDB attribute value.
    pub fn attribute(self) -> AttributeValue {
        AttributeValue::S(self.as_str().to_owned())
    }
}

/// A task as `GET /tasks/{task_id}` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TaskRecord {
    #[schema(format = Uuid)]
    pub task_id: String,
    pub status: TaskStatus,
    /// When `/async` recorded the task (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the record last changed (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// How many attempts started the work: 0 until one does.
    #[schema(minimum = 0)]
    pub attempts: u32,
    /// Why the task failed once `failed`; while it waits `queued` for
    /// Lambda's retry, how its last attempt failed; `null` otherwise.
    #[schema(required = true)]
    pub error: Option<String>,
    /// What the work returned (any JSON value), once `succeeded`; `null`
    /// before and otherwise.
    #[schema(required = true)]
    pub result: Option<serde_json::Value>,
}

impl TaskRecord {
    /// Reads a stored item; the error says which attribute is missing or wrong.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Self, String> {
        let string = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Ok(s.clone()),
            _ => Err(format!("task record has no string `{name}`")),
        };
        let status = string("status")?;
        Ok(Self {
            task_id: string("task_id")?,
            status: TaskStatus::parse(&status).ok_or(format!("unknown task status {status:?}"))?,
            created_at: string("created_at")?,
            updated_at: string("updated_at")?,
            attempts: match item.get("attempts") {
                Some(AttributeValue::N(n)) => n.parse().map_err(|_| "bad `attempts`")?,
                _ => return Err("task record has no `attempts`".to_owned()),
            },
            error: string("error").ok(),
            result: match item.get("result") {
                Some(AttributeValue::S(json)) => {
                    Some(serde_json::from_str(json).map_err(|_| "bad `result`")?)
                }
                _ => None,
            },
        })
    }
}

/// The `error` of a task whose event Lambda can no longer deliver.
pub const NEVER_DELIVERED: &str = "The task event was never delivered: Lambda gives up on an event at its maximum age (TASK_EVENT_MAX_AGE_SECONDS)";
/// The `error` of a task whose last attempt died without a result, read so
/// by the backstop.
pub const ATTEMPT_DIED: &str = "The task's last attempt ended without a result, and Lambda delivers its event no more (TASK_EVENT_MAX_AGE_SECONDS)";

impl TaskRecord {
    /// The backstop: a task still `queued` or `running` although it was
    /// created (at `created_ms`) before `undeliverable_before_ms`, when its
    /// event can no longer arrive and no lease can still hold, reads as
    /// `failed`. Records without a creation time are shown as stored.
    pub fn with_backstop(mut self, created_ms: u64, undeliverable_before_ms: u64) -> Self {
        if self.status.has_ended() || created_ms == 0 || created_ms >= undeliverable_before_ms {
            return self;
        }
        self.error = Some(
            match self.status {
                TaskStatus::Running => ATTEMPT_DIED,
                _ => NEVER_DELIVERED,
            }
            .to_owned(),
        );
        self.status = TaskStatus::Failed;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.to_owned())
    }

    #[test]
    fn every_status_reads_back_as_itself_and_nothing_else_is_a_status() {
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
            assert_eq!(status.attribute(), s(status.as_str()));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        for other in ["", "Queued", "done", "canceled ", "cancelled"] {
            assert_eq!(TaskStatus::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_stored_item_becomes_the_record_the_api_shows() {
        let stored = item(&[
            ("task_id", s("t1")),
            ("status", s("failed")),
            ("created_at", s("2026-11-30T10:00:00Z")),
            ("updated_at", s("2026-11-30T10:00:01Z")),
            ("attempts", AttributeValue::N("3".to_owned())),
            ("error", s("boom")),
            ("lease_until", AttributeValue::N("1".to_owned())),
        ]);
        assert_eq!(
            TaskRecord::from_item(&stored).unwrap(),
            TaskRecord {
                task_id: "t1".to_owned(),
                status: TaskStatus::Failed,
                created_at: "2026-11-30T10:00:00Z".to_owned(),
                updated_at: "2026-11-30T10:00:01Z".to_owned(),
                attempts: 3,
                error: Some("boom".to_owned()),
                result: None,
            }
        );
    }

    #[test]
    fn an_item_missing_an_attribute_or_with_an_unknown_status_is_refused_by_name() {
        let complete = [
            ("task_id", s("t1")),
            ("status", s("queued")),
            ("created_at", s("c")),
            ("updated_at", s("u")),
            ("attempts", AttributeValue::N("0".to_owned())),
        ];
        assert_eq!(TaskRecord::from_item(&item(&complete)).unwrap().error, None);
        for (at, name) in complete.iter().map(|(name, _)| name).enumerate() {
            let mut missing = complete.to_vec();
            missing.remove(at);
            let err = TaskRecord::from_item(&item(&missing)).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
        let mut unknown = complete.to_vec();
        unknown[1] = ("status", s("paused"));
        assert_eq!(
            TaskRecord::from_item(&item(&unknown)).unwrap_err(),
            r#"unknown task status "paused""#
        );
    }

    #[test]
    fn a_queued_or_running_task_older_than_its_event_can_be_reads_as_failed_and_nothing_else_changes()
     {
        let record = |status| TaskRecord {
            task_id: "t1".to_owned(),
            status,
            created_at: "c".to_owned(),
            updated_at: "u".to_owned(),
            attempts: 0,
            error: None,
            result: None,
        };
        let stale = record(TaskStatus::Queued).with_backstop(1_000, 2_000);
        assert_eq!(stale.status, TaskStatus::Failed);
        assert_eq!(stale.error.as_deref(), Some(NEVER_DELIVERED));
        assert_eq!(
            record(TaskStatus::Queued).with_backstop(2_000, 2_000),
            record(TaskStatus::Queued)
        );
        assert_eq!(
            record(TaskStatus::Queued).with_backstop(0, 2_000),
            record(TaskStatus::Queued),
            "no creation time: as stored"
        );
        let died = record(TaskStatus::Running).with_backstop(1_000, 2_000);
        assert_eq!(died.status, TaskStatus::Failed);
        assert_eq!(died.error.as_deref(), Some(ATTEMPT_DIED));
        for status in [
            TaskStatus::Succeeded,
            TaskStatus::Failed,
            TaskStatus::Canceled,
        ] {
            assert_eq!(record(status).with_backstop(1_000, 2_000), record(status));
        }
    }
}
