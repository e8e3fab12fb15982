//! `GET /tasks`: the caller's own tasks, newest first, a page at a time, from
//! the tasks table's index on (`owner`, `created_ms`). Only a caller with an
//! identity has a list; anonymous tasks are reached by their id alone.
//!
//! The cursor is the index key the next page starts after, as unpadded
//! base64url JSON, and is checked as `/users`'s is: a cursor that is not
//! exactly one this API made for this caller is a 400.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::store::{OWNER, TaskStore, epoch_millis};
use super::{TaskRecord, TaskStatus, is_task_id, undeliverable_before_ms};
use crate::caller::Caller;
use crate::error::{
    ApiError, BadRequestResponse, InternalResponse, UnauthorizedResponse, UnavailableResponse,
};
use crate::state::AppState;

/// Page size when the client gives no `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest `limit` a client may ask for.
pub const MAX_LIMIT: usize = 100;

/// The query string of `GET /tasks`. Each arrives as text so that a bad value
/// gets this API's own message; the document states their real types.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TasksQuery {
    /// Only the tasks with this status.
    #[param(value_type = Option<TaskStatus>)]
    status: Option<String>,
    /// How many tasks the page may hold.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// Where the page starts: `next_cursor` of the previous page, exactly as returned.
    #[param(value_type = Option<String>, min_length = 1)]
    cursor: Option<String>,
}

/// One page of the caller's tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TasksPage {
    /// The tasks, newest first, each as `GET /tasks/{task_id}` shows it.
    tasks: Vec<TaskRecord>,
    /// The cursor of the next page; `null` when there is no more.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// `GET /tasks`: the caller's own tasks, newest first.
#[utoipa::path(
    get,
    path = "/tasks",
    tag = "tasks",
    params(TasksQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of the caller's tasks, newest first; follow `next_cursor` for the rest. The list may lag a write by a moment (a secondary index)", body = TasksPage),
        (status = 400, response = BadRequestResponse),
        (status = 401, response = UnauthorizedResponse),
        (status = 500, response = InternalResponse),
        (status = 503, response = UnavailableResponse),
    )
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<TasksQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Some(owner) = caller.owner_key() else {
        return Err(ApiError::Unauthorized(
            "Only a verified caller has a list of tasks: a task started anonymously is reached by its id"
                .to_owned(),
        ));
    };
    let Query(query) = query?;
    let status = parse_status(query.status.as_deref())?;
    let limit = parse_limit(query.limit.as_deref())?;
    let start = query
        .cursor
        .as_deref()
        .map(|cursor| decode_cursor(cursor, &owner))
        .transpose()?;
    let page = TaskStore::of(&state)
        .owned(&owner, status, limit, start)
        .await
        .map_err(|err| err.into_api_error("Query tasks by owner"))?;
    let now = epoch_millis();
    let cutoff = undeliverable_before_ms(&state, now);
    let tasks = page
        .tasks
        .into_iter()
        .map(|stored| stored.shown(now, cutoff).0)
        .collect();
    let next_cursor = page.next.as_ref().map(encode_cursor).transpose()?;
    Ok(Json(TasksPage { tasks, next_cursor }).into_response())
}

fn parse_status(raw: Option<&str>) -> Result<Option<TaskStatus>, ApiError> {
    raw.map(|raw| {
        TaskStatus::parse(raw).ok_or_else(|| {
            ApiError::BadRequest(
                "status must be one of queued, running, succeeded, failed, canceled".to_owned(),
            )
        })
    })
    .transpose()
}

fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) && !raw.starts_with('+') => Ok(limit),
        _ => Err(ApiError::BadRequest(format!(
            "limit must be an integer from 1 to {MAX_LIMIT}"
        ))),
    }
}

/// The cursor: `{"created_ms": N, "owner": "…", "task_id": "…"}`, the index
/// key the next page starts after, as unpadded base64url JSON.
fn encode_cursor(key: &HashMap<String, AttributeValue>) -> Result<String, ApiError> {
    let internal =
        || ApiError::Internal("owner index key is not (task_id, owner, created_ms)".into());
    let (Some(AttributeValue::S(task_id)), Some(AttributeValue::S(owner)), Some(created)) =
        (key.get("task_id"), key.get(OWNER), key.get("created_ms"))
    else {
        return Err(internal());
    };
    let created_ms = match created {
        AttributeValue::N(n) => n.parse::<u64>().map_err(|_| internal())?,
        _ => return Err(internal()),
    };
    if key.len() != 3 {
        return Err(internal());
    }
    let json = serde_json::json!({"created_ms": created_ms, "owner": owner, "task_id": task_id});
    Ok(URL_SAFE_NO_PAD.encode(json.to_string()))
}

/// Accepts only what [`encode_cursor`] makes, for this `owner`: garbled,
/// truncated, another caller's or re-encoded cursors are a 400.
fn decode_cursor(cursor: &str, owner: &str) -> Result<HashMap<String, AttributeValue>, ApiError> {
    let invalid = || ApiError::BadRequest("cursor is not one this API returned".to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let fields: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let (
        Some(created_ms),
        Some(serde_json::Value::String(of)),
        Some(serde_json::Value::String(id)),
    ) = (
        fields.get("created_ms").and_then(serde_json::Value::as_u64),
        fields.get("owner"),
        fields.get("task_id"),
    )
    else {
        return Err(invalid());
    };
    if fields.len() != 3 || of != owner || !is_task_id(id) {
        return Err(invalid());
    }
    let key = HashMap::from([
        ("task_id".to_owned(), AttributeValue::S(id.clone())),
        (OWNER.to_owned(), AttributeValue::S(of.clone())),
        (
            "created_ms".to_owned(),
            AttributeValue::N(created_ms.to_string()),
        ),
    ]);
    // Re-encoding must give back the same text, so no two cursors name one key.
    if encode_cursor(&key)? == cursor {
        Ok(key)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER_KEY: &str = r#"lambda:"ada""#;
    const TASK: &str = "0b7e4c1a-2f3d-4e5a-8c6b-9d1e2f3a4b5c";

    fn key() -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("task_id".to_owned(), AttributeValue::S(TASK.to_owned())),
            (OWNER.to_owned(), AttributeValue::S(OWNER_KEY.to_owned())),
            (
                "created_ms".to_owned(),
                AttributeValue::N("1795680000123".to_owned()),
            ),
        ])
    }

    #[test]
    fn cursor_round_trips_for_its_owner_and_rejects_anything_else() {
        let cursor = encode_cursor(&key()).unwrap();
        assert_eq!(decode_cursor(&cursor, OWNER_KEY).unwrap(), key());
        let json = |text: &str| URL_SAFE_NO_PAD.encode(text);
        for bad in [
            cursor[..cursor.len() - 2].to_owned(),
            "!!!".to_owned(),
            String::new(),
            json(r#"{"id":"a"}"#),
            json(&format!(
                r#"{{"created_ms":1,"owner":"lambda:\"ada\"","task_id":"{TASK}","x":1}}"#
            )),
            json(r#"{"created_ms":1,"owner":"lambda:\"ada\"","task_id":"nope"}"#),
            json(&format!(
                r#"{{"created_ms":-1,"owner":"lambda:\"ada\"","task_id":"{TASK}"}}"#
            )),
            json(&format!(
                r#"{{ "created_ms":1,"owner":"lambda:\"ada\"","task_id":"{TASK}"}}"#
            )),
        ] {
            assert!(decode_cursor(&bad, OWNER_KEY).is_err(), "{bad:?}");
        }
        assert!(
            decode_cursor(&cursor, r#"lambda:"bob""#).is_err(),
            "another caller's cursor"
        );
    }

    #[test]
    fn limit_is_1_to_100_default_20_and_status_one_of_the_five() {
        assert_eq!(parse_limit(None).unwrap(), 20);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "+5", "1.0", "", "ten"] {
            assert_eq!(
                parse_limit(Some(bad)).unwrap_err().to_string(),
                "limit must be an integer from 1 to 100",
                "{bad:?}"
            );
        }
        assert_eq!(parse_status(None).unwrap(), None);
        assert_eq!(
            parse_status(Some("failed")).unwrap(),
            Some(TaskStatus::Failed)
        );
        for bad in ["", "Queued", "done"] {
            assert!(parse_status(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
