//! Lambda's runtime loop (`lambda_http::run_concurrent`) for one concrete
//! handler type, so that its generics are built in this package, for speed,
//! whatever the function's profile (the root `Cargo.toml`'s
//! `[profile.release.package.runtime-loop]`). The function's handler is
//! boxed behind it: one allocation per event. And what lambda_http's
//! `tracing` feature would give a function at start, for less: its log
//! subscriber ([`init_logs`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lambda_http::lambda_runtime::Diagnostic;
use lambda_http::{Body, Error, Request, Response, service_fn};

mod logs;
pub use logs::init_logs;

/// What a handler's call returns.
pub type Handled = Pin<Box<dyn Future<Output = Result<Response<Body>, Diagnostic>> + Send>>;

/// The handler of every event.
pub type Handler = Arc<dyn Fn(Request) -> Handled + Send + Sync>;

/// The tokio runtime the loop runs on. Lambda gives an execution environment
/// one event at a time unless `AWS_LAMBDA_MAX_CONCURRENCY` says more (Lambda
/// Managed Instances): then each event in flight is a task of tokio's
/// multi-thread scheduler, on every core. One at a time, one thread serves it
/// all, as on a 128 MB function's fraction of a vCPU: no other thread to wake
/// when a response arrives, no futex and no eventfd write between the
/// scheduler's threads, a page's buffers in one core's cache.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let one_at_a_time = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|limit| limit.parse::<u32>().ok())
        .is_none_or(|limit| limit <= 1);
    let mut builder = if one_at_a_time {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

/// Runs the loop on `runtime` until the Runtime API ends it, as
/// `lambda_http::run_concurrent`.
///
/// Neither `async` nor inlined, so that the loop's generics are built here:
/// rustc makes a small function inlinable across crates on its own, and an
/// `async fn run` awaited by the function had lambda_runtime's
/// `process_invocation` (the event's parse, the response's serialization and
/// its escaping) built in the function's crate, at its `"s"`.
#[inline(never)]
pub fn run(runtime: &tokio::runtime::Runtime, handler: Handler) -> Result<(), Error> {
    runtime.block_on(lambda_http::run_concurrent(service_fn(move |request| {
        handler(request)
    })))
}
