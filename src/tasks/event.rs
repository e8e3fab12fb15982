//! The task event: the payload `/async` sends this function through Lambda's
//! `Invoke` (`InvocationType=Event`), and how a delivered one is read.

use serde::{Deserialize, Serialize};

use super::{MAX_DELAY_MS, is_task_id};

/// The event this function sends itself to run a task (docs/task-protocol.md, "The task event").
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskEvent {
    /// The task record this event runs.
    pub task_id: String,
    /// How long the stand-in work waits.
    pub delay_ms: u64,
    /// Makes the stand-in task fail its first `fail_attempts` attempts, to see
    /// Lambda's retries and the failure destination at work. Only an event can
    /// set it, never an HTTP request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fail_attempts: u32,
    /// Makes the stand-in task panic in its first `panic_attempts` attempts,
    /// to see a crashing attempt retried. Only an event can set it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub panic_attempts: u32,
    /// Makes the stand-in task fail for good (no retry can help): the task
    /// ends `failed` at once, without a function error. Only an event can set
    /// it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_for_good: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TaskEvent {
    /// Reads a delivered payload. The error says why it is no task event
    /// without quoting any of it: it is logged and returned to whoever invoked
    /// the function.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let event: Self = serde_json::from_slice(payload).map_err(|err| event_error(&err))?;
        if !is_task_id(&event.task_id) {
            return Err("task_id is not a lowercase UUID".to_owned());
        }
        if event.delay_ms > MAX_DELAY_MS {
            return Err(format!("delay_ms is over {MAX_DELAY_MS}"));
        }
        Ok(event)
    }
}

/// serde's messages quote values and unknown field names: say only what kind
/// of error it is, and where.
fn event_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match err.classify() {
        Category::Data => "not a task event",
        Category::Syntax | Category::Eof | Category::Io => "not valid JSON",
    };
    format!("{kind} (line {}, column {})", err.line(), err.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";

    #[test]
    fn a_task_event_reads_back_as_it_was_sent() {
        let event = TaskEvent {
            task_id: ID.to_owned(),
            delay_ms: 1000,
            fail_attempts: 0,
            panic_attempts: 0,
            fail_for_good: false,
        };
        let sent = serde_json::to_vec(&event).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sent),
            format!(r#"{{"task_id":"{ID}","delay_ms":1000}}"#)
        );
        assert_eq!(TaskEvent::parse(&sent).unwrap(), event);
        let failing = format!(r#"{{"task_id":"{ID}","delay_ms":0,"fail_attempts":2}}"#);
        assert_eq!(
            TaskEvent::parse(failing.as_bytes()).unwrap().fail_attempts,
            2
        );
    }

    #[test]
    fn anything_else_is_refused_without_quoting_it() {
        for (payload, error) in [
            ("secret", "not valid JSON (line 1, column 1)"),
            (
                "{\"task_id\": \"secret",
                "not valid JSON (line 1, column 19)",
            ),
            (
                r#"{"task_id":"x","delay_ms":1,"secret":1}"#,
                "not a task event (line 1, column 36)",
            ),
            (r#"{"delay_ms":1}"#, "not a task event (line 1, column 14)"),
            (
                r#"{"task_id":"secret","delay_ms":1}"#,
                "task_id is not a lowercase UUID",
            ),
            (
                &format!(r#"{{"task_id":"{ID}","delay_ms":60001}}"#),
                "delay_ms is over 60000",
            ),
            (
                &format!(r#"{{"task_id":"{ID}","delay_ms":-1}}"#),
                "not a task event (line 1, column 63)",
            ),
        ] {
            assert_eq!(
                TaskEvent::parse(payload.as_bytes()).unwrap_err(),
                error,
                "{payload}"
            );
        }
    }
}
