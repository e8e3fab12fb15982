//! The function's configuration: read once from the environment at init.
//!
//! A missing required variable stops init with a message that names it, so a
//! mis-deployed function fails loudly instead of answering 500 on every request.

use std::env;

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
}

/// A required variable is missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is required but not set")]
pub struct MissingVariable(pub &'static str);

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, MissingVariable> {
        Ok(Self {
            users_table: required("USERS_TABLE")?,
            tasks_table: required("TASKS_TABLE")?,
            function_name: required("AWS_LAMBDA_FUNCTION_NAME")?,
        })
    }
}

fn required(name: &'static str) -> Result<String, MissingVariable> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(MissingVariable(name)),
    }
}
