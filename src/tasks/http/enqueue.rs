//! The task's event enqueued (Lambda's `Invoke` of this function with `InvocationType=Event`), then the record marked enqueued.

use super::*;

/// Enqueues the task's event, then marks the record enqueued, which lets a
/// delivery claim it, as [`protocol::Start`] leads. `Err` only when the task
/// can never run: the record says `failed` and no delivery can claim it.
pub(super) async fn send_event(
    state: &AppState,
    task_id: &str,
    delay_ms: u64,
) -> Result<(), ApiError> {
    let mut error = None;
    if drive(state, task_id, delay_ms, protocol::after_put(), &mut error).await == Start::Refused {
        return Err(error.unwrap_or_else(|| {
            ApiError::Unavailable("the task could not be enqueued".to_owned())
        }));
    }
    tracing::info!(task_id, delay_ms, "task enqueued");
    metrics::task_enqueued(task_id);
    Ok(())
}

/// Takes the task's start from `step` to [`Start::Accepted`] or
/// [`Start::Refused`], as [`protocol::Start`] leads; `error`: why the
/// `Invoke` failed, if it did.
pub(super) async fn drive(
    state: &AppState,
    task_id: &str,
    delay_ms: u64,
    mut step: Start,
    error: &mut Option<ApiError>,
) -> Start {
    let store = TaskStore::of(state);
    loop {
        step = match step {
            Start::Invoke => match invoke(state, task_id, delay_ms).await {
                Ok(()) => protocol::after_invoke(true),
                Err(err) => {
                    *error = Some(err);
                    protocol::after_invoke(false)
                }
            },
            Start::MarkEnqueued => {
                protocol::after_mark_enqueued(store.mark_enqueued(task_id).await)
            }
            Start::MarkNotEnqueued => {
                protocol::after_mark_not_enqueued(store.mark_not_enqueued(task_id).await)
            }
            Start::Settle => {
                let view = store.view(task_id).await.ok().flatten();
                protocol::after_settle(view.as_ref())
            }
            Start::Accepted | Start::Refused => return step,
        };
    }
}

/// The task event, sent to this function (`InvocationType=Event`).
pub(super) async fn invoke(state: &AppState, task_id: &str, delay_ms: u64) -> Result<(), ApiError> {
    let event = TaskEvent {
        task_id: task_id.to_owned(),
        delay_ms,
        fail_attempts: 0,
        panic_attempts: 0,
        fail_for_good: false,
    };
    let payload = serde_json::to_vec(&event).map_err(|err| ApiError::Internal(err.to_string()))?;
    let sent = state
        .lambda
        .invoke()
        .function_name(&state.config.function_name)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload))
        .send()
        .await;
    // A throttled or unreachable Lambda is 503; a refusal that no retry
    // cures (access denied, no such function) is 500.
    sent.map(|_| ())
        .map_err(|err| match err.as_service_error() {
            Some(service) if service.is_resource_not_found_exception() => {
                ApiError::Internal("Invoke (Event): the function does not exist".to_owned())
            }
            _ => ApiError::from_sdk("Invoke (Event)", &err),
        })
}
