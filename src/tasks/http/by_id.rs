//! The routes of one task: `GET /tasks/{task_id}` shows its record, `DELETE /tasks/{task_id}` cancels it.

use super::*;

/// `GET /tasks/{task_id}`: the task's status.
#[utoipa::path(
    get,
    path = "/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = String, Path, format = Uuid, description = "The id `/async` returned",
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The task", body = TaskRecord,
            headers(("Retry-After" = inline(crate::error::RetryAfterSeconds), description = "While the task is `queued` or `running`: seconds until a poller should look again"))),
        (status = 400, response = BadRequestResponse),
        (status = 401, response = UnauthorizedResponse),
        (status = 404, response = NotFoundResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    task_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let task_id = task_id_of(task_id)?;
    let stored = TaskStore::of(&state)
        .read(&task_id)
        .await
        .map_err(|err| err.into_api_error("GetItem task"))?
        .filter(|stored| caller.may_reach(stored.owner.as_deref()))
        .ok_or_else(|| ApiError::NotFound(format!("No task {task_id}")))?;
    let now = epoch_millis();
    Ok(shown(
        stored.shown(now, undeliverable_before_ms(&state, now)),
    ))
}

/// `DELETE /tasks/{task_id}`: cancels a task that has not ended.
#[utoipa::path(
    delete,
    path = "/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = String, Path, format = Uuid, description = "The id `/async` returned",
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The task, now `canceled`: a queued task never runs, a running one stops within a second", body = TaskRecord),
        (status = 400, response = BadRequestResponse),
        (status = 401, response = UnauthorizedResponse),
        (status = 404, response = NotFoundResponse),
        (status = 409, response = ConflictResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn cancel_task(
    State(state): State<AppState>,
    caller: Caller,
    task_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let task_id = task_id_of(task_id)?;
    let store = TaskStore::of(&state);
    let now = epoch_millis();
    // A cancel that could land after the backstop is refused: the task is
    // `failed` by then, and a reader may already have seen it so.
    let cutoff = protocol::write_cutoff(now, backstop_horizon_ms(&state));
    match store
        .cancel(&task_id, cutoff, &caller)
        .await
        .map_err(|err| err.into_api_error("UpdateItem task (cancel)"))?
    {
        Written::Done(stored) => {
            tracing::info!(task_id, "task canceled");
            metrics::task_canceled(&task_id);
            Ok(shown(stored.shown(now, cutoff)))
        }
        Written::Refused => {
            let stored = store
                .read(&task_id)
                .await
                .map_err(|err| err.into_api_error("GetItem task"))?
                // Another caller's task: the same 404 as an unknown id.
                .filter(|stored| caller.may_reach(stored.owner.as_deref()))
                .ok_or_else(|| ApiError::NotFound(format!("No task {task_id}")))?;
            let (record, _) = stored.shown(now, cutoff);
            Err(ApiError::Conflict {
                message: format!(
                    "Task {task_id} has already ended ({})",
                    record.status.as_str()
                ),
                retry: false,
            })
        }
    }
}

fn task_id_of(task_id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(task_id) = task_id?;
    if is_task_id(&task_id) {
        Ok(task_id)
    } else {
        Err(ApiError::BadRequest(
            "task_id must be a task id this API returned (a lowercase UUID)".to_owned(),
        ))
    }
}

/// The record as JSON; a task that has not ended tells its poller when to
/// look again (`retry_after`, seconds).
fn shown((record, retry_after): (TaskRecord, Option<u64>)) -> Response {
    let mut response = Json(record).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
