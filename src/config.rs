//! The function's configuration: read once from the environment at init.
//!
//! A missing required variable stops init with a message that names it, so a
//! mis-deployed function fails loudly instead of answering 500 on every request.

use std::env;
use std::time::Duration;

use axum::http::HeaderValue;

/// What the function needs to know about its surroundings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The DynamoDB table `GET /users` scans (`USERS_TABLE`).
    pub users_table: String,
    /// The DynamoDB table that holds task records (`TASKS_TABLE`).
    pub tasks_table: String,
    /// The function `/async` invokes to run a task: this function itself
    /// (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda and by `cargo lambda watch`).
    pub function_name: String,
    /// Origins whose browsers may call the API (`CORS_ALLOWED_ORIGINS`,
    /// comma-separated, `*` for any); empty: no CORS headers.
    pub cors_allowed_origins: Vec<HeaderValue>,
    /// The CloudWatch namespace of the function's EMF metrics
    /// (`METRICS_NAMESPACE`, default `AsyncApi`).
    pub metrics_namespace: String,
    /// How long Lambda may hold a task event before it gives up on it
    /// (`TASK_EVENT_MAX_AGE_SECONDS`, default 3600: the template sets it from
    /// the same parameter as the `EventInvokeConfig`).
    pub task_event_max_age: Duration,
}

/// A variable is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {0} is not valid: {1}")]
    Invalid(&'static str, String),
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            users_table: required("USERS_TABLE")?,
            tasks_table: required("TASKS_TABLE")?,
            function_name: required("AWS_LAMBDA_FUNCTION_NAME")?,
            cors_allowed_origins: origins("CORS_ALLOWED_ORIGINS")?,
            metrics_namespace: namespace("METRICS_NAMESPACE")?,
            task_event_max_age: seconds("TASK_EVENT_MAX_AGE_SECONDS", 3600)?,
        })
    }
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

fn origins(name: &'static str) -> Result<Vec<HeaderValue>, ConfigError> {
    let value = env::var(name).unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            HeaderValue::from_str(origin)
                .map_err(|_| ConfigError::Invalid(name, format!("{origin:?} is not an origin")))
        })
        .collect()
}

/// CloudWatch's rules for a namespace, checked at init: a namespace it refuses
/// would silently drop every metric instead.
fn namespace(name: &'static str) -> Result<String, ConfigError> {
    let value = env::var(name).unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return Ok("AsyncApi".to_owned());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || " .-_/#:".contains(c);
    if value.len() > 255 || !value.chars().all(allowed) || value.starts_with("AWS/") {
        return Err(ConfigError::Invalid(
            name,
            "a CloudWatch namespace is 1 to 255 letters, digits, spaces or . - _ / # : and does not start with AWS/"
                .to_owned(),
        ));
    }
    Ok(value.to_owned())
}

/// A whole number of seconds, `default` when unset.
fn seconds(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| ConfigError::Invalid(name, "not a whole number of seconds".to_owned())),
        _ => Ok(Duration::from_secs(default)),
    }
}
