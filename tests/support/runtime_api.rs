//! The Runtime API emulator of crates/local-lambda ([`local_lambda::runtime_api`],
//! with [`async_invoke`], Lambda's asynchronous invocation) for this project's
//! function: its name and account in the tests, and the binary started over a
//! fixture's tables on the local DynamoDB.

pub use local_lambda::async_invoke;
pub use local_lambda::runtime_api::*;

use async_invoke::Account;

use super::{FUNCTION_NAME, Fixture, dynamodb_endpoint};

/// The function the tests' emulator serves: [`FUNCTION_NAME`], whose failure
/// records go to the tests' own queue (its ARN is in every SQS event).
pub fn test_function() -> FunctionId {
    FunctionId {
        name: FUNCTION_NAME.to_owned(),
        account: Account {
            queue_name: "async-api-test-task-failures".to_owned(),
            ..Account::default()
        },
    }
}

/// The function binary, served by `api`, over `fixture`'s tables on the local
/// DynamoDB.
pub fn function_command(api: &RuntimeApi, fixture: &Fixture) -> FunctionCommand {
    FunctionCommand::new(api, env!("CARGO_BIN_EXE_async-api"))
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint())
        .env("USERS_TABLE", &fixture.users_table)
        .env("TASKS_TABLE", &fixture.tasks_table)
        // The per-caller limit's counter is written, as in production,
        // but never reached by a test's or the bench's hundreds of tasks.
        .env("TASKS_PER_MINUTE_PER_CALLER", "10000")
}
