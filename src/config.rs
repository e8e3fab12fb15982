//! The function's configuration: read once from the environment at init.
//!
//! A missing required variable, or one outside its range, stops init with a
//! message that names it, so a mis-deployed function fails loudly instead of
//! answering 500 on every request.

use std::env;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
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
    /// (`TASK_EVENT_MAX_AGE_SECONDS`, 1 to 21600, default 3600: the template
    /// sets it from the same parameter as the `EventInvokeConfig`).
    pub task_event_max_age: Duration,
    /// How many times Lambda retries a task event that failed
    /// (`TASK_MAX_RETRY_ATTEMPTS`, 0 to 2, default 2: the template sets it from
    /// the same parameter as the `EventInvokeConfig`).
    pub task_max_retry_attempts: u32,
    /// Whether every route but `/docs`, `/openapi.json` and CORS preflights
    /// needs a verified identity (`REQUIRE_CALLER`, `true` or `false`, default
    /// `false`; the template sets it when an authorizer is configured).
    pub require_caller: bool,
    /// How many tasks one caller may start per UTC clock minute
    /// (`TASKS_PER_MINUTE_PER_CALLER`, 0 to 10000, default 60; 0: no limit).
    pub tasks_per_minute_per_caller: u32,
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
            task_event_max_age: task_event_max_age(
                optional(TASK_EVENT_MAX_AGE_SECONDS)?.as_deref(),
            )?,
            task_max_retry_attempts: task_max_retry_attempts(
                optional(TASK_MAX_RETRY_ATTEMPTS)?.as_deref(),
            )?,
            require_caller: require_caller(optional(REQUIRE_CALLER)?.as_deref())?,
            tasks_per_minute_per_caller: tasks_per_minute_per_caller(
                optional(TASKS_PER_MINUTE_PER_CALLER)?.as_deref(),
            )?,
        })
    }
}

const TASK_EVENT_MAX_AGE_SECONDS: &str = "TASK_EVENT_MAX_AGE_SECONDS";
const TASK_MAX_RETRY_ATTEMPTS: &str = "TASK_MAX_RETRY_ATTEMPTS";
const REQUIRE_CALLER: &str = "REQUIRE_CALLER";
const TASKS_PER_MINUTE_PER_CALLER: &str = "TASKS_PER_MINUTE_PER_CALLER";

/// `REQUIRE_CALLER`'s value: `true` or `false` (any case), `false` when unset
/// or empty. Anything else stops init: a typo must not leave the API open.
fn require_caller(value: Option<&str>) -> Result<bool, ConfigError> {
    match value.map(str::trim).unwrap_or_default() {
        "" => Ok(false),
        value if value.eq_ignore_ascii_case("true") => Ok(true),
        value if value.eq_ignore_ascii_case("false") => Ok(false),
        value => Err(ConfigError::Invalid(
            REQUIRE_CALLER,
            format!("{value:?} is not true or false"),
        )),
    }
}

/// `TASKS_PER_MINUTE_PER_CALLER`'s value: 0 (no limit) to 10000, 60 when
/// unset or empty.
fn tasks_per_minute_per_caller(value: Option<&str>) -> Result<u32, ConfigError> {
    whole_number(
        TASKS_PER_MINUTE_PER_CALLER,
        value,
        "a whole number",
        0..=crate::tasks::rate_limit::MAX_PER_MINUTE,
        60,
    )
}

/// `TASK_EVENT_MAX_AGE_SECONDS`'s value: 1 to 21600 seconds (Lambda's own
/// `MaximumEventAgeInSeconds` goes up to 21600), 3600 when unset or empty.
fn task_event_max_age(value: Option<&str>) -> Result<Duration, ConfigError> {
    whole_number(
        TASK_EVENT_MAX_AGE_SECONDS,
        value,
        "a whole number of seconds",
        1..=21_600,
        3600,
    )
    .map(Duration::from_secs)
}

/// `TASK_MAX_RETRY_ATTEMPTS`'s value: 0 to 2 (Lambda's own range for
/// `MaximumRetryAttempts`), 2 when unset or empty.
fn task_max_retry_attempts(value: Option<&str>) -> Result<u32, ConfigError> {
    whole_number(TASK_MAX_RETRY_ATTEMPTS, value, "a whole number", 0..=2, 2)
}

/// The variable's value; `None` when unset.
fn optional(name: &'static str) -> Result<Option<String>, ConfigError> {
    match env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(env::VarError::NotPresent) => Ok(None),
        Err(env::VarError::NotUnicode(_)) => {
            Err(ConfigError::Invalid(name, "not valid Unicode".to_owned()))
        }
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

/// A whole number (`what`) within `range`, `default` when unset or empty.
fn whole_number<T>(
    name: &'static str,
    value: Option<&str>,
    what: &str,
    range: RangeInclusive<T>,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Display,
{
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(default);
    };
    let number = value
        .parse::<T>()
        .ok()
        .filter(|number| range.contains(number));
    number.ok_or_else(|| {
        ConfigError::Invalid(
            name,
            format!(
                "{value:?} is not {what} from {} to {}",
                range.start(),
                range.end()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message init stops with.
    fn message(result: Result<impl std::fmt::Debug, ConfigError>) -> String {
        match result {
            Err(err @ ConfigError::Invalid(..)) => err.to_string(),
            other => panic!("expected ConfigError::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn task_event_max_age_is_3600_seconds_when_unset_or_empty() {
        assert_eq!(task_event_max_age(None).unwrap(), Duration::from_secs(3600));
        assert_eq!(
            task_event_max_age(Some("")).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            task_event_max_age(Some("  ")).unwrap(),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn task_event_max_age_takes_1_to_21600_whole_seconds() {
        for (value, seconds) in [("1", 1), ("60", 60), (" 900 ", 900), ("21600", 21_600)] {
            assert_eq!(
                task_event_max_age(Some(value)).unwrap(),
                Duration::from_secs(seconds),
                "{value:?}"
            );
        }
    }

    #[test]
    fn task_event_max_age_outside_1_to_21600_or_not_whole_stops_init_naming_the_variable_and_range()
    {
        for value in [
            "0",
            "21601",
            "-1",
            "1.5",
            "1e3",
            "an hour",
            "99999999999999999999999",
        ] {
            assert_eq!(
                message(task_event_max_age(Some(value))),
                format!(
                    "environment variable TASK_EVENT_MAX_AGE_SECONDS is not valid: \
                     {value:?} is not a whole number of seconds from 1 to 21600"
                )
            );
        }
    }

    #[test]
    fn task_max_retry_attempts_is_2_when_unset_or_empty() {
        assert_eq!(task_max_retry_attempts(None).unwrap(), 2);
        assert_eq!(task_max_retry_attempts(Some("")).unwrap(), 2);
    }

    #[test]
    fn task_max_retry_attempts_takes_0_1_or_2() {
        assert_eq!(task_max_retry_attempts(Some("0")).unwrap(), 0);
        assert_eq!(task_max_retry_attempts(Some("1")).unwrap(), 1);
        assert_eq!(task_max_retry_attempts(Some(" 2 ")).unwrap(), 2);
    }

    #[test]
    fn task_max_retry_attempts_outside_0_to_2_or_not_whole_stops_init_naming_the_variable_and_range()
     {
        for value in ["3", "-1", "1.0", "two", "4294967296"] {
            assert_eq!(
                message(task_max_retry_attempts(Some(value))),
                format!(
                    "environment variable TASK_MAX_RETRY_ATTEMPTS is not valid: \
                     {value:?} is not a whole number from 0 to 2"
                )
            );
        }
    }

    #[test]
    fn require_caller_is_true_or_false_and_off_when_unset() {
        assert!(!require_caller(None).unwrap());
        assert!(!require_caller(Some("")).unwrap());
        assert!(require_caller(Some("true")).unwrap());
        assert!(require_caller(Some(" TRUE ")).unwrap());
        assert!(!require_caller(Some("false")).unwrap());
        for value in ["1", "yes", "on", "treu"] {
            assert_eq!(
                message(require_caller(Some(value))),
                format!(
                    "environment variable REQUIRE_CALLER is not valid: {value:?} is not true or false"
                )
            );
        }
    }

    #[test]
    fn tasks_per_minute_per_caller_is_60_by_default_0_to_10000_and_0_means_no_limit() {
        assert_eq!(tasks_per_minute_per_caller(None).unwrap(), 60);
        assert_eq!(tasks_per_minute_per_caller(Some("")).unwrap(), 60);
        assert_eq!(tasks_per_minute_per_caller(Some("0")).unwrap(), 0);
        assert_eq!(tasks_per_minute_per_caller(Some("10000")).unwrap(), 10_000);
        for value in ["-1", "10001", "1.5", "sixty"] {
            assert_eq!(
                message(tasks_per_minute_per_caller(Some(value))),
                format!(
                    "environment variable TASKS_PER_MINUTE_PER_CALLER is not valid: \
                     {value:?} is not a whole number from 0 to 10000"
                )
            );
        }
    }
}
