//! Lambda's runtime loop (`lambda_http::run_concurrent`) for one concrete
//! handler type, so that its generics are built in this package, for speed,
//! whatever the function's profile (the root `Cargo.toml`'s
//! `[profile.release.package.runtime-loop]`). The function's handler is
//! boxed behind it: one allocation per event.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lambda_http::lambda_runtime::Diagnostic;
use lambda_http::{Body, Error, Request, Response, service_fn};

/// What a handler's call returns.
pub type Handled = Pin<Box<dyn Future<Output = Result<Response<Body>, Diagnostic>> + Send>>;

/// The handler of every event.
pub type Handler = Arc<dyn Fn(Request) -> Handled + Send + Sync>;

/// Runs the loop until the Runtime API ends it, as `lambda_http::run_concurrent`.
pub async fn run(handler: Handler) -> Result<(), Error> {
    lambda_http::run_concurrent(service_fn(move |request| handler(request))).await
}
