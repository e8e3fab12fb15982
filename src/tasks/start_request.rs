//! The request of `POST /async`: its `Content-Type` and its optional JSON body,
//! read with messages that say what is wrong without echoing any of it.

use axum::http::{HeaderMap, header};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{DEFAULT_DELAY_MS, MAX_DELAY_MS};

/// The body of `POST /async`; every field optional, no other field allowed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTask {
    /// How long the stand-in task waits before it completes, in milliseconds.
    /// Any JSON number with no fraction counts (`54.0` is 54), as JSON Schema's
    /// `integer` says.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 60000, default = 1000)]
    delay_ms: Option<serde_json::Number>,
}

/// Whether the request's body is JSON by its `Content-Type`: none at all,
/// `application/json` or any `+json` type, parameters allowed.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// The `delay_ms` a `POST /async` body asks for. No body, or `null`, means the
/// default; anything else must be a JSON object (a body of whitespace alone is
/// not JSON). The error says what is wrong without echoing the body.
pub fn delay_from_body(body: &[u8]) -> Result<u64, String> {
    if body.is_empty() {
        return Ok(DEFAULT_DELAY_MS);
    }
    // Through a map first: serde would also read a struct from an array (`[null]`).
    let object = serde_json::from_slice::<Option<serde_json::Map<String, serde_json::Value>>>(body)
        .map_err(|err| body_error(&err))?;
    let request: StartTask = match object {
        Some(object) => serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|err| body_error(&err))?,
        None => StartTask::default(),
    };
    match request.delay_ms {
        None => Ok(DEFAULT_DELAY_MS),
        Some(n) => whole_millis(&n)
            .filter(|ms| *ms <= MAX_DELAY_MS)
            .ok_or_else(|| format!("delay_ms must be an integer from 0 to {MAX_DELAY_MS}")),
    }
}

/// A JSON number as whole milliseconds, if it is a non-negative integer
/// (written `54` or `54.0`).
fn whole_millis(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=MAX_DELAY_MS as f64).contains(f))
            .map(|f| f as u64)
    })
}

/// Says what is wrong with a body without echoing any of it back (serde's
/// messages quote the offending values).
fn body_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!(
            "Invalid JSON body: not valid JSON (line {}, column {})",
            err.line(),
            err.column()
        ),
        Category::Data => format!(
            "Invalid JSON body: expected an object with an optional integer delay_ms from 0 to {MAX_DELAY_MS}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_is_no_content_type_application_json_or_any_plus_json_type() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            is_json(&headers)
        };
        assert!(is_json(&HeaderMap::new()));
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/problem+json",
            "application/vnd.api+json;v=1",
        ] {
            assert!(with(json), "{json}");
        }
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "text/json",
            "application/+json",
            "json",
            "",
        ] {
            assert!(!with(other), "{other}");
        }
    }

    #[test]
    fn no_body_null_or_an_empty_object_takes_the_default_delay() {
        for body in ["", "null", " null\n", "{}"] {
            assert_eq!(
                delay_from_body(body.as_bytes()),
                Ok(DEFAULT_DELAY_MS),
                "{body:?}"
            );
        }
    }

    #[test]
    fn delay_ms_is_any_whole_number_from_0_to_60000() {
        for (body, ms) in [
            (r#"{"delay_ms": 0}"#, 0),
            (r#"{"delay_ms": 54}"#, 54),
            (r#"{"delay_ms": 54.0}"#, 54),
            (r#"{"delay_ms": 6e4}"#, 60_000),
            (r#"{"delay_ms": 60000}"#, 60_000),
        ] {
            assert_eq!(delay_from_body(body.as_bytes()), Ok(ms), "{body}");
        }
        let out_of_range = "delay_ms must be an integer from 0 to 60000";
        for body in [
            r#"{"delay_ms": -1}"#,
            r#"{"delay_ms": 60001}"#,
            r#"{"delay_ms": 1.5}"#,
            r#"{"delay_ms": 1e300}"#,
        ] {
            assert_eq!(
                delay_from_body(body.as_bytes()).unwrap_err(),
                out_of_range,
                "{body}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_the_object_says_so_without_echoing_it() {
        let not_the_object = "Invalid JSON body: expected an object with an optional integer delay_ms from 0 to 60000";
        for body in [
            r#"[null]"#,
            r#""secret""#,
            r#"{"secret": 1}"#,
            r#"{"delay_ms": "secret"}"#,
        ] {
            assert_eq!(
                delay_from_body(body.as_bytes()).unwrap_err(),
                not_the_object,
                "{body}"
            );
        }
        for (body, at) in [
            (" \t\n", "line 2, column 0"),
            ("\x0c", "line 1, column 1"),
            ("secret", "line 1, column 1"),
        ] {
            assert_eq!(
                delay_from_body(body.as_bytes()).unwrap_err(),
                format!("Invalid JSON body: not valid JSON ({at})"),
                "{body:?}"
            );
        }
    }
}
