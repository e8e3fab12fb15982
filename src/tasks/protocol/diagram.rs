//! The state diagram: every change of status the protocol makes, and its rendering.

use super::*;

// --- the state diagram ---------------------------------------------------------------------

/// Every change of status the protocol makes, with who makes it (the write,
/// or the reader's backstop): `None` is "no record yet". The diagram of
/// `docs/task-protocol.md` is [`state_diagram`]'s rendering of this table (a
/// unit test checks it), and the model (`crates/task-model`) checks that every
/// change of status it reaches is one of these.
pub const TRANSITIONS: &[(Option<TaskStatus>, TaskStatus, &str)] = &[
    (
        None,
        TaskStatus::Queued,
        "POST /async writes it, not yet enqueued",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Queued,
        "POST /async marks it enqueued",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Failed,
        "POST /async: the event may not have left (503)",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Queued,
        "a delivery marks it once its request is over",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Running,
        "a delivery claims it",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Running,
        "a delivery takes over a lapsed lease",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Running,
        "the claim starts the work (counts the attempt)",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Queued,
        "a claim that cannot start releases it",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Queued,
        "an attempt failed: Lambda retries",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Succeeded,
        "the work returned its result",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Failed,
        "the work failed for good, or its last attempt failed",
    ),
    (Some(TaskStatus::Queued), TaskStatus::Canceled, "DELETE"),
    (Some(TaskStatus::Running), TaskStatus::Canceled, "DELETE"),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Failed,
        "Lambda's failure record",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Failed,
        "Lambda's failure record",
    ),
    (
        Some(TaskStatus::Queued),
        TaskStatus::Failed,
        "read past the backstop",
    ),
    (
        Some(TaskStatus::Running),
        TaskStatus::Failed,
        "read past the backstop",
    ),
];

/// Whether a change of status from `from` to `to` is one of [`TRANSITIONS`].
pub fn is_transition(from: Option<TaskStatus>, to: TaskStatus) -> bool {
    TRANSITIONS.iter().any(|(f, t, _)| *f == from && *t == to)
}

/// [`TRANSITIONS`] as a mermaid state diagram.
pub fn state_diagram() -> String {
    let mut diagram = String::from("stateDiagram-v2\n");
    for (from, to, by) in TRANSITIONS {
        let from = from.map_or("[*]", TaskStatus::as_str);
        diagram += &format!("    {from} --> {}: {by}\n", to.as_str());
    }
    for end in [
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ] {
        diagram += &format!("    {} --> [*]\n", end.as_str());
    }
    diagram
}
