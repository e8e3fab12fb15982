//! A serverless answer to FastAPI's async/await example, for AWS Lambda:
//! `GET /users` awaits a page of a DynamoDB Scan; `/async` records a task and
//! has Lambda run it in an invocation of its own.
//!
//! # Layout
//!
//! - [`state`]: `AppState`, the configuration and the AWS clients, built once;
//!   [`config`]: the environment, read once.
//! - [`dispatch`]: `Function`, what Lambda runs: one `match` over the kinds of
//!   event the function accepts, each served by its own module:
//!   - [`http_event`]: HTTP events through [`app::Api`] (routes,
//!     OpenAPI, CORS);
//!   - [`tasks`]: the task event, run by [`tasks::worker`].
//! - Routes, by domain: [`users`] (`GET /users`), [`tasks::http`] (`/async`,
//!   `/tasks/{task_id}`), [`docs`] (`/openapi.json`, `/docs`).
//! - [`caller`]: who is calling, as API Gateway verified it.
//! - [`error`]: `ApiError`, the JSON errors of the contract.
//! - [`metrics`]: the CloudWatch metrics (EMF lines on stdout); [`trace`]: each
//!   invocation's X-Ray trace header, carried on to the `Invoke` of its task.
//!
//! Where to make the common changes: a route is a handler in its domain module
//! plus one line in `app::router`; an event source is a variant of
//! `dispatch::Event` and its arm of the `match`; the task's work is
//! `tasks::work::perform`.

pub mod app;
pub mod caller;
pub mod config;
pub mod dispatch;
pub mod docs;
pub mod error;
pub mod http_event;
pub mod metrics;
pub mod state;
pub mod tasks;
pub mod trace;
pub mod users;

pub use app::{Api, openapi};
pub use dispatch::{Function, FunctionError};
pub use state::{AppState, dynamodb_config, https_client, lambda_config, load_aws_config};
